"""What every family's model shares: token checks, the layer scan, one layer at a time, keys and values,
logits. A family subclasses `Decoder` with its weights and supplies only its maths."""

from __future__ import annotations

import abc
from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from intjax.errors import InputError
from intjax.model.block import one_layer, scan_blocks
from intjax.model.sites import Activations, LayerEdits


class Decoder(eqx.Module):
    """A decoder-only transformer for ONE sequence: `logits, acts = model(tokens)` (vmap outside).

    A family sets the fields `config`, `W_E`, `blocks` (weights stacked per layer) and `W_U` (None:
    tied to W_E), the static functions `block` (`block.patched_block` with its maths) and
    `layer_keys_values(cfg, p, resid)`, and the methods `embed`, `layer_constants` and `final_norm`.
    """

    block = None  # the family's block function, as `block.scan_blocks` calls it
    layer_keys_values = None  # the family's keys and values of one layer: (cfg, p, resid) -> (k, v)

    @abc.abstractmethod
    def embed(self, tokens: ArrayLike) -> Float[Array, "T D"]:
        """The residual stream before layer 0 (after `check_tokens`)."""

    @abc.abstractmethod
    def layer_constants(self) -> Array:
        """The per-layer constant `[L]` the family's block reads (GPT-2: attention scale; Llama: window)."""

    @abc.abstractmethod
    def final_norm(self, resid: Float[Array, "*T D"]) -> Float[Array, "*T D"]:
        """The norm before the unembedding."""

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
        return scan_blocks(self.block, self.config, self.blocks, self.layer_constants(), resid, start, stop, edits,
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
        with_acts: bool = False,
    ) -> Float[Array, "R D"] | tuple[Float[Array, "R D"], Activations]:
        """The residual after layer `index` (may be traced: one compile for every layer), with `edits`
        applied, and the layer's activations when `with_acts`; `rows`, `z`, `resid_mid` and `prefix_kv`
        as in `block.patched_block`."""
        return one_layer(self.block, self.config, self.blocks, self.layer_constants(), index, resid, edits,
                         with_acts, rows=rows, z=z, resid_mid=resid_mid, prefix_kv=prefix_kv)

    def head_outputs(self, index: Int[Array, ""] | int, z: Float[Array, "T H Dh"]) -> Float[Array, "T H D"]:
        """Each head's write to the residual stream, z·W_O[h] without the shared output bias, at layer `index`
        (every family stores W_O as `[L, H, Dh, D]`)."""
        return jnp.einsum("the,hed->thd", z, self.blocks.W_O[index])

    def keys_values(self, resid_pre: Float[Array, "L S D"]) -> tuple[Float[Array, "L S Hkv Dh"],
                                                                     Float[Array, "L S Hkv Dh"]]:
        """Every layer's attention keys and values at positions 0..S-1 of the given residuals (one per
        layer), per key/value head, with any position encoding applied."""
        return jax.vmap(lambda p, r: self.layer_keys_values(self.config, p, r))(self.blocks, resid_pre)

    def activations(self, tokens: ArrayLike, *, with_pattern: bool = False) -> Activations:
        """The activations pytree of one sequence, without the logits."""
        return self.run_blocks(self.embed(tokens), collect=True, with_pattern=with_pattern)[1]

    def unembed(
        self,
        resid: Float[Array, "*T D"],
        columns: Optional[Int[Array, " K"]] = None,
        final_norm: bool = True,
    ) -> Float[Array, "*T K"]:
        """Final norm then logits; `columns` picks vocabulary entries (all if None).

        `final_norm=False` skips the norm: a readout linear in the residual
        (direct logit attribution's view).
        """
        x = self.final_norm(resid) if final_norm else resid
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
