"""Derivatives of f in α: linear (attribution) estimates, JVPs, mixed partials, and the
integral identity INT_T = ∫_{[0,1]^T} D_T(α_T, 0) dα_T with its local-affine bound."""

from __future__ import annotations

import itertools
from typing import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from intjax.estimands.game import Game, LayeredGame, PromptwiseGame


def float_dtype():
    """The float dtype α is sent in: float64 under jax x64, else float32."""
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def linear(game: Game) -> np.ndarray:
    """A_i = ∂f/∂α_i at 0 for every component and prompt, `[P, n]`, from one VJP.

    Equals ⟨∇_{o_i} y, s_i − o_i⟩, the attribution-patching estimate of NIE_i.
    """
    if isinstance(game, PromptwiseGame):  # α [P, n]: row p only feeds prompt p
        P = game.n_prompts
        return np.asarray(_grad_per_prompt(game, _zeros((P, game.n_components))), np.float64)
    return np.asarray(_jacobian(game, _zeros(game.n_components)), np.float64)


def _zeros(shape) -> Array:
    """Zeros made on the host and sent over (eager jnp.zeros and jnp.asarray compile a program per shape)."""
    return jax.device_put(np.zeros(shape, float_dtype()))


def linear_gap(game: Game) -> np.ndarray:
    """NIE − linear estimate per prompt and component, `[P, n]`: what attribution patching misses."""
    from intjax.estimands.effects import nie

    return nie(game) - linear(game)


# Games pass through filter_jit as arguments, so a model's weights are inputs of
# the compiled program rather than constants baked into it.
@eqx.filter_jit
def f_at(game, alpha):
    """f(α) through the game's differentiable path, compiled once per game structure."""
    return game(alpha)


@eqx.filter_jit
def _grad_per_prompt(game, A):
    return jax.grad(lambda A: game.per_prompt(A).sum())(A)


@eqx.filter_jit
def _jacobian(game, alpha):
    return jax.jacrev(lambda a: game(a))(alpha)


@eqx.filter_jit
def _jvp(game, alpha, direction):
    return jax.jvp(lambda a: game(a), (alpha,), (direction,))


def mixed_partials_at(game: Game, directions: Float[Array, "k *P n"], alphas: Float[Array, "B *P n"],
                      start: int = 0) -> Float[Array, "B P"]:
    """D along `directions` at each row of `alphas`; `start` enters traced (one program for every start layer)."""
    return _mixed_at(game, directions, alphas, np.int32(start))


@eqx.filter_jit
def _mixed_at(game, directions, alphas, start):
    return jax.vmap(mixed_partial_fn(game, directions, start))(alphas)


def start_layer(game: Game, T: Sequence[int]) -> int:
    """The first layer the components T touch (0 for games without layers). Where every α
    outside T is 0 (the face of T), nothing below it differs from the base run, so a
    PatchProblem may start there from its cached base residual."""
    return int(np.min(game.first_layers()[list(T)])) if isinstance(game, LayeredGame) and len(T) else 0


def unit_directions(n: int, T: Sequence[int]) -> Float[Array, "k n"]:
    """Unit vectors e_i for i in T, `[|T|, n]` (traced: one compile per order, not per set)."""
    return jax.device_put(np.eye(n, dtype=float_dtype())[list(T)])


def jvp(game: Game, alpha: Float[Array, " n"], direction: Float[Array, " n"]) -> tuple[np.ndarray, np.ndarray]:
    """(f(α), ∂f/∂α · direction), each `[P]`: one forward pass with its tangent."""
    a, v = jax.device_put([np.asarray(alpha, float_dtype()), np.asarray(direction, float_dtype())])
    val, tan = _jvp(game, a, v)
    return np.asarray(val, np.float64), np.asarray(tan, np.float64)


def mixed_partial_fn(game: Game, directions: Float[Array, "k *P n"], start: int | Int[ArrayLike, ""] = 0):
    """α ↦ ∂^k f / ∂v_1 … ∂v_k at α, `[P]`, by k nested jax.jvp along the rows v of
    `directions` (unit vectors e_i, i ∈ T, give D_T). `start` > 0 (see `start_layer`; an int or a
    traced int32) runs a layered game from its cached base residual at that layer."""

    def derivative(g, v):
        return lambda a: jax.jvp(g, (a,), (v.astype(a.dtype),))[1]

    g = (lambda a: game(a, start=start)) if isinstance(game, LayeredGame) else (lambda a: game(a))  # noqa: E731
    for row in range(directions.shape[0]):
        g = derivative(g, directions[row])
    return g


def mixed_partial(game: Game, T: Sequence[int], alpha: Float[Array, " n"] | None = None) -> np.ndarray:
    """D_T at α (default 0), `[P]`."""
    a = _zeros(game.n_components) if alpha is None else jax.device_put(np.asarray(alpha, float_dtype()))
    moved = sorted(set(T) | set(np.flatnonzero(np.asarray(a)).tolist()))  # α ≠ 0 off T moves earlier layers too
    d = mixed_partials_at(game, unit_directions(game.n_components, T), a[None], start_layer(game, moved))
    return np.asarray(d[0], np.float64)


def face_points(n: int, T: Sequence[int], nodes: np.ndarray) -> np.ndarray:
    """Points of the face {α_T ∈ [0,1]^T, α_rest = 0} on the product grid of `nodes`, `[q^|T|, n]`."""
    grid = np.array(list(itertools.product(nodes, repeat=len(T))))
    pts = np.zeros((len(grid), n))
    pts[:, list(T)] = grid
    return pts


def gauss_legendre_01(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Legendre nodes and weights on [0, 1] (weights sum to 1)."""
    x, w = np.polynomial.legendre.leggauss(q)
    return (x + 1) / 2, w / 2


FACE_BATCH = 32  # face points per call of the nested-JVP program: one batch shape for every check


def mixed_partials_batched(game: Game, directions: Float[Array, "k *P n"], points: Float[np.ndarray, "B *P n"],
                           start: int = 0, chunk: int = FACE_BATCH) -> np.ndarray:
    """D along `directions` at every row of `points`, `[B, P]` in the dtype the game computes: calls of
    `chunk` rows, the last padded with the point 0 (one program shape for any B)."""
    padded = np.zeros((-(-len(points) // chunk) * chunk,) + points.shape[1:])
    padded[: len(points)] = points
    out = [np.asarray(mixed_partials_at(game, directions, jax.device_put(padded[i: i + chunk].astype(float_dtype())),
                                        start)) for i in range(0, len(padded), chunk)]
    return np.concatenate(out)[: len(points)]


def face_derivatives(game: Game, T: Sequence[int], nodes: np.ndarray, chunk: int = FACE_BATCH) -> np.ndarray:
    """D_T at every point of the face grid, `[q^|T|, P]` (points padded to whole chunks)."""
    pts = face_points(game.n_components, T, nodes)
    dirs, start = unit_directions(game.n_components, T), start_layer(game, T)
    return mixed_partials_batched(game, dirs, pts, start, chunk).astype(np.float64)


def face_check(game: Game, T: Sequence[int], q: int = 4, grid: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(∫ D_T over the face by q-point Gauss–Legendre, sup |D_T| over the face), each `[P]`.

    The integral identity says the first equals INT_T. The second is the max over
    the product grid of the quadrature nodes plus `grid` uniform nodes per axis:
    it always bounds the quadrature value (positive weights summing to 1), so
    comparing it with INT_T only re-tests quadrature convergence, and it can
    miss a peak between nodes; `estimands.bound.sampled_sup` is the honest sup.
    Both vanish where f is affine on the face. One pass of nested JVPs serves both.
    """
    x, w = gauss_legendre_01(q)
    nodes = np.concatenate([x, np.linspace(0, 1, grid)])
    D = face_derivatives(game, T, nodes)  # [len(nodes)^|T|, P]
    grid_idx = np.array(list(itertools.product(range(len(nodes)), repeat=len(T))))
    on_gl = (grid_idx < q).all(axis=1)
    weights = np.prod(w[grid_idx[on_gl]], axis=1)
    return weights @ D[on_gl], np.abs(D).max(axis=0)


def quadrature_interaction(game: Game, T: Sequence[int], q: int = 4) -> np.ndarray:
    """∫_{[0,1]^T} D_T(α_T, 0) dα_T by q-point Gauss–Legendre per axis, `[P]` (≈ INT_T)."""
    return face_check(game, T, q, grid=0)[0]


def local_affine_bound(game: Game, T: Sequence[int], q: int = 4, grid: int = 5) -> np.ndarray:
    """max |D_T| over a fixed face grid, `[P]` (see `face_check`): a lower estimate of the sup
    that bounds |INT_T|; `estimands.bound.sampled_sup` refines it until it converges."""
    return face_check(game, T, q, grid)[1]
