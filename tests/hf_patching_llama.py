"""Independent reference for patching a Llama-family or GPT-NeoX model: HuggingFace's torch model, one
run per patch, with `hf_patching`'s explicit forward hooks (the decoder layer's input for resid_pre,
the output projection's input (o_proj, GPT-NeoX's attention.dense) for z, sliced per query head, the
MLP's output for mlp_out).

`GPT2View` shows the HF model under the attribute names those hooks use, so the substitutions are
the same code for both families.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

import hf_patching


class _Block:
    """One decoder layer under GPT-2's names: hooks on the layer, `attn.c_proj` = the output projection, `mlp`."""

    def __init__(self, layer):
        self.layer = layer
        out = layer.self_attn.o_proj if hasattr(layer, "self_attn") else layer.attention.dense
        self.attn = SimpleNamespace(c_proj=out)
        self.mlp = layer.mlp

    def register_forward_pre_hook(self, *args, **kwargs):
        return self.layer.register_forward_pre_hook(*args, **kwargs)


class GPT2View:
    """A HF Llama / Qwen2 / Mistral / GPT-NeoX causal LM seen as `hf_patching` reads a GPT-2."""

    def __init__(self, model):
        cfg = model.config
        self.d_head = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.model = model
        # `_attn_implementation` lives on this view only: the model keeps its own (eager) attention, which
        # handles grouped-query attention and sliding windows
        self.config = SimpleNamespace(n_embd=cfg.num_attention_heads * self.d_head, n_head=cfg.num_attention_heads,
                                      _attn_implementation="eager")
        layers = model.gpt_neox.layers if hasattr(model, "gpt_neox") else model.model.layers
        self.transformer = SimpleNamespace(h=[_Block(layer) for layer in layers])

    def __call__(self, *args, **kwargs):
        return self.model(*args, **kwargs)


def reference_values(model, rows, components, masks):
    """f at every mask `[M, P]` under noising, recompute semantics, the counterfactual source and the
    logit-difference metric: one torch run per (mask, prompt). `components`: intjax Components."""
    view = GPT2View(model)
    comps = [[(s.kind, s.layer, s.head, s.pos) for s in c.sites] for c in components]
    out = np.zeros((len(masks), len(rows)))
    for p, row in enumerate(rows):
        _, src_rec = hf_patching.run(view, row["corrupted_ids"], record=True)
        src = {k: hf_patching.site_value(src_rec, k, view.d_head) for sites in comps for k in sites}
        for m, alpha in enumerate(masks):
            logits = hf_patching.patched_logits(view, row["clean_ids"], src, comps, alpha, "recompute", {})
            last = logits[len(row["clean_ids"]) - 1]
            out[m, p] = last[row["target_id"]] - last[row["foil_id"]]
    return out
