"""What every estimand reads: f at 0/1 (or fractional) masks, and f itself for jax transforms.

A `PatchProblem` is a Game, and a `PromptwiseGame` and a `LayeredGame` too: the
two capabilities the estimands use when a game has them (one α per prompt; a
start layer). `FunctionGame` wraps any jax function of α, so the estimands can
be checked on functions whose answers are known in closed form.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int


@runtime_checkable
class Game(Protocol):
    """f(α) over n components, for P prompts."""

    @property
    def n_components(self) -> int:
        """n, the length of α."""

    def values(self, masks: np.ndarray) -> np.ndarray:
        """f at each mask: `[M, n]` → `[M, P]` float64."""

    def __call__(self, alpha: Float[Array, " n"]) -> Float[Array, " P"]:
        """f(α) for every prompt, differentiable in α."""


@runtime_checkable
class PromptwiseGame(Game, Protocol):
    """A Game that also takes one α per prompt: `per_prompt(α [P, n]) → [P]`, row p feeding prompt p
    only, so one VJP gives every prompt's gradient and each prompt may sit at its own point."""

    @property
    def n_prompts(self) -> int:
        """P, the prompts f is evaluated on."""

    def per_prompt(self, alpha: Float[Array, "P n"]) -> Float[Array, " P"]:
        """f with α row p at prompt p, differentiable in α."""


@runtime_checkable
class LayeredGame(Game, Protocol):
    """A Game over a layered model: f may start at a layer below which nothing differs from the base run."""

    def first_layers(self) -> np.ndarray:
        """First layer each component touches, `[n]`."""

    def __call__(self, alpha: Float[ArrayLike, "*P n"], start: int | Int[ArrayLike, ""] = 0) -> Float[Array, " P"]:
        """f(α), skipping the layers below `start` (no component α or a tangent touches lies there; an int, or
        traced)."""


class FunctionGame:
    """A Game from a jax function `fn(alpha [n]) -> [P]` (or a scalar, P = 1)."""

    def __init__(self, fn: Callable[[Array], Array], n: int):
        self.fn = fn
        self._n = n
        self._batched = jax.jit(jax.vmap(self.__call__))

    @property
    def n_components(self) -> int:
        """n, the length of α."""
        return self._n

    def __call__(self, alpha: Float[Array, " n"]) -> Float[Array, " P"]:
        """f(α), always as a vector over prompts."""
        return jnp.atleast_1d(self.fn(alpha))

    def values(self, masks: np.ndarray) -> np.ndarray:
        """f at each mask, `[M, P]` float64."""
        dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
        return np.asarray(self._batched(jnp.asarray(masks, dtype)), np.float64)
