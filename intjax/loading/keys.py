"""The config.json key checks every family's loader runs: the keys no family reads, the values every
family refuses, and `check_keys`, which names the first key intjax refuses."""

from __future__ import annotations

from typing import Any

from intjax.errors import ConfigError
from intjax.model.primitives import ACTIVATIONS

# Keys that change the computation in every family, and the only value intjax accepts.
REFUSED_UNLESS = {
    "reorder_and_upcast_attn": False,
    "add_cross_attention": False,
    "is_encoder_decoder": False,
    "chunk_size_feed_forward": 0,
    "pruned_heads": {},
}

# Keys that do not change an inference forward pass (dropout, generation, training,
# labels, bookkeeping; GPT-2's own such keys among them): every loader ignores these, and adds its family's.
IGNORED = {
    "n_ctx", "n_inner", "resid_pdrop", "embd_pdrop", "attn_pdrop", "summary_type",
    "summary_use_proj", "summary_activation", "summary_proj_to_labels",
    "summary_first_dropout", "initializer_range", "use_cache", "bos_token_id",
    "eos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id",
    "task_specific_params", "architectures", "model_type", "transformers_version",
    "torch_dtype", "dtype", "_name_or_path", "_attn_implementation_autoset",
    "output_hidden_states", "output_attentions", "return_dict", "id2label", "label2id",
    "problem_type", "num_labels", "torchscript", "use_bfloat16", "tf_legacy_loss",
    "gradient_checkpointing", "prefix", "finetuning_task", "tokenizer_class",
    "max_length", "min_length", "do_sample", "early_stopping", "num_beams",
    "temperature", "top_k", "top_p", "repetition_penalty", "length_penalty",
    "no_repeat_ngram_size", "bad_words_ids", "num_return_sequences",
    "is_decoder", "cross_attention_hidden_size", "tie_encoder_decoder",
    "output_scores", "return_dict_in_generate", "forced_bos_token_id",
    "forced_eos_token_id", "remove_invalid_values", "diversity_penalty",
    "num_beam_groups", "encoder_no_repeat_ngram_size", "typical_p",
    "exponential_decay_length_penalty", "suppress_tokens", "begin_suppress_tokens",
    "_commit_hash", "n_special", "predict_special_tokens", "layer_norm_eps",
}


def check_keys(hf: dict[str, Any], used: set[str], refused_unless: dict[str, Any], ignored: set[str],
               activation: tuple[str, str], strict: bool) -> None:
    """ConfigError naming the first config.json key intjax refuses: a value other than the one
    accepted in `refused_unless`, an activation (`(key, default)`) not implemented, or (when
    `strict`) a key neither used, refused nor ignored."""
    for key, allowed in refused_unless.items():
        if key in hf and hf[key] not in (allowed, None):
            raise ConfigError(
                f"config.json sets {key}={hf[key]!r}, which intjax does not implement "
                f"(only {key}={allowed!r}); use a checkpoint without it"
            )
    key, default = activation
    act = hf.get(key, default)
    if act not in ACTIVATIONS:
        raise ConfigError(
            f"config.json sets {key}={act!r}, which intjax does not "
            f"implement; implemented: {sorted(ACTIVATIONS)}"
        )
    unknown = sorted(set(hf) - used - set(refused_unless) - ignored)
    if unknown and strict:
        raise ConfigError(
            f"config.json has keys intjax does not know: {unknown}. If they do not "
            "change the forward pass, load with strict_config=False (--lenient-config on the command line)"
        )
