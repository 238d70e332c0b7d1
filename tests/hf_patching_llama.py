"""Independent reference for patching a Llama-family or GPT-NeoX model: HuggingFace's torch model, one
run per patch, with `hf_patching`'s explicit forward hooks (the decoder layer's input for resid_pre,
the output projection's input (o_proj, GPT-NeoX's attention.dense) for z, sliced per query head, the
MLP's output for mlp_out) and its reference attention function (HF's rotated keys and its values per
key/value head for k and v, the attention weights per query head for pattern).

`GPT2View` shows the HF model under the attribute names those hooks use, so the substitutions are
the same code for both families.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

import hf_patching


class _AttentionView:
    """The attention module under GPT-2's names: `c_proj` = the output projection; the hooks `hf_patching.run`
    sets (and deletes) here land on the HF attention module, where the reference attention function reads them."""

    def __init__(self, module, out):
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "c_proj", out)

    def __setattr__(self, name, value):
        setattr(self._module, name, value)

    def __delattr__(self, name):
        delattr(self._module, name)


class _Block:
    """One decoder layer under GPT-2's names: hooks on the layer, `attn` (see `_AttentionView`), `mlp`."""

    def __init__(self, layer):
        self.layer = layer
        attn = layer.self_attn if hasattr(layer, "self_attn") else layer.attention
        self.attn = _AttentionView(attn, attn.o_proj if hasattr(layer, "self_attn") else attn.dense)
        self.mlp = layer.mlp

    def register_forward_pre_hook(self, *args, **kwargs):
        return self.layer.register_forward_pre_hook(*args, **kwargs)


class _ConfigView:
    """The config `hf_patching.run` reads: GPT-2's n_embd and n_head, and the HF model's own attention
    implementation (run swaps in the reference attention function and restores it)."""

    def __init__(self, config, d_head):
        self.hf = config
        self.n_embd, self.n_head = config.num_attention_heads * d_head, config.num_attention_heads

    @property
    def _attn_implementation(self):
        return self.hf._attn_implementation

    @_attn_implementation.setter
    def _attn_implementation(self, value):
        self.hf._attn_implementation = value


class GPT2View:
    """A HF Llama / Qwen2 / Mistral / GPT-NeoX causal LM seen as `hf_patching` reads a GPT-2."""

    def __init__(self, model):
        cfg = model.config
        self.d_head = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.model = model
        self.config = _ConfigView(cfg, self.d_head)
        layers = model.gpt_neox.layers if hasattr(model, "gpt_neox") else model.model.layers
        self.transformer = SimpleNamespace(h=[_Block(layer) for layer in layers])

    def __call__(self, *args, **kwargs):
        return self.model(*args, **kwargs)


def reference_values(model, rows, components, masks, direction="noising"):
    """f at every mask `[M, P]` under recompute semantics, the counterfactual source and the
    logit-difference metric: one torch run per (mask, prompt). `components`: intjax Components."""
    view = GPT2View(model)
    comps = [[(s.kind, s.layer, s.head, s.pos) for s in c.sites] for c in components]
    base, source = ("clean_ids", "corrupted_ids") if direction == "noising" else ("corrupted_ids", "clean_ids")
    out = np.zeros((len(masks), len(rows)))
    for p, row in enumerate(rows):
        _, src_rec = hf_patching.run(view, row[source], record=True)
        src = {k: hf_patching.site_value(src_rec, k, view.d_head) for sites in comps for k in sites}
        for m, alpha in enumerate(masks):
            logits = hf_patching.patched_logits(view, row[base], src, comps, alpha, "recompute", {})
            last = logits[len(row[base]) - 1]
            out[m, p] = last[row["target_id"]] - last[row["foil_id"]]
    return out
