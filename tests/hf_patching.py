"""Independent reference for patching: HuggingFace's torch GPT-2, one run per patch,
with each substitution written out explicitly in torch forward hooks."""

from __future__ import annotations

import numpy as np
import torch
from transformers import AttentionInterface

REFERENCE_ATTENTION = "intjax_reference"


def _attention_with_hooks(module, query, key, value, attention_mask, scaling=None, dropout=0.0, sliding_window=None,
                          **kwargs):
    """Causal softmax attention written out (grouped-query attention: query head h reads key/value head
    h // (H / Hkv); a sliding window lets query q read keys k > q - window), with the keys and values
    (after RoPE, per key/value head) passed through `module.kv_hook` before any query reads them and the
    weights through `module.pattern_hook` (both set by `run`) before they weigh the values: the hook
    points for key/value and attention-pattern patches."""
    hook = getattr(module, "kv_hook", None)
    if hook is not None:
        key, value = hook(key, value)
    group = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(group, dim=1), value.repeat_interleave(group, dim=1)
    scores = query @ key.transpose(-1, -2) * (query.size(-1) ** -0.5 if scaling is None else scaling)
    T, K = scores.shape[-2:]
    allowed = torch.ones(T, K, dtype=torch.bool).tril(K - T)
    if sliding_window:
        allowed &= torch.ones(T, K, dtype=torch.bool).triu(K - T - sliding_window + 1)
    weights = torch.softmax(scores.masked_fill(~allowed, torch.finfo(scores.dtype).min), dim=-1)
    hook = getattr(module, "pattern_hook", None)
    if hook is not None:
        weights = hook(weights)
    return (weights @ value).transpose(1, 2), weights


AttentionInterface.register(REFERENCE_ATTENTION, _attention_with_hooks)

# site key: ("z", layer, head, pos) | ("pattern", layer, head, pos) | ("k" or "v", layer, kv_head, pos)
#           | ("mlp_out", layer, None, pos) | ("resid_pre", layer, None, pos); pos None = every position,
# head None = every head. A recorded pattern is [T (query), H, T (key)], HF's attention weights with the
# head axis moved; recorded keys and values are [T, Hkv, Dh].


def _sel(kind, head, pos, d_head):
    t = slice(None) if pos is None else list(pos) if isinstance(pos, tuple) else pos  # tuple: several positions
    if kind == "z" and head is not None:
        return (0, t, slice(head * d_head, (head + 1) * d_head))
    if kind in ("pattern", "k", "v") and head is not None:
        return (0, t, head)
    return (0, t)


def run(model, tokens, replace=None, record=False):
    """One forward pass on a single prompt. `replace`: {site: fn(current_value) -> new value}.

    Returns (logits [T, V], recorded {(kind, layer): tensor [T, features]}). Attention runs
    through `_attention_with_hooks`, registered with HF's attention interface.
    """
    replace = replace or {}
    d_head = model.config.n_embd // model.config.n_head
    recorded, handles = {}, []

    def apply(kind, layer, x):
        x = x.clone()
        for (k, l, head, pos), fn in replace.items():
            if k == kind and l == layer:
                idx = _sel(k, head, pos, d_head)
                x[idx] = fn(x[idx], (k, l, head, pos))
        if record:
            recorded[(kind, layer)] = x[0].detach().clone()
        return x

    for l, block in enumerate(model.transformer.h):
        def pre_block(mod, args, kwargs, l=l):
            if args:
                return (apply("resid_pre", l, args[0]), *args[1:]), kwargs
            kwargs["hidden_states"] = apply("resid_pre", l, kwargs["hidden_states"])
            return args, kwargs

        def pre_proj(mod, args, l=l):
            return (apply("z", l, args[0]),)

        def post_mlp(mod, args, out, l=l):
            return apply("mlp_out", l, out)

        def pattern_hook(weights, l=l):  # [1, H, T, T]
            return apply("pattern", l, weights.transpose(1, 2)).transpose(1, 2)

        def kv_hook(key, value, l=l):  # [1, Hkv, T, Dh] each
            return (apply("k", l, key.transpose(1, 2)).transpose(1, 2),
                    apply("v", l, value.transpose(1, 2)).transpose(1, 2))

        block.attn.pattern_hook = pattern_hook
        block.attn.kv_hook = kv_hook
        handles += [
            block.register_forward_pre_hook(pre_block, with_kwargs=True),
            block.attn.c_proj.register_forward_pre_hook(pre_proj),
            block.mlp.register_forward_hook(post_mlp),
        ]
    implementation, model.config._attn_implementation = model.config._attn_implementation, REFERENCE_ATTENTION
    try:
        with torch.no_grad():
            logits = model(torch.tensor(np.asarray(tokens)[None])).logits[0]
    finally:
        model.config._attn_implementation = implementation
        for h in handles:
            h.remove()
        for block in model.transformer.h:
            del block.attn.pattern_hook, block.attn.kv_hook
    return logits.numpy(), recorded


def site_value(recorded, site, d_head):
    """The recorded value of one site (same slicing as the substitution)."""
    kind, layer, head, pos = site
    x = recorded[(kind, layer)][None]
    return x[_sel(kind, head, pos, d_head)]


def patched_logits(model, base_tokens, source_values, components, alpha, semantics, base_values, witnesses=()):
    """Logits of the base prompt with component i set to (1 − α_i)·b_i + α_i·s_i.

    `components`: list of lists of sites; `source_values`/`base_values`: site -> tensor.
    recompute: b_i is the value computed in this run; frozen: every analysed site
    is first pinned to its base value. `witnesses`: sites always set to their base value.
    """
    replace = {site: (lambda cur, _, b=base_values[site]: b) for site in witnesses}
    for sites, a in zip(components, alpha):
        for site in sites:
            s = source_values[site]
            if semantics == "frozen":
                b = base_values[site]
                replace[site] = lambda cur, _, s=s, b=b, a=float(a): (1 - a) * b + a * s
            elif a != 0:
                replace[site] = lambda cur, _, s=s, a=float(a): (1 - a) * cur + a * s
    return run(model, base_tokens, replace)[0]
