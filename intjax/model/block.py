"""One patched transformer block for any family, and the layer scan that runs it.

A family supplies its maths (attention, output projection, MLP, each applying its own norm) and a
per-layer constant; `patched_block` applies a layer's `LayerEdits` at the sites between them, so
patching needs no hooks and every family patches the same sites the same way.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from intjax.errors import InputError
from intjax.model.sites import Activations, InputEdits, LayerEdits, SiteEdit, apply_edit, edit_rows

# What a family's block reads: attention(cfg, p, c, resid, rows, prefix_kv, pattern_edit, kv_edits,
# heads_in) -> (pattern, z, k, v), heads_in = None or the (q, k, v) deltas of `InputEdits` (q at the query
# rows); attn_output(p, z) -> [R, D]; mlp(cfg, p, x) -> [R, D] of the residual x it reads.
Attention = Callable[..., tuple[Array, Array, Array, Array]]
Block = Callable[..., tuple[Array, Activations]]


def with_prefix(prefix_kv: Optional[tuple[Array, Array]], k: Float[Array, "T Hkv Dh"], v: Float[Array, "T Hkv Dh"],
                ) -> tuple[Float[Array, "K Hkv Dh"], Float[Array, "K Hkv Dh"]]:
    """The keys and values of every position a query may read: a shared prefix's cached ones (if any) first."""
    if prefix_kv is None:
        return k, v
    return jnp.concatenate([prefix_kv[0], k]), jnp.concatenate([prefix_kv[1], v])


def head_inputs(norm: Callable[[Array], Array], resid: Float[Array, "T D"], delta: Optional[Array],
                ) -> Float[Array, "T D"] | Float[Array, "T h D"]:
    """norm(resid), or per head norm(resid + delta[:, h]) where edges feed the heads' inputs (`delta`
    `[T, h, D]`): each head then normalizes its own input."""
    return norm(resid) if delta is None else norm(resid[:, None] + delta)


def project(x: Float[Array, "T D"] | Float[Array, "T h D"], w: Float[Array, "h D e"]) -> Float[Array, "T h e"]:
    """Per-head projection of one input shared by the heads (`[T, D]`) or one input per head (`[T, h, D]`)."""
    return jnp.einsum("td,hde->the" if x.ndim == 2 else "thd,hde->the", x, w)


def check_edits(edits: tuple) -> None:  # a LayerEdits, or any NamedTuple of sites
    """Raise InputError for an edit of a site kind no block applies (a field LayerEdits does not have)."""
    other = [f for f in edits._fields if f not in LayerEdits._fields and getattr(edits, f) is not None]
    if other:
        raise InputError(f"a model applies edits of {list(LayerEdits._fields)} only, not {other}; "
                         "patch heads (z or pattern), keys and values, MLPs or residuals instead")


def _site(edits: tuple, name: str) -> Optional[SiteEdit]:
    return getattr(edits, name, None)


def patched_block(
    attention: Attention,
    attn_output: Callable[[Any, Array], Array],
    mlp: Callable[[Any, Any, Array], Array],
    cfg: Any,
    p: Any,
    c: Array,
    resid: Float[Array, "T D"],
    edits: Optional[tuple] = None,  # a LayerEdits (check_edits refuses sites no block applies)
    with_pattern: bool = False,
    rows: Optional[Int[Array, " R"]] = None,
    z: Optional[Float[Array, "R H Dh"]] = None,
    resid_mid: Optional[Float[Array, "R D"]] = None,
    prefix_kv: Optional[tuple[Array, Array]] = None,
) -> tuple[Float[Array, "R D"], Activations]:
    """One block of a family (its `attention`, `attn_output` and `mlp`; weights `p` and constant `c` of
    ONE layer), applying `edits` to its sites.

    With `rows`, only those positions' outputs are computed (keys and values still
    read every position): the last layer needs only the position the metric reads.
    A run whose first edit is at a head or an MLP may pass the cached unedited `z`
    or `resid_mid` of these rows; the block then starts there instead of
    recomputing them. With `prefix_kv` (see the family's `attention`) `resid`, `edits` and
    `rows` cover only the positions after a shared prefix. With `cfg.parallel_residual` the MLP reads
    the layer input (also when entering at `resid_mid`), else `resid_mid`. Returns the residual after
    the block and the block's activations (no L axis; those not computed are None; unread ones cost
    nothing under jit).
    """
    e = edits if edits is not None else LayerEdits()
    check_edits(e)
    inputs = _site(e, "inputs") or InputEdits()
    pattern = attn_out = k = v = None
    if resid_mid is None:
        if z is None:
            resid = apply_edit(_site(e, "resid_pre"), resid)
            heads_in = None
            if inputs.q is not None or inputs.k is not None or inputs.v is not None:
                heads_in = (edit_rows(inputs.q, rows), inputs.k, inputs.v)
            pattern, z, k, v = attention(cfg, p, c, resid, rows, prefix_kv, edit_rows(_site(e, "pattern"), rows),
                                         (_site(e, "k"), _site(e, "v")), heads_in)
        z = apply_edit(edit_rows(_site(e, "z"), rows), z)
        attn_out = attn_output(p, z)
        resid_mid = (resid if rows is None else resid[rows]) + attn_out
    mlp_in = (resid if rows is None else resid[rows]) if cfg.parallel_residual else resid_mid
    if inputs.mlp is not None:
        mlp_in = mlp_in + edit_rows(inputs.mlp, rows)
    if inputs.mlp_heads is not None:  # same-layer head senders, their base computed in this run
        weight, z_base = edit_rows(inputs.mlp_heads, rows)
        mlp_in = mlp_in + attn_output(p, weight[..., None] * (z_base - z)) - attn_output(p, jnp.zeros_like(z))
    mlp_out = apply_edit(edit_rows(_site(e, "mlp_out"), rows), mlp(cfg, p, mlp_in))
    resid_post = resid_mid + mlp_out
    acts = Activations(resid, z, attn_out, resid_mid, mlp_out, resid_post, pattern if with_pattern else None, k, v)
    return resid_post, acts


def scan_blocks(forward: Block, cfg: Any, blocks: Any, per_layer: Array, resid: Float[Array, "T D"], start: int,
                stop: int, edits: Optional[tuple], collect: bool, with_pattern: bool,
                ) -> tuple[Float[Array, "T D"], Optional[Activations]]:
    """Layers start..stop-1 of any family as one scan: `forward(cfg, p, c, resid, e, with_pattern)` is the
    family's block, `per_layer` its per-layer constant c (GPT-2: the attention scale; Llama: the window);
    `edits` are stacked over ALL layers."""
    layers = jax.tree.map(lambda a: a[start:stop], blocks)
    edits = jax.tree.map(lambda a: a[start:stop], edits)

    def step(resid, xs):
        p, c, e = xs
        resid_post, acts = forward(cfg, p, c, resid, e, with_pattern)
        return resid_post, (acts if collect else None)

    return jax.lax.scan(step, resid, (layers, per_layer[start:stop], edits))


def one_layer(forward: Block, cfg: Any, blocks: Any, per_layer: Array, index: Int[Array, ""] | int,
              resid: Float[Array, "T D"], edits: Optional[tuple], with_acts: bool = False, **entries,
              ) -> Float[Array, "R D"] | tuple[Float[Array, "R D"], Activations]:
    """The residual after layer `index` (may be traced) of any family's block `forward` (see `scan_blocks`),
    with the layer's activations too when `with_acts`; `entries` are its rows / z / resid_mid / prefix_kv."""
    params = jax.tree.map(lambda a: a[index], blocks)
    out = forward(cfg, params, per_layer[index], resid, edits, **entries)
    return out if with_acts else out[0]
