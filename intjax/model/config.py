"""The numbers that define a GPT-2 forward pass, and its activation functions."""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp


def _gelu_tanh(x: jax.Array) -> jax.Array:
    return jax.nn.gelu(x, approximate=True)


def _gelu_erf(x: jax.Array) -> jax.Array:
    return jax.nn.gelu(x, approximate=False)


def _quick_gelu(x: jax.Array) -> jax.Array:
    return x * jax.nn.sigmoid(1.702 * x)


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu_new": _gelu_tanh,
    "gelu_fast": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu": _gelu_erf,
    "quick_gelu": _quick_gelu,
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "tanh": jnp.tanh,
}


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

    def activation_fn(self) -> Callable[[jax.Array], jax.Array]:
        """The MLP non-linearity named by `activation`."""
        return ACTIVATIONS[self.activation]
