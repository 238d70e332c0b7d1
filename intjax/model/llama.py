"""The Llama family (Llama, Qwen2, Mistral) and GPT-NeoX (Pythia) as a pure Equinox module, written
for ONE sequence.

Its config, weights and maths; the layout and the seam are `Decoder`'s and `block.patched_block`'s
(stacked per-layer weights under `jax.lax.scan`, `LayerEdits` applied inside the scan, `rows` / `z` /
`resid_mid` / `prefix_kv` entry points), with the Llama computation:
RMSNorm, rotary position embeddings (RoPE, with the checkpoint's scaling),
grouped-query attention (`n_kv_heads` key/value heads, each read by
`n_heads // n_kv_heads` query heads), a gated SiLU MLP (SwiGLU), optional
q/k/v, output and MLP biases, optional sliding-window attention, and no
position embedding. Sites are the GPT-2 ones; `z` and `pattern` (`[query, head, key]`) are per
QUERY head, the keys `k` (after RoPE) and values `v` per KEY/VALUE head.

GPT-NeoX is the same computation with four switches in its config: LayerNorm
with biases instead of RMSNorm (`norm="layer"`), a plain MLP instead of the
gated one (`gated_mlp=False`), RoPE on the first `rotary_dim` features of each
head only, and attention and MLP reading the same residual
(`parallel_residual=True`; `resid_mid` is then the layer input plus the
attention output, and the MLP still reads the layer input).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from intjax.model.block import check_edits  # noqa: F401 (re-exported)
from intjax.model.block import head_inputs, patched_block, project, with_prefix
from intjax.model.decoder import Decoder
from intjax.model.primitives import ACTIVATIONS, layer_norm
from intjax.model.sites import Activations, LayerEdits, SiteEdit, apply_edit, edit_keys_values

ROPE_TYPES = ("default", "linear", "dynamic", "llama3", "yarn")


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    """Architecture numbers of a Llama-family or GPT-NeoX model (HF names in comments)."""

    model_type: str = "llama"  # llama, qwen2, mistral or gpt_neox
    vocab_size: int = 32000
    n_positions: int = 2048  # max_position_embeddings
    d_model: int = 4096  # hidden_size
    n_layers: int = 32  # num_hidden_layers
    n_heads: int = 32  # num_attention_heads (query heads)
    n_kv_heads: int = 32  # num_key_value_heads
    d_head: int = 128  # head_dim, or hidden_size // num_attention_heads
    d_mlp: int = 11008  # intermediate_size
    norm_eps: float = 1e-6  # rms_norm_eps, or layer_norm_eps with norm="layer"
    activation: str = "silu"  # hidden_act
    tie_word_embeddings: bool = False
    qkv_bias: bool = False  # attention_bias (llama), always true for qwen2
    o_bias: bool = False  # attention_bias (llama only)
    mlp_bias: bool = False
    rope_theta: float = 10000.0
    rope_type: str = "default"  # rope_parameters["rope_type"] (rope_scaling["type"] in older configs)
    rope_scaling: tuple[tuple[str, float], ...] = ()  # the scaling's numbers (factor, ...), sorted by name
    layer_windows: tuple[int, ...] = ()  # per layer: sliding-window size, 0 for full causal attention
    norm: str = "rms"  # "rms" (RMSNorm) or "layer" (LayerNorm with bias: GPT-NeoX)
    gated_mlp: bool = True  # down(act(gate(x)) · up(x)); False: down(act(up(x))) (GPT-NeoX)
    rotary_dim: int = 0  # features of each head RoPE rotates (the first ones); 0 = all (partial_rotary_factor)
    parallel_residual: bool = False  # the MLP reads the layer input, not resid_mid (use_parallel_residual)

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} is not implemented; use one of {sorted(ACTIVATIONS)}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"num_attention_heads={self.n_heads} is not a multiple of "
                             f"num_key_value_heads={self.n_kv_heads}")
        if self.rope_type not in ROPE_TYPES:
            raise ValueError(f"rope type {self.rope_type!r} is not implemented; use one of {list(ROPE_TYPES)}")
        if self.rotary_dims % 2 or not 0 < self.rotary_dims <= self.d_head:
            raise ValueError(f"RoPE on {self.rotary_dims} of head_dim={self.d_head} features: it needs an even "
                             "number, at most head_dim")
        if self.norm not in ("rms", "layer"):
            raise ValueError(f"norm {self.norm!r} is not 'rms' or 'layer'")
        if self.layer_windows and len(self.layer_windows) != self.n_layers:
            raise ValueError(f"{len(self.layer_windows)} sliding windows for {self.n_layers} layers")

    @property
    def rotary_dims(self) -> int:
        """How many leading features of each query and key head RoPE rotates."""
        return self.rotary_dim or self.d_head

    @property
    def group_size(self) -> int:
        """Query heads per key/value head."""
        return self.n_heads // self.n_kv_heads

    def activation_fn(self) -> Callable[[jax.Array], jax.Array]:
        """The gate non-linearity named by `activation`."""
        return ACTIVATIONS[self.activation]

    def windows(self) -> np.ndarray:
        """Per-layer sliding-window sizes `[L]` (0: full causal attention)."""
        return np.asarray(self.layer_windows or (0,) * self.n_layers, np.int32)


@functools.lru_cache(maxsize=64)
def rope_frequencies(cfg: LlamaConfig) -> tuple[np.ndarray, float]:
    """RoPE inverse frequencies `[rotary_dims / 2]` (float32) and the factor cos and sin are multiplied by,
    as HF's `ROPE_INIT_FUNCTIONS` compute them for `cfg.rope_type`."""
    dim, base, s = cfg.rotary_dims, cfg.rope_theta, dict(cfg.rope_scaling)
    f32 = np.float32
    inv_freq = (f32(1.0) / (f32(base) ** (np.arange(0, dim, 2).astype(f32) / f32(dim)))).astype(f32)
    if cfg.rope_type in ("default", "dynamic"):  # dynamic NTK equals default up to max_position_embeddings
        return inv_freq, 1.0
    factor = s["factor"]
    if cfg.rope_type == "linear":
        return (inv_freq / f32(factor)).astype(f32), 1.0
    if cfg.rope_type == "llama3":
        old = s["original_max_position_embeddings"]
        low, high = s["low_freq_factor"], s["high_freq_factor"]
        wavelen = f32(2 * math.pi) / inv_freq
        scaled = np.where(wavelen > old / low, inv_freq / f32(factor), inv_freq).astype(f32)
        smooth = ((old / wavelen - low) / (high - low)).astype(f32)
        smoothed = ((1 - smooth) * scaled / f32(factor) + smooth * scaled).astype(f32)
        medium = ~(wavelen < old / high) & ~(wavelen > old / low)
        return np.where(medium, smoothed, scaled).astype(f32), 1.0
    # yarn
    old = s["original_max_position_embeddings"]

    def mscale(scale, m=1.0):
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    attention_factor = s.get("attention_factor")
    if attention_factor is None:
        if s.get("mscale") and s.get("mscale_all_dim"):
            attention_factor = float(mscale(factor, s["mscale"]) / mscale(factor, s["mscale_all_dim"]))
        else:
            attention_factor = mscale(factor)
    beta_fast, beta_slow = s.get("beta_fast") or 32, s.get("beta_slow") or 1

    def correction_dim(rotations):
        return (dim * math.log(old / (rotations * 2 * math.pi))) / (2 * math.log(base))

    lo, hi = correction_dim(beta_fast), correction_dim(beta_slow)
    if s.get("truncate", True):
        lo, hi = math.floor(lo), math.ceil(hi)
    lo, hi = max(lo, 0), min(hi, dim - 1)
    if lo == hi:
        hi += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=f32) - lo) / (hi - lo), 0, 1).astype(f32)
    pos_freqs = f32(base) ** (np.arange(0, dim, 2).astype(f32) / f32(dim))
    extrapolation = 1 - ramp
    inv = (f32(1.0) / (f32(factor) * pos_freqs)) * (1 - extrapolation) + (f32(1.0) / pos_freqs) * extrapolation
    return inv.astype(f32), float(attention_factor)


class LlamaBlocks(eqx.Module):
    """Weights of all decoder layers, stacked along a leading layer axis (absent biases are None)."""

    ln1_w: Float[Array, "L D"]
    W_Q: Float[Array, "L H D Dh"]
    W_K: Float[Array, "L Hkv D Dh"]
    W_V: Float[Array, "L Hkv D Dh"]
    W_O: Float[Array, "L H Dh D"]
    ln2_w: Float[Array, "L D"]
    W_up: Float[Array, "L D M"]
    W_down: Float[Array, "L M D"]
    W_gate: Optional[Float[Array, "L D M"]] = None  # None: a plain MLP (gated_mlp=False)
    b_Q: Optional[Float[Array, "L H Dh"]] = None
    b_K: Optional[Float[Array, "L Hkv Dh"]] = None
    b_V: Optional[Float[Array, "L Hkv Dh"]] = None
    b_O: Optional[Float[Array, "L D"]] = None
    b_gate: Optional[Float[Array, "L M"]] = None
    b_up: Optional[Float[Array, "L M"]] = None
    b_down: Optional[Float[Array, "L D"]] = None
    ln1_b: Optional[Float[Array, "L D"]] = None  # LayerNorm biases (norm="layer")
    ln2_b: Optional[Float[Array, "L D"]] = None


def _at_least_f32(dtype) -> jnp.dtype:
    """float32 for a narrower float (bfloat16, float16), else `dtype` (float64 stays float64)."""
    return jnp.promote_types(dtype, jnp.float32)


def rms_norm(x: Float[Array, "... D"], w: Float[Array, " D"], eps: float) -> Float[Array, "... D"]:
    """RMSNorm over the last axis as HF computes it (in at least float32, cast back, then the weight)."""
    xf = x.astype(_at_least_f32(x.dtype))
    y = xf * jax.lax.rsqrt(jnp.mean(jnp.square(xf), -1, keepdims=True) + eps)
    return w * y.astype(x.dtype)


def norm(cfg: LlamaConfig, x: Float[Array, "... D"], w: Float[Array, " D"], b: Optional[Float[Array, " D"]],
         ) -> Float[Array, "... D"]:
    """The family's norm: RMSNorm, or LayerNorm with bias `b` (norm="layer")."""
    if cfg.norm == "layer":
        return layer_norm(x, w, b, cfg.norm_eps)
    return rms_norm(x, w, cfg.norm_eps)


def _linear(x: Array, w: Array, b: Optional[Array], spec: str) -> Array:
    y = jnp.einsum(spec, x, w)
    return y if b is None else y + b


def _bias(y: Array, b: Optional[Array]) -> Array:
    return y if b is None else y + b


def rotate(cfg: LlamaConfig, x: Float[Array, "T h Dh"], positions: Int[Array, " T"]) -> Float[Array, "T h Dh"]:
    """Rotary position embedding of queries or keys at their absolute `positions` (HF's rotate_half layout,
    on the first `rotary_dims` features of each head)."""
    inv_freq, factor = rope_frequencies(cfg)
    freqs = positions.astype(jnp.float32)[:, None] * jnp.asarray(inv_freq)[None]  # float32 angles, as HF
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    cos = (jnp.cos(emb) * factor).astype(x.dtype)[:, None]
    sin = (jnp.sin(emb) * factor).astype(x.dtype)[:, None]
    r = cfg.rotary_dims
    x_rot, x_pass = x[..., :r], x[..., r:]
    rotated = jnp.concatenate([-x_rot[..., r // 2:], x_rot[..., : r // 2]], axis=-1)
    return jnp.concatenate([x_rot * cos + rotated * sin, x_pass], axis=-1)


def keys_values(cfg: LlamaConfig, p: LlamaBlocks, resid: Float[Array, "T D"], offset: Int[Array, ""] | int = 0,
                k_in: Optional[Array] = None, v_in: Optional[Array] = None,
                ) -> tuple[Float[Array, "T Hkv Dh"], Float[Array, "T Hkv Dh"]]:
    """Rotated keys and values of ONE layer at every position of `resid` (its input residual), the
    first of which sits at absolute position `offset`; `k_in`, `v_in` `[T, Hkv, D]`: what edges add to
    each key/value head's key / value input."""
    def ln(x):
        return norm(cfg, x, p.ln1_w, p.ln1_b)

    k = _bias(project(head_inputs(ln, resid, k_in), p.W_K), p.b_K)
    v = _bias(project(head_inputs(ln, resid, v_in), p.W_V), p.b_V)
    return rotate(cfg, k, offset + jnp.arange(resid.shape[0])), v


def attention(
    cfg: LlamaConfig,
    p: LlamaBlocks,
    window: Int[Array, ""],
    resid: Float[Array, "T D"],
    rows: Optional[Int[Array, " R"]] = None,
    prefix_kv: Optional[tuple[Float[Array, "S Hkv Dh"], Float[Array, "S Hkv Dh"]]] = None,
    pattern_edit: Optional[SiteEdit] = None,
    kv_edits: tuple[Optional[SiteEdit], Optional[SiteEdit]] = (None, None),
    heads_in: Optional[tuple[Optional[Array], Optional[Array], Optional[Array]]] = None,
) -> tuple[Float[Array, "R H K"], Float[Array, "R H Dh"], Float[Array, "T Hkv Dh"], Float[Array, "T Hkv Dh"]]:
    """Attention pattern `[query, head, key]` (over K = S + T keys) and per-query-head outputs z of ONE
    layer, for query rows `rows` (all if None), and the rotated keys and values of the T positions;
    `window` > 0 limits each query to the last `window` keys; `pattern_edit` (of those rows) overwrites
    the pattern before it weighs the values, `kv_edits` (of every position) the rotated keys and the
    values before any query reads them; `heads_in` (q of the rows `[R, H, D]`, k and v `[T, Hkv, D]`, or
    None) what edges add to each head's query, key and value inputs.

    With `prefix_kv`, `resid` holds positions S.. only and the rotated keys and
    values of positions 0..S-1 are given; `rows` index into `resid`.
    """
    T = resid.shape[0]
    S = 0 if prefix_kv is None else prefix_kv[0].shape[0]
    qpos = S + (jnp.arange(T) if rows is None else rows)
    q_in, k_in, v_in = heads_in or (None, None, None)
    x = head_inputs(lambda r: norm(cfg, r, p.ln1_w, p.ln1_b), resid if rows is None else resid[rows], q_in)
    q = rotate(cfg, _bias(project(x, p.W_Q), p.b_Q), qpos)
    k_new, v_new = edit_keys_values(kv_edits, *keys_values(cfg, p, resid, S, k_in, v_in))
    k, v = with_prefix(prefix_kv, k_new, v_new)
    R, G, Hkv = q.shape[0], cfg.group_size, cfg.n_kv_heads
    q = q.reshape(R, Hkv, G, cfg.d_head)  # query head h reads key/value head h // G
    scores = jnp.einsum("tkge,ske->tkgs", q, k) * (cfg.d_head ** -0.5)  # [R, Hkv, G, K]
    kpos = jnp.arange(S + T)[None, :]
    allowed = (qpos[:, None] >= kpos) & ((window <= 0) | (kpos > qpos[:, None] - window))
    dt = _at_least_f32(scores.dtype)
    masked = jnp.where(allowed[:, None, None, :], scores.astype(dt), jnp.finfo(dt).min)
    pattern = jax.nn.softmax(masked, axis=-1).astype(q.dtype).reshape(R, cfg.n_heads, S + T)
    pattern = apply_edit(pattern_edit, pattern)
    z = jnp.einsum("tkgs,ske->tkge", pattern.reshape(R, Hkv, G, S + T), v).reshape(R, cfg.n_heads, cfg.d_head)
    return pattern, z, k_new, v_new


def attn_output(p: LlamaBlocks, z: Float[Array, "T H Dh"]) -> Float[Array, "T D"]:
    """Sum over query heads of z through W_O (plus the output bias, if any)."""
    return _linear(z, p.W_O, p.b_O, "the,hed->td")


def mlp(cfg: LlamaConfig, p: LlamaBlocks, resid: Float[Array, "T D"]) -> Float[Array, "T D"]:
    """The MLP output of one layer on the normed residual it reads: down(act(gate(x)) · up(x)), or
    down(act(up(x))) without a gate."""
    x = norm(cfg, resid, p.ln2_w, p.ln2_b)
    up = _linear(x, p.W_up, p.b_up, "td,dm->tm")
    if p.W_gate is None:
        hidden = cfg.activation_fn()(up)
    else:
        hidden = cfg.activation_fn()(_linear(x, p.W_gate, p.b_gate, "td,dm->tm")) * up
    return _linear(hidden, p.W_down, p.b_down, "tm,md->td")


def block_forward(cfg: LlamaConfig, p: LlamaBlocks, window: Int[Array, ""], resid: Float[Array, "T D"],
                  edits: Optional[LayerEdits] = None, with_pattern: bool = False, **entries,
                  ) -> tuple[Float[Array, "R D"], Activations]:
    """One decoder layer (weights `p` of ONE layer) with `edits` applied; `entries` (rows, z, resid_mid,
    prefix_kv) as in `block.patched_block`; with `parallel_residual` the MLP reads the layer input."""
    return patched_block(attention, attn_output, mlp, cfg, p, window, resid, edits, with_pattern, **entries)


class Llama(Decoder):
    """A Llama-family (or GPT-NeoX) model for one sequence: `logits, acts = model(tokens)` (the shared
    methods are `Decoder`'s)."""

    config: LlamaConfig = eqx.field(static=True)
    W_E: Float[Array, "V D"]
    blocks: LlamaBlocks
    lnf_w: Float[Array, " D"]
    W_U: Optional[Float[Array, "D V"]] = None  # None: tied to W_E
    lnf_b: Optional[Float[Array, " D"]] = None  # the final LayerNorm's bias (norm="layer")

    block = staticmethod(block_forward)
    layer_keys_values = staticmethod(keys_values)

    def embed(self, tokens: ArrayLike) -> Float[Array, "T D"]:
        """The token embedding: the residual stream before layer 0 (positions enter through RoPE)."""
        self.check_tokens(tokens)
        return self.W_E[tokens]

    def layer_constants(self) -> Int[Array, " L"]:
        """Per-layer sliding-window sizes (0: full causal attention; the constant `block_forward` reads)."""
        return jnp.asarray(self.config.windows())

    def final_norm(self, resid: Float[Array, "*T D"]) -> Float[Array, "*T D"]:
        """The final norm (RMSNorm, or LayerNorm with norm="layer")."""
        return norm(self.config, resid, self.lnf_w, self.lnf_b)
