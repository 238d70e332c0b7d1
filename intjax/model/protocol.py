"""What the patch engine needs from a model: the seam between model families and the engine.

A family implements these methods by subclassing `decoder.Decoder` (see `gpt2.GPT2`, `llama.Llama`);
the engine (`intjax.patching`) calls nothing else. Activations, LayerEdits and
SiteEdit (in `sites`) are the shared data types: the sites a family exposes are the
`Activations` fields (`resid_pre`, `z`, `mlp_out`, …) with a leading layer axis.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, runtime_checkable

from jaxtyping import Array, ArrayLike, Float, Int

from intjax.model.sites import Activations, LayerEdits


@runtime_checkable
class ModelConfig(Protocol):
    """What naming components reads of any family's config (GPT2Config, LlamaConfig, …)."""

    n_layers: int
    n_heads: int
    n_kv_heads: int  # key/value heads (n_heads but under grouped-query attention)
    n_positions: int


@runtime_checkable
class HasConfig(Protocol):
    """Anything with a model config: what decisions about a model's shape (which heads exist, whether
    it is GPT-2 small) read, so they need no weights."""

    config: Any


@runtime_checkable
class PatchableModel(Protocol):
    """A decoder-only transformer the patch engine can run one layer at a time."""

    config: Any  # n_layers, n_heads, d_model, d_head, d_mlp, vocab_size, n_positions

    def embed(self, tokens: ArrayLike) -> Float[Array, "T D"]:
        """The residual stream before layer 0, of `[T]` integer tokens (numpy or jax; checked by the model)."""

    def layer(self, index: Int[Array, ""] | int, resid: Float[Array, "T D"], edits: Optional[LayerEdits] = None, *,
              rows: Optional[Int[Array, " R"]] = None, z: Optional[Array] = None,
              resid_mid: Optional[Array] = None, prefix_kv: Optional[tuple[Array, Array]] = None,
              with_acts: bool = False) -> Float[Array, "R D"] | tuple[Float[Array, "R D"], Activations]:
        """The residual after layer `index` with `edits` applied (only `rows` if given; entering at the
        cached `z` or `resid_mid`; the keys and values of a shared prefix from `prefix_kv`), and the
        layer's activations when `with_acts`."""

    def head_outputs(self, index: Int[Array, ""] | int, z: Array) -> Array:
        """Each head's write to the residual `[T, H, D]` (z·W_O[h], no bias) at layer `index`."""

    def run_blocks(self, resid: Float[Array, "T D"], *, start: int = 0, stop: Optional[int] = None,
                   edits: Optional[LayerEdits] = None, collect: bool = False,
                   with_pattern: bool = False) -> tuple[Float[Array, "T D"], Optional[Activations]]:
        """Layers start..stop-1 on `resid` with `edits` (stacked over every layer), as one scan;
        the activations of the layers run when `collect`."""

    def keys_values(self, resid_pre: Float[Array, "L S D"]) -> tuple[Array, Array]:
        """Every layer's attention keys and values at the given residuals, each `[L, S, Hkv, Dh]` (Hkv = H
        but under grouped-query attention; keys with any position encoding of positions 0..S-1 applied)."""

    def activations(self, tokens: ArrayLike, *, with_pattern: bool = False) -> Activations:
        """Every site of one sequence (leading layer axis), without the logits."""

    def unembed(self, resid: Float[Array, "*T D"], columns: Optional[Int[Array, " K"]] = None,
                final_norm: bool = True) -> Float[Array, "*T K"]:
        """Final norm then logits (`columns` of the vocabulary only, if given)."""
