"""GPT-2 as a pure Equinox module, written for ONE sequence (vmap outside).

Parameters are stacked per layer (a leading `L` axis) and the layers run under
`jax.lax.scan`. Attention weights are per head. Patching needs no hooks: a
`LayerEdits` pytree, stacked per layer like the weights, says which sites to
overwrite and with what; `run_blocks` applies it inside the scan.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from intjax.errors import InputError
from intjax.model.config import GPT2Config


class Activations(NamedTuple):
    """Every activation of one forward pass, stacked over layers."""

    resid_pre: Float[Array, "L T D"]
    z: Float[Array, "L T H Dh"]
    attn_out: Float[Array, "L T D"]
    resid_mid: Float[Array, "L T D"]
    mlp_out: Float[Array, "L T D"]
    resid_post: Float[Array, "L T D"]
    pattern: Optional[Float[Array, "L T H K"]] = None  # query position, head, key position (K = T)
    k: Optional[Float[Array, "L T Hkv Dh"]] = None  # keys (after any position encoding) per key/value head
    v: Optional[Float[Array, "L T Hkv Dh"]] = None  # values per key/value head


class SiteEdit(NamedTuple):
    """Overwrite one site: v = value + pin·(clean − value), then v + mask·(source − v).

    `mask` and `pin` have the site's shape without its last (feature) axis, e.g.
    `[T, H]` for `z` and for `pattern` (whose last axis is the key position), `[T, Hkv]` for `k` and `v`;
    `source` and `clean` have the site's full shape. With
    `pin=None` the base is the value computed in this run (recompute semantics).
    """

    mask: Array
    source: Array
    pin: Optional[Array] = None
    clean: Optional[Array] = None

    def apply(self, value: Array) -> Array:
        """Return the edited value of the site."""
        if self.pin is not None:
            value = value + self.pin[..., None] * (self.clean - value)
        return value + self.mask[..., None] * (self.source - value)


class LayerEdits(NamedTuple):
    """Edits of the sites of a layer (None: that site is left alone)."""

    resid_pre: Optional[SiteEdit] = None  # mask [T]
    k: Optional[SiteEdit] = None  # mask [T, Hkv]: the keys of key position t, key/value head h
    v: Optional[SiteEdit] = None  # mask [T, Hkv]: the values of key position t, key/value head h
    pattern: Optional[SiteEdit] = None  # mask [T, H]: the attention weights of query t, head h
    z: Optional[SiteEdit] = None  # mask [T, H]
    mlp_out: Optional[SiteEdit] = None  # mask [T]


def _edit(edit: Optional[SiteEdit], value: Array) -> Array:
    return value if edit is None else edit.apply(value)


class Blocks(eqx.Module):
    """Weights of all transformer blocks, stacked along a leading layer axis."""

    ln1_w: Float[Array, "L D"]
    ln1_b: Float[Array, "L D"]
    W_Q: Float[Array, "L H D Dh"]
    b_Q: Float[Array, "L H Dh"]
    W_K: Float[Array, "L H D Dh"]
    b_K: Float[Array, "L H Dh"]
    W_V: Float[Array, "L H D Dh"]
    b_V: Float[Array, "L H Dh"]
    W_O: Float[Array, "L H Dh D"]
    b_O: Float[Array, "L D"]
    ln2_w: Float[Array, "L D"]
    ln2_b: Float[Array, "L D"]
    W_in: Float[Array, "L D M"]
    b_in: Float[Array, "L M"]
    W_out: Float[Array, "L M D"]
    b_out: Float[Array, "L D"]


def layer_norm(x: Float[Array, "... D"], w: Array, b: Array, eps: float) -> Float[Array, "... D"]:
    """LayerNorm over the last axis, as torch.nn.LayerNorm computes it."""
    mean = x.mean(-1, keepdims=True)
    var = jnp.square(x - mean).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps) * w + b


def _rows(edit: Optional[SiteEdit], rows: Optional[Array]) -> Optional[SiteEdit]:
    return edit if edit is None or rows is None else jax.tree.map(lambda a: a[rows], edit)


def keys_values(cfg: GPT2Config, p: Blocks, resid: Float[Array, "T D"]) -> tuple[Float[Array, "T H Dh"], Float[Array, "T H Dh"]]:
    """Attention keys and values of ONE layer at every position of `resid` (its input residual)."""
    x = layer_norm(resid, p.ln1_w, p.ln1_b, cfg.layer_norm_eps)
    return jnp.einsum("td,hde->the", x, p.W_K) + p.b_K, jnp.einsum("td,hde->the", x, p.W_V) + p.b_V


def edit_keys_values(kv_edits: tuple[Optional[SiteEdit], Optional[SiteEdit]], k: Float[Array, "T Hkv Dh"],
                     v: Float[Array, "T Hkv Dh"]) -> tuple[Float[Array, "T Hkv Dh"], Float[Array, "T Hkv Dh"]]:
    """Keys and values with the (key, value) edits applied (any family's; every position, not query rows)."""
    return _edit(kv_edits[0], k), _edit(kv_edits[1], v)


def with_prefix(prefix_kv: Optional[tuple[Array, Array]], k: Float[Array, "T Hkv Dh"], v: Float[Array, "T Hkv Dh"],
                ) -> tuple[Float[Array, "K Hkv Dh"], Float[Array, "K Hkv Dh"]]:
    """The keys and values of every position a query may read: a shared prefix's cached ones (if any) first."""
    if prefix_kv is None:
        return k, v
    return jnp.concatenate([prefix_kv[0], k]), jnp.concatenate([prefix_kv[1], v])


def attention(
    cfg: GPT2Config,
    p: Blocks,
    scale: Float[Array, ""],
    resid: Float[Array, "T D"],
    rows: Optional[Int[Array, " R"]] = None,
    prefix_kv: Optional[tuple[Float[Array, "S H Dh"], Float[Array, "S H Dh"]]] = None,
    pattern_edit: Optional[SiteEdit] = None,
    kv_edits: tuple[Optional[SiteEdit], Optional[SiteEdit]] = (None, None),
) -> tuple[Float[Array, "R H K"], Float[Array, "R H Dh"], Float[Array, "T H Dh"], Float[Array, "T H Dh"]]:
    """Attention pattern (over K = S + T keys), per-head outputs z (for query rows `rows`, all if None),
    and the keys and values of the T positions of ONE layer; `pattern_edit` (of those rows) overwrites
    the pattern before it weighs the values, `kv_edits` (of every position) the keys and values before
    any query reads them.

    With `prefix_kv`, `resid` holds positions S.. only and the keys and values of
    positions 0..S-1 are given (cached from a run that agrees with this one there);
    `rows` index into `resid`.
    """
    T = resid.shape[0]
    S = 0 if prefix_kv is None else prefix_kv[0].shape[0]
    x = layer_norm(resid, p.ln1_w, p.ln1_b, cfg.layer_norm_eps)
    xq = x if rows is None else x[rows]
    q = jnp.einsum("td,hde->the", xq, p.W_Q) + p.b_Q
    k_new, v_new = edit_keys_values(kv_edits, *keys_values(cfg, p, resid))  # the LayerNorm is shared with q under jit
    k, v = with_prefix(prefix_kv, k_new, v_new)
    scores = jnp.einsum("the,she->ths", q, k) * scale
    qpos = S + (jnp.arange(T) if rows is None else rows)
    causal = (qpos[:, None] >= jnp.arange(S + T)[None, :])[:, None, :]  # [R, 1, K]
    pattern = _edit(pattern_edit, jax.nn.softmax(jnp.where(causal, scores, jnp.finfo(scores.dtype).min), axis=-1))
    return pattern, jnp.einsum("ths,she->the", pattern, v), k_new, v_new


def attn_output(p: Blocks, z: Float[Array, "T H Dh"]) -> Float[Array, "T D"]:
    """Sum over heads of z through W_O, plus the output bias."""
    return jnp.einsum("the,hed->td", z, p.W_O) + p.b_O


def mlp(cfg: GPT2Config, p: Blocks, resid_mid: Float[Array, "T D"]) -> Float[Array, "T D"]:
    """The MLP output of one layer."""
    x = layer_norm(resid_mid, p.ln2_w, p.ln2_b, cfg.layer_norm_eps)
    return cfg.activation_fn()(x @ p.W_in + p.b_in) @ p.W_out + p.b_out


def block_forward(
    cfg: GPT2Config,
    p: Blocks,
    scale: Float[Array, ""],
    resid: Float[Array, "T D"],
    edits: Optional[LayerEdits] = None,
    with_pattern: bool = False,
    rows: Optional[Int[Array, " R"]] = None,
    z: Optional[Float[Array, "R H Dh"]] = None,
    resid_mid: Optional[Float[Array, "R D"]] = None,
    prefix_kv: Optional[tuple[Array, Array]] = None,
) -> tuple[Float[Array, "R D"], Activations]:
    """One transformer block (weights `p` of ONE layer), applying `edits` to its sites.

    With `rows`, only those positions' outputs are computed (keys and values still
    read every position): the last layer needs only the position the metric reads.
    A run whose first edit is at a head or an MLP may pass the cached unedited `z`
    or `resid_mid` of these rows; the block then starts there instead of
    recomputing them. With `prefix_kv` (see `attention`) `resid`, `edits` and
    `rows` cover only the positions after a shared prefix. Returns the residual after the block and the block's
    activations (no L axis; those not computed are None; unread ones cost
    nothing under jit).
    """
    e = edits if edits is not None else LayerEdits()
    pattern = attn_out = k = v = None
    if resid_mid is None:
        if z is None:
            resid = _edit(e.resid_pre, resid)
            pattern, z, k, v = attention(cfg, p, scale, resid, rows, prefix_kv, _rows(e.pattern, rows), (e.k, e.v))
        z = _edit(_rows(e.z, rows), z)
        attn_out = attn_output(p, z)
        resid_mid = (resid if rows is None else resid[rows]) + attn_out
    mlp_out = _edit(_rows(e.mlp_out, rows), mlp(cfg, p, resid_mid))
    resid_post = resid_mid + mlp_out
    acts = Activations(
        resid, z, attn_out, resid_mid, mlp_out, resid_post, pattern if with_pattern else None, k, v
    )
    return resid_post, acts


def scan_blocks(forward, cfg, blocks, per_layer: Array, resid: Float[Array, "T D"], start: int, stop: int,
                edits, collect: bool, with_pattern: bool) -> tuple[Float[Array, "T D"], Optional[Activations]]:
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


def one_layer(forward, cfg, blocks, per_layer: Array, index: Int[Array, ""] | int, resid: Float[Array, "T D"],
              edits, **entries) -> Float[Array, "R D"]:
    """The residual after layer `index` (may be traced) of any family's block `forward` (see `scan_blocks`);
    `entries` are its rows / z / resid_mid / prefix_kv."""
    params = jax.tree.map(lambda a: a[index], blocks)
    return forward(cfg, params, per_layer[index], resid, edits, **entries)[0]


class GPT2(eqx.Module):
    """GPT-2 for one sequence: `logits, acts = model(tokens)`."""

    config: GPT2Config = eqx.field(static=True)
    W_E: Float[Array, "V D"]
    W_pos: Float[Array, "P D"]
    blocks: Blocks
    lnf_w: Float[Array, " D"]
    lnf_b: Float[Array, " D"]
    W_U: Optional[Float[Array, "D V"]] = None  # None: tied to W_E

    # The entry points that take a user's tokens annotate them as ArrayLike (numpy or jax; meant
    # as `[T]` integers): check_tokens then names what is wrong, before any shape check could.

    def check_tokens(self, tokens: ArrayLike) -> None:
        """Raise InputError for tokens the model cannot read (skipped under jit); `[T]` integers are fine."""
        if isinstance(tokens, jax.core.Tracer):
            return
        t = np.asarray(tokens)
        cfg = self.config
        if t.ndim != 1:
            raise InputError(
                f"tokens must be one sequence of shape [T], got shape {t.shape}; "
                "for a batch use jax.vmap(model)(tokens)"
            )
        if not np.issubdtype(t.dtype, np.integer):
            raise InputError(f"tokens must be integers, got dtype {t.dtype}")
        if t.shape[0] == 0 or t.shape[0] > cfg.n_positions:
            raise InputError(
                f"sequence length {t.shape[0]} is outside 1..n_positions={cfg.n_positions}; "
                "shorten the prompt"
            )
        bad = t[(t < 0) | (t >= cfg.vocab_size)]
        if bad.size:
            raise InputError(
                f"token ids {sorted(set(bad.tolist()))[:5]} are outside the vocabulary "
                f"0..{cfg.vocab_size - 1}; tokenize with this model's tokenizer"
            )

    def embed(self, tokens: ArrayLike) -> Float[Array, "T D"]:
        """Token plus position embedding: the residual stream before layer 0."""
        self.check_tokens(tokens)
        return self.W_E[tokens] + self.W_pos[: tokens.shape[0]]

    def attn_scales(self) -> Float[Array, " L"]:
        """Per-layer factor applied to the attention scores."""
        cfg = self.config
        s = np.ones(cfg.n_layers, np.float32)
        if cfg.scale_attn_weights:
            s /= np.sqrt(cfg.d_head)
        if cfg.scale_attn_by_inverse_layer_idx:
            s /= np.arange(1, cfg.n_layers + 1)
        return jnp.asarray(s, self.W_E.dtype)

    def run_blocks(
        self,
        resid: Float[Array, "T D"],
        *,
        start: int = 0,
        stop: Optional[int] = None,
        edits: Optional[LayerEdits] = None,
        collect: bool = False,
        with_pattern: bool = False,
    ) -> tuple[Float[Array, "T D"], Optional[Activations]]:
        """Run layers start..stop-1 on `resid`, applying `edits` (stacked over ALL layers).

        Returns the residual after the last layer run and, if `collect`, the
        activations of the layers run (leading axis stop - start).
        """
        stop = self.config.n_layers if stop is None else stop
        return scan_blocks(block_forward, self.config, self.blocks, self.attn_scales(), resid, start, stop, edits,
                           collect, with_pattern)

    def layer(
        self,
        index: Int[Array, ""] | int,
        resid: Float[Array, "T D"],
        edits: Optional[LayerEdits] = None,
        *,
        rows: Optional[Int[Array, " R"]] = None,
        z: Optional[Float[Array, "R H Dh"]] = None,
        resid_mid: Optional[Float[Array, "R D"]] = None,
        prefix_kv: Optional[tuple[Array, Array]] = None,
    ) -> Float[Array, "R D"]:
        """The residual after layer `index` (may be traced: one compile for every layer), with `edits`
        applied; `rows`, `z`, `resid_mid` and `prefix_kv` as in `block_forward`."""
        return one_layer(block_forward, self.config, self.blocks, self.attn_scales(), index, resid, edits,
                         rows=rows, z=z, resid_mid=resid_mid, prefix_kv=prefix_kv)

    def keys_values(self, resid_pre: Float[Array, "L S D"]) -> tuple[Float[Array, "L S H Dh"], Float[Array, "L S H Dh"]]:
        """Every layer's attention keys and values at the given residuals (one per layer)."""
        return jax.vmap(lambda p, r: keys_values(self.config, p, r))(self.blocks, resid_pre)

    def activations(self, tokens: ArrayLike, *, with_pattern: bool = False) -> Activations:
        """The activations pytree of one sequence, without the logits."""
        return self.run_blocks(self.embed(tokens), collect=True, with_pattern=with_pattern)[1]

    def unembed(
        self,
        resid: Float[Array, "*T D"],
        columns: Optional[Int[Array, " K"]] = None,
        final_norm: bool = True,
    ) -> Float[Array, "*T K"]:
        """Final LayerNorm then logits; `columns` picks vocabulary entries (all if None).

        `final_norm=False` skips the LayerNorm: a readout linear in the residual
        (direct logit attribution's view).
        """
        x = resid
        if final_norm:
            x = layer_norm(resid, self.lnf_w, self.lnf_b, self.config.layer_norm_eps)
        W_U = self.W_E.T if self.W_U is None else self.W_U
        if columns is not None:
            W_U = W_U[:, columns]
        return x @ W_U

    def __call__(
        self, tokens: ArrayLike, *, with_pattern: bool = False
    ) -> tuple[Float[Array, "T V"], Activations]:
        """Logits `[T, vocab]` and the activations pytree of one sequence."""
        resid, acts = self.run_blocks(self.embed(tokens), collect=True, with_pattern=with_pattern)
        return self.unembed(resid), acts

    def n_params(self) -> int:
        """Number of parameters (a tied unembedding counted once)."""
        return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(self))
