"""Independent reference for edges (path patching): HuggingFace's torch GPT-2 or Llama, one run per patch,
each receiver's input computed from per-sender contributions in explicit forward hooks.

Every sender's write to the residual stream is recorded where the model makes it (a head's slice of the
output projection's input times its slice of the projection's weight, the MLP's output, the first
layer's input for the embedding). A receiver reads its layer's residual plus Σ_e α_e·pos_e·(s_e − b_e):
s_e the sender's write in the source run, b_e its write in the base run (frozen) or in this run
(recompute). Query, key and value receivers get their own projection of their own normed input (the
projection module's output columns of that head replaced); the MLP receiver's norm input and the final
norm's input get the sum added.
"""

from __future__ import annotations

import numpy as np
import torch


class _Family:
    """Where the hooks go in one HF family: layers, the attention's input projections and norms."""

    def __init__(self, model):
        self.model = model
        cfg = model.config
        self.gpt2 = hasattr(model, "transformer")
        self.H = cfg.n_head if self.gpt2 else cfg.num_attention_heads
        self.Hkv = self.H if self.gpt2 else cfg.num_key_value_heads
        self.D = cfg.n_embd if self.gpt2 else cfg.hidden_size
        self.Dh = self.D // self.H if self.gpt2 else (getattr(cfg, "head_dim", None) or self.D // self.H)
        self.layers = model.transformer.h if self.gpt2 else model.model.layers
        self.final_norm = model.transformer.ln_f if self.gpt2 else model.model.norm

    def out_proj(self, layer):
        return layer.attn.c_proj if self.gpt2 else layer.self_attn.o_proj

    def head_writes(self, layer, z):  # z [1, T, H·Dh] -> [T, H, D], each head's write (no bias)
        proj = self.out_proj(layer)
        zs = z[0].reshape(z.shape[1], self.H, self.Dh)
        if self.gpt2:
            w = proj.weight.reshape(self.H, self.Dh, self.D)  # Conv1D: [in, out]
        else:
            w = proj.weight.T.reshape(self.H, self.Dh, self.D)  # Linear: [out, in]
        return torch.einsum("the,hed->thd", zs, w)

    def project(self, mod, x):
        """The projection module's output without its hooks (GPT-2's Conv1D is x·W + b, a Linear x·Wᵀ + b)."""
        if self.gpt2:
            return x @ mod.weight + mod.bias
        return torch.nn.functional.linear(x, mod.weight, mod.bias)

    def mlp_norm(self, layer):
        return layer.ln_2 if self.gpt2 else layer.post_attention_layernorm

    def projections(self, layer):
        """(module, fn(module output, normed input of one head) -> replaced columns) per receiver kind."""
        if self.gpt2:
            attn, D, Dh = layer.attn, self.D, self.Dh
            cols = {"q": 0, "k": D, "v": 2 * D}
            return {kind: (attn.c_attn, layer.ln_1, lambda h, off=off: slice(off + h * Dh, off + (h + 1) * Dh))
                    for kind, off in cols.items()}
        attn = layer.self_attn
        return {kind: (getattr(attn, f"{kind}_proj"), layer.input_layernorm,
                       lambda h, Dh=self.Dh: slice(h * Dh, (h + 1) * Dh)) for kind in "qkv"}


def _positions(pos, T):
    m = torch.zeros(T, 1, dtype=torch.float64)
    m[slice(None) if pos is None else pos] = 1
    return m


def run(model, tokens, edges=(), alpha=(), source_writes=None, base_writes=None, semantics="recompute",
        nodes=(), node_alpha=()):
    """One forward pass of one prompt. `edges`: [(sender, receiver kind, layer, head, pos)], sender =
    ("embed"|"z"|"mlp_out", layer, head), receiver kind in q_in/k_in/v_in/mlp_in/logits_in; `alpha`
    per edge. `nodes`: heads (layer, head) whose z becomes (1 − a)·z + a·z_source (recompute: z of this run;
    `node_alpha` per node, z_source = source_writes[("zraw", layer, head)]), before their write is taken.
    Returns (logits [T, V], every sender's write in this run {sender: [T, D]}, with each head's z [T, Dh]
    under ("zraw", layer, head))."""
    fam = _Family(model)
    writes, handles, resid_in = {}, [], {}
    T = len(tokens)

    def delta(kind, layer, head):
        total = None
        for (sender, k, l, h, pos), a in zip(edges, alpha):
            if k != kind or l != layer or h != head or a == 0:
                continue
            base = base_writes[sender] if semantics == "frozen" else writes[sender]
            d = a * _positions(pos, T).to(base.dtype) * (source_writes[sender] - base)
            total = d if total is None else total + d
        return total

    receivers = {(k, l, h) for (_, k, l, h, _), a in zip(edges, alpha) if a != 0}
    for l, layer in enumerate(fam.layers):
        def pre_layer(mod, args, kwargs, l=l):
            hidden = args[0] if args else kwargs["hidden_states"]
            resid_in[l] = hidden[0].clone()
            if l == 0:
                writes[("embed", -1, -1)] = hidden[0].clone()

        def pre_out(mod, args, l=l):
            z = args[0].clone()
            for (nl, h), a in zip(nodes, node_alpha):
                cols = slice(h * fam.Dh, (h + 1) * fam.Dh)
                if nl == l and a != 0:
                    z[0, :, cols] = (1 - a) * z[0, :, cols] + a * source_writes[("zraw", l, h)].to(z.dtype)
            hw = fam.head_writes(fam.layers[l], z)
            for h in range(fam.H):
                writes[("z", l, h)] = hw[:, h]
                writes[("zraw", l, h)] = z[0, :, h * fam.Dh:(h + 1) * fam.Dh]
            return (z, *args[1:])

        def post_mlp(mod, args, out, l=l):
            writes[("mlp_out", l, -1)] = out[0].clone()

        def pre_mlp_norm(mod, args, l=l):
            d = delta("mlp_in", l, None)
            return None if d is None else (args[0] + d[None].to(args[0].dtype),)

        handles += [layer.register_forward_pre_hook(pre_layer, with_kwargs=True),
                    fam.out_proj(layer).register_forward_pre_hook(pre_out),
                    layer.mlp.register_forward_hook(post_mlp),
                    fam.mlp_norm(layer).register_forward_pre_hook(pre_mlp_norm)]
        for kind, (proj, norm, cols) in fam.projections(layer).items():
            heads = sorted(h for k, ll, h in receivers if k == f"{kind}_in" and ll == l)
            if not heads:
                continue

            def post_proj(mod, args, out, l=l, kind=kind, norm=norm, cols=cols, heads=heads):
                out = out.clone()
                for h in heads:
                    d = delta(f"{kind}_in", l, h)
                    if d is not None:
                        x = norm(resid_in[l] + d.to(out.dtype))
                        out[0, :, cols(h)] = fam.project(mod, x)[:, cols(h)]
                return out

            handles.append(proj.register_forward_hook(post_proj))

    def pre_final(mod, args):
        d = delta("logits_in", len(fam.layers) - 1, None)
        return None if d is None else (args[0] + d[None].to(args[0].dtype),)

    handles.append(fam.final_norm.register_forward_pre_hook(pre_final))
    try:
        with torch.no_grad():
            logits = model(torch.tensor(np.asarray(tokens)[None])).logits[0]
    finally:
        for h in handles:
            h.remove()
    return logits.numpy(), writes


def edge_keys(components):
    """Per component, its edges as `run` takes them (a site's sender, kind, layer, head, pos)."""
    return [[(s.sender, s.kind, s.layer, s.head, s.pos) for s in c.sites if s.is_edge] for c in components]


def reference_values(model, rows, components, masks, direction="noising", semantics="recompute"):
    """f at every mask `[M, P]` (counterfactual source, logit difference): one torch run per (mask, prompt)."""
    comps = edge_keys(components)
    heads = [[(s.layer, s.head) for s in c.sites if not s.is_edge] for c in components]  # head nodes (z, every pos)
    assert all(s.is_edge or (s.kind == "z" and s.pos is None) for c in components for s in c.sites)
    edges = [e for c in comps for e in c]
    nodes = [n for c in heads for n in c]
    base, source = ("clean_ids", "corrupted_ids") if direction == "noising" else ("corrupted_ids", "clean_ids")
    out = np.zeros((len(masks), len(rows)))
    for p, row in enumerate(rows):
        _, src = run(model, row[source])
        _, cached = run(model, row[base])
        for m, mask in enumerate(masks):
            alpha = [float(a) for c, a in zip(comps, mask) for _ in c]
            node_alpha = [float(a) for c, a in zip(heads, mask) for _ in c]
            logits, _ = run(model, row[base], edges, alpha, src, cached, semantics, nodes, node_alpha)
            last = logits[len(row[base]) - 1]
            out[m, p] = last[row["target_id"]] - last[row["foil_id"]]
    return out
