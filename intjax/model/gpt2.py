"""GPT-2 as a pure Equinox module, written for ONE sequence (vmap outside): its config, weights and maths.

Parameters are stacked per layer (a leading `L` axis) and the layers run under
`jax.lax.scan`. Attention weights are per head. Patching needs no hooks: a
`LayerEdits` pytree, stacked per layer like the weights, says which sites to
overwrite and with what; `block.patched_block` applies it between this file's attention and MLP.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from intjax.model.block import head_inputs, patched_block, project, with_prefix
from intjax.model.decoder import Decoder
from intjax.model.primitives import ACTIVATIONS, layer_norm
from intjax.model.sites import Activations, LayerEdits, SiteEdit, apply_edit, edit_keys_values


@dataclasses.dataclass(frozen=True)
class GPT2Config:
    """Architecture numbers of a GPT-2 family model (HF names in comments)."""

    vocab_size: int = 50257
    n_positions: int = 1024
    d_model: int = 768  # n_embd
    n_layers: int = 12  # n_layer
    n_heads: int = 12  # n_head
    d_mlp: int = 3072  # n_inner, or 4 * n_embd when None
    layer_norm_eps: float = 1e-5  # layer_norm_epsilon
    activation: str = "gelu_new"  # activation_function
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    tie_word_embeddings: bool = True

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation {self.activation!r} is not implemented; "
                f"use one of {sorted(ACTIVATIONS)}"
            )
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")

    @property
    def d_head(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.n_heads

    @property
    def n_kv_heads(self) -> int:
        """Key/value heads per layer: GPT-2 gives every head its own keys and values."""
        return self.n_heads

    @property
    def gated_mlp(self) -> bool:
        """GPT-2's MLP is act(x W_in) W_out: two matrices, no gate."""
        return False

    @property
    def parallel_residual(self) -> bool:
        """GPT-2's MLP reads resid_mid (the layer input plus the attention output)."""
        return False

    def activation_fn(self) -> Callable[[jax.Array], jax.Array]:
        """The MLP non-linearity named by `activation`."""
        return ACTIVATIONS[self.activation]


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


def keys_values(cfg: GPT2Config, p: Blocks, resid: Float[Array, "T D"], k_in: Optional[Array] = None,
                v_in: Optional[Array] = None) -> tuple[Float[Array, "T H Dh"], Float[Array, "T H Dh"]]:
    """Attention keys and values of ONE layer at every position of `resid` (its input residual); `k_in`,
    `v_in` `[T, H, D]`: what edges add to each head's key / value input."""
    def ln(x):
        return layer_norm(x, p.ln1_w, p.ln1_b, cfg.layer_norm_eps)

    return (project(head_inputs(ln, resid, k_in), p.W_K) + p.b_K,
            project(head_inputs(ln, resid, v_in), p.W_V) + p.b_V)


def attention(
    cfg: GPT2Config,
    p: Blocks,
    scale: Float[Array, ""],
    resid: Float[Array, "T D"],
    rows: Optional[Int[Array, " R"]] = None,
    prefix_kv: Optional[tuple[Float[Array, "S H Dh"], Float[Array, "S H Dh"]]] = None,
    pattern_edit: Optional[SiteEdit] = None,
    kv_edits: tuple[Optional[SiteEdit], Optional[SiteEdit]] = (None, None),
    heads_in: Optional[tuple[Optional[Array], Optional[Array], Optional[Array]]] = None,
) -> tuple[Float[Array, "R H K"], Float[Array, "R H Dh"], Float[Array, "T H Dh"], Float[Array, "T H Dh"]]:
    """Attention pattern (over K = S + T keys), per-head outputs z (for query rows `rows`, all if None),
    and the keys and values of the T positions of ONE layer; `pattern_edit` (of those rows) overwrites
    the pattern before it weighs the values, `kv_edits` (of every position) the keys and values before
    any query reads them; `heads_in` (q of the rows, k, v: `[·, H, D]` or None) what edges add to each
    head's query, key and value inputs.

    With `prefix_kv`, `resid` holds positions S.. only and the keys and values of
    positions 0..S-1 are given (cached from a run that agrees with this one there);
    `rows` index into `resid`.
    """
    T = resid.shape[0]
    S = 0 if prefix_kv is None else prefix_kv[0].shape[0]
    q_in, k_in, v_in = heads_in or (None, None, None)
    x = head_inputs(lambda r: layer_norm(r, p.ln1_w, p.ln1_b, cfg.layer_norm_eps),
                    resid if rows is None else resid[rows], q_in)
    q = project(x, p.W_Q) + p.b_Q
    k_new, v_new = edit_keys_values(kv_edits, *keys_values(cfg, p, resid, k_in, v_in))  # LayerNorm shared under jit
    k, v = with_prefix(prefix_kv, k_new, v_new)
    scores = jnp.einsum("the,she->ths", q, k) * scale
    qpos = S + (jnp.arange(T) if rows is None else rows)
    causal = (qpos[:, None] >= jnp.arange(S + T)[None, :])[:, None, :]  # [R, 1, K]
    pattern = apply_edit(pattern_edit, jax.nn.softmax(jnp.where(causal, scores, jnp.finfo(scores.dtype).min), axis=-1))
    return pattern, jnp.einsum("ths,she->the", pattern, v), k_new, v_new


def attn_output(p: Blocks, z: Float[Array, "T H Dh"]) -> Float[Array, "T D"]:
    """Sum over heads of z through W_O, plus the output bias."""
    return jnp.einsum("the,hed->td", z, p.W_O) + p.b_O


def mlp(cfg: GPT2Config, p: Blocks, resid_mid: Float[Array, "T D"]) -> Float[Array, "T D"]:
    """The MLP output of one layer."""
    x = layer_norm(resid_mid, p.ln2_w, p.ln2_b, cfg.layer_norm_eps)
    return cfg.activation_fn()(x @ p.W_in + p.b_in) @ p.W_out + p.b_out


def block_forward(cfg: GPT2Config, p: Blocks, scale: Float[Array, ""], resid: Float[Array, "T D"],
                  edits: Optional[LayerEdits] = None, with_pattern: bool = False, **entries,
                  ) -> tuple[Float[Array, "R D"], Activations]:
    """One GPT-2 block (weights `p` of ONE layer) with `edits` applied; `entries` (rows, z, resid_mid,
    prefix_kv) as in `block.patched_block`."""
    return patched_block(attention, attn_output, mlp, cfg, p, scale, resid, edits, with_pattern, **entries)


class GPT2(Decoder):
    """GPT-2 for one sequence: `logits, acts = model(tokens)` (the shared methods are `Decoder`'s)."""

    config: GPT2Config = eqx.field(static=True)
    W_E: Float[Array, "V D"]
    W_pos: Float[Array, "P D"]
    blocks: Blocks
    lnf_w: Float[Array, " D"]
    lnf_b: Float[Array, " D"]
    W_U: Optional[Float[Array, "D V"]] = None  # None: tied to W_E

    block = staticmethod(block_forward)
    layer_keys_values = staticmethod(keys_values)

    def embed(self, tokens: ArrayLike) -> Float[Array, "T D"]:
        """Token plus position embedding: the residual stream before layer 0."""
        self.check_tokens(tokens)
        return self.W_E[tokens] + self.W_pos[: tokens.shape[0]]

    def layer_constants(self) -> Float[Array, " L"]:
        """Per-layer factor applied to the attention scores (the constant `block_forward` reads)."""
        cfg = self.config
        s = np.ones(cfg.n_layers, np.float32)
        if cfg.scale_attn_weights:
            s /= np.sqrt(cfg.d_head)
        if cfg.scale_attn_by_inverse_layer_idx:
            s /= np.arange(1, cfg.n_layers + 1)
        return jnp.asarray(s, self.W_E.dtype)

    def final_norm(self, resid: Float[Array, "*T D"]) -> Float[Array, "*T D"]:
        """The final LayerNorm."""
        return layer_norm(resid, self.lnf_w, self.lnf_b, self.config.layer_norm_eps)
