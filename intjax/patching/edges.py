"""Edges (path patching) in f(α): what each receiver input reads besides the residual stream.

An edge e = sender → receiver input (DESIGN.md "Edges"). With α_e, the receiver reads

    its input residual + Σ_e α_e·pos_e·(s_e − b_e)

where s_e is the sender's source write to the residual (a head's z·W_O[h], an MLP's output, the embedding)
and b_e its base write: the cached base run's under frozen semantics (constant: `EdgeData.delta` holds
s − b_cached), the write computed in this run under recompute semantics, which differs from the cached one
only where something upstream of the sender is patched. The run then carries, per sender, the correction
c = b_cached − b_run from the sender's layer on (`carry`), and reads s − b_run = delta + c.

Everything is fixed-shape: edges and senders are padded to powers of two, and a layer's inputs are built
from tables of each edge's sender, receiver kind, layer and head (`EdgeTables`), so one compiled program
serves every layer, every mask and every set of edges of the same padded sizes.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from intjax.errors import InputError
from intjax.model.sites import Activations, InputEdits
from intjax.patching.components import EDGE_RECEIVERS, Component, Site

SENDER_CODES = {"embed": 0, "z": 1, "mlp_out": 2}
SENDER_SITE_KIND = {"embed": "resid_pre", "z": "z", "mlp_out": "mlp_out"}  # the activation its write comes from


class EdgeTables(NamedTuple):
    """Which edge each component owns and what each edge connects (constant over prompts; padded rows own
    nothing and read sender slot 0 with weight 0)."""

    owner: Float[Array, "slots E"]  # 1 where component i owns edge e
    sender: Int[Array, " E"]  # the edge's sender slot
    kind: Int[Array, " E"]  # the receiver's `ReceiverInfo.index` (q, k, v, mlp, logits)
    layer: Int[Array, " E"]  # the receiver's layer (the last layer for logits)
    head: Int[Array, " E"]  # the receiver's head (q: query head; k, v: key/value head; else 0)
    sender_layer: Int[Array, " Ns"]  # -1: the embedding; -2: a padding slot
    sender_head: Int[Array, " Ns"]  # -1 where the sender is not a head
    sender_code: Int[Array, " Ns"]  # SENDER_CODES


class EdgeData(NamedTuple):
    """Per prompt (leading axis P): the senders' source − base writes, each edge's positions and, under
    recompute semantics, the cached base values a run's own sender writes are compared with."""

    delta: Float[Array, "P Ns T D"]
    pos: Float[Array, "P E T"]
    z_base: Optional[Float[Array, "P L T H Dh"]] = None
    mlp_base: Optional[Float[Array, "P L T D"]] = None


def _pow2(n: int, least: int) -> int:
    return max(least, 1 << max(0, int(n) - 1).bit_length())


def edge_sites(components: Sequence[Component]) -> list[tuple[int, Site]]:
    """(component index, site) of every edge site of the components, in order."""
    return [(i, s) for i, c in enumerate(components) for s in c.sites if s.is_edge]


def _first_input_layer(components: Sequence[Component]) -> int:
    """The earliest layer where some component can change what a later sender computes (the logits feed
    no sender)."""
    layers = [s.layer for c in components for s in c.sites if s.kind != "logits_in"]
    return min(layers, default=1 << 30)


def _is_carried(sender: tuple, first: int) -> bool:
    """Whether a run may compute this sender differently from the base run (then recompute semantics
    carries its correction): only a sender at or after the first layer some component changes."""
    return sender[0] != "embed" and sender[1] >= first


def senders_of(components: Sequence[Component]) -> list[tuple]:
    """The distinct senders of the components' edges: the ones a run may compute differently first
    (`carried_count` of them), each part sorted by layer."""
    first = _first_input_layer(components)
    return sorted({s.sender for _, s in edge_sites(components)},
                  key=lambda x: (not _is_carried(x, first), x[1], x[0] != "z", x[2]))


def carried_count(components: Sequence[Component]) -> int:
    """Sender slots whose correction b_cached − b_run a recompute run carries (a power of two, or 0 when no
    component can change any sender: e.g. edges into the logits only)."""
    first = _first_input_layer(components)
    n = sum(_is_carried(s, first) for s in senders_of(components))
    return _pow2(n, 1) if n else 0


def sender_kinds(components: Sequence[Component]) -> set[str]:
    """The activation kinds the senders' writes are computed from."""
    return {SENDER_SITE_KIND[s[0]] for s in senders_of(components)}


def receivers_of(components: Sequence[Component]) -> tuple[str, ...]:
    """The receiver kinds the edges feed, in registry order (a static property of a problem)."""
    kinds = {s.kind for _, s in edge_sites(components)}
    return tuple(k for k in EDGE_RECEIVERS if k in kinds)


def edge_tables(components: Sequence[Component], slots: int, dtype) -> EdgeTables:
    """The tables of the components' edges, E and Ns padded to powers of two."""
    sites = edge_sites(components)
    twice = sorted({c.name for i, s in sites for j, t in sites if i < j and s == t for c in (components[i],)})
    if twice:
        raise InputError(f"components {twice} share an edge with a later one; list each edge once")
    senders = senders_of(components)
    index = {s: k for k, s in enumerate(senders)}
    E, Ns = _pow2(len(sites), 8), _pow2(len(senders), 2)
    owner = np.zeros((slots, E), dtype)
    sender, kind, layer, head = (np.zeros(E, np.int32) for _ in range(4))
    layer[:] = -1
    for e, (i, s) in enumerate(sites):
        owner[i, e] = 1
        sender[e], kind[e], layer[e] = index[s.sender], EDGE_RECEIVERS[s.kind].index, s.layer
        head[e] = 0 if s.head is None else s.head
    s_layer, s_head, s_code = np.full(Ns, -2, np.int32), np.full(Ns, -1, np.int32), np.zeros(Ns, np.int32)
    for k, (code, l, h) in enumerate(senders):
        s_layer[k], s_head[k], s_code[k] = l, h, SENDER_CODES[code]
    return EdgeTables(*jax.device_put([owner, sender, kind, layer, head, s_layer, s_head, s_code]))


def edge_positions(components: Sequence[Component], roles: dict, P: int, T: int, positions) -> np.ndarray:
    """`[P, E, T]`: 1 at the positions each edge acts on (`positions(pos, roles, p, T)` as for sites)."""
    sites = edge_sites(components)
    out = np.zeros((P, _pow2(len(sites), 8), T), np.float32)
    for p in range(P):
        for e, (_, s) in enumerate(sites):
            out[p, e, positions(s.pos, roles, p, T)] = 1
    return out


def sender_deltas(model, base: dict, source: dict, tables: EdgeTables) -> Float[Array, "P Ns T D"]:
    """Each sender slot's source write minus its base write, `[P, Ns, T, D]` (0 for padding slots);
    `base`, `source`: kind -> `[P, L, T, ...]` activations of both runs, with the kinds the senders need."""
    diff = {k: source[k] - base[k] for k in ("resid_pre", "z", "mlp_out") if k in base}
    some = next(iter(diff.values()))  # [P, L, T, ...]
    shape = (some.shape[0], some.shape[2], model.config.d_model)

    def one(slot):
        code, layer, head = slot
        out = jnp.zeros(shape, some.dtype)
        at = jnp.maximum(layer, 0)
        if "resid_pre" in diff:
            out = jnp.where(code == SENDER_CODES["embed"], diff["resid_pre"][:, 0], out)
        if "mlp_out" in diff:
            out = jnp.where(code == SENDER_CODES["mlp_out"], diff["mlp_out"][:, at], out)
        if "z" in diff:
            heads = jax.vmap(lambda z: model.head_outputs(at, z))(diff["z"][:, at])  # [P, T, H, D]
            out = jnp.where(code == SENDER_CODES["z"], heads[:, :, jnp.maximum(head, 0)], out)
        return jnp.where(layer >= -1, out, 0)

    slots = jax.lax.map(one, (tables.sender_code, tables.sender_layer, tables.sender_head))  # [Ns, P, T, D]
    return jnp.moveaxis(slots, 0, 1)


def layer_inputs(tables: EdgeTables, d: EdgeData, alpha: Float[Array, " slots"], layer: Int[Array, ""] | int,
                 writes: Float[Array, "Ns T D"], receivers: tuple[str, ...], n_heads: int, n_kv_heads: int,
                 recompute: bool) -> InputEdits:
    """What this layer's edges add to its readers' inputs, for ONE (mask, prompt); `d` and `writes` (each
    sender's s − b for this run) cover the positions the run computes."""
    coef = (alpha @ tables.owner * (tables.layer == layer))[:, None] * d.pos  # [E, T]
    Ns, T = writes.shape[:2]

    def weights(receiver: str, n: Optional[int]) -> Array:  # [Ns, T, n] or [Ns, T]
        c = coef * (tables.kind == EDGE_RECEIVERS[receiver].index)[:, None]
        if n is None:
            return jnp.zeros((Ns, T), coef.dtype).at[tables.sender].add(c)
        return jnp.zeros((Ns, T, n), coef.dtype).at[tables.sender, :, jnp.minimum(tables.head, n - 1)].add(c)

    def per_head(receiver: str, n: int) -> Optional[Array]:
        return jnp.einsum("sth,std->thd", weights(receiver, n), writes) if receiver in receivers else None

    mlp = mlp_heads = None
    if "mlp_in" in receivers:
        w = weights("mlp_in", None)
        mlp = jnp.einsum("st,std->td", w, writes)
        if recompute:  # same-layer heads: their base is this run's z, known only inside the block
            same = (tables.sender_layer == layer) & (tables.sender_code == SENDER_CODES["z"])
            heads = jnp.maximum(tables.sender_head, 0)
            head_w = jnp.zeros((T, n_heads), w.dtype).at[:, heads].add((w * same[:, None]).T)
            mlp_heads = (head_w, jax.lax.dynamic_index_in_dim(d.z_base, layer, keepdims=False))
    return InputEdits(q=per_head("q_in", n_heads), k=per_head("k_in", n_kv_heads), v=per_head("v_in", n_kv_heads),
                      mlp=mlp, mlp_heads=mlp_heads)


def logits_input(tables: EdgeTables, d: EdgeData, alpha: Float[Array, " slots"], writes: Float[Array, "Ns T D"],
                 row: Int[Array, ""]) -> Float[Array, " D"]:
    """What the edges into the logits add to the final residual at position `row`."""
    c = (alpha @ tables.owner * (tables.kind == EDGE_RECEIVERS["logits_in"].index)) * d.pos[:, row]  # [E]
    w = jnp.zeros(writes.shape[0], c.dtype).at[tables.sender].add(c)
    return w @ writes[:, row]


def corrections(model, tables: EdgeTables, d: EdgeData, layer: Int[Array, ""] | int, acts: Activations,
                rows: Optional[Int[Array, " R"]]) -> Float[Array, "Ns R D"]:
    """b_cached − b_run of the senders computed in this layer, at the rows it computed (0 for the others)."""
    z_base = jax.lax.dynamic_index_in_dim(d.z_base, layer, keepdims=False)
    mlp_base = jax.lax.dynamic_index_in_dim(d.mlp_base, layer, keepdims=False)
    if rows is not None:
        z_base, mlp_base = z_base[rows], mlp_base[rows]
    heads = model.head_outputs(layer, z_base - acts.z)  # [R, H, D]
    here = tables.sender_layer == layer
    head_c = jnp.moveaxis(heads[:, jnp.maximum(tables.sender_head, 0)], 1, 0)  # [Ns, R, D]
    is_head = (here & (tables.sender_code == SENDER_CODES["z"]))[:, None, None]
    is_mlp = (here & (tables.sender_code == SENDER_CODES["mlp_out"]))[:, None, None]
    return jnp.where(is_head, head_c, 0) + jnp.where(is_mlp, (mlp_base - acts.mlp_out)[None], 0)


def edge_flops(cfg, receivers: tuple[str, ...], n_senders: int, carried: int, T: int) -> tuple[int, int, int]:
    """Matmul FLOPs edges add to one run of one prompt computing T positions: (a layer computing every
    position, the last layer (its outputs at the read position only), the readout).

    Each layer builds its receivers' inputs from the Ns padded senders' writes at every position (2·Ns·D
    per position and per query head, key/value head or MLP input); under recompute with carried senders it
    projects this run's z through every head's W_O at the positions it computes (2·H·Dh·D each), and
    twice more through the output projection where a head feeds its own layer's MLP; edges into the logits
    weigh the senders' writes at the read position (2·Ns·D).
    """
    D, H, Hkv = cfg.d_model, cfg.n_heads, cfg.n_kv_heads
    width = {"q_in": H, "k_in": Hkv, "v_in": Hkv, "mlp_in": 1}
    inputs = 2 * n_senders * T * D * sum(width[r] for r in receivers if r in width)
    per_row = 0
    if carried:
        per_row = 2 * H * cfg.d_head * D * (1 + (2 if "mlp_in" in receivers else 0))
    logits = 2 * n_senders * D if "logits_in" in receivers else 0
    return inputs + T * per_row, inputs + per_row, logits
