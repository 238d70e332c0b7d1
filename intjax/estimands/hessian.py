"""The interaction screen: H_ij = ∂²f/∂α_i∂α_j at the base corner α = 0 for every pair of components,
from forward-over-reverse Hessian-vector products in blocks of `HVP_BLOCK` unit tangents.

Second-order Taylor at 0 gives INT_ij ≈ H_ij (the diagonal terms ½H_ii, ½H_jj cancel in the Möbius sum);
the exact INT_ij is ∫∫ D_ij over the pair's face, so the error is how far D_ij moves on that face
(DESIGN.md §2, "Screening pairs from the Hessian").
"""

from __future__ import annotations

import itertools
from typing import Callable, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from intjax.estimands.derivatives import float_dtype
from intjax.estimands.game import Game, LayeredGame, PromptwiseGame
from intjax.estimands.layerwise_hvp import layerwise_hvp, supports_layerwise

BlockStore = Callable[[int, np.ndarray, Callable[[], np.ndarray]], np.ndarray]  # (index, rows, compute) -> [B, P, w]
HVP_BLOCK = 16  # unit tangents per call of the Hessian-vector program: one shape for every n


def base_hessian(game: Game, block: int = HVP_BLOCK, compiled: Game | None = None,
                 saved: Optional[BlockStore] = None) -> Float[np.ndarray, "P n n"]:
    """H at α = 0 for every prompt, `[P, n, n]` float64 (computed in the game's dtype).

    ⌈n / block⌉ calls of one program: each pushes `block` unit tangents (the last block padded with zero
    tangents) forward through the gradient of f. A problem with component slots (`PatchProblem.slots`)
    is differentiated at its slot width, so problems of different n but equal slots share the program
    when `compiled` is the same game without the labels f never reads (`evaluate.compile_view`).
    A layered game takes its components in layer order and runs each block from the first layer of its
    tangents (`block_hessian`), which skips the layers below it in the forward and the backward pass.
    `saved(index, rows, compute)` may keep each block's `[B, P, w]` products (a checkpoint: a rerun reads the
    finished blocks back instead of computing them).
    """
    n = game.n_components
    width = int(getattr(game, "slots", n))
    layered = isinstance(game, LayeredGame) and isinstance(game, PromptwiseGame)
    first = np.asarray(game.first_layers()) if layered else np.zeros(n, int)
    order = np.argsort(first, kind="stable")
    game = game if compiled is None else compiled
    starts, hv = np.zeros(n, int), None
    for i in range(0, n, block):
        rows = order[i: i + block]
        tangents = np.zeros((block, width), float_dtype())
        tangents[np.arange(len(rows)), rows] = 1
        starts[rows] = first[rows].min()
        def compute(tangents=tangents, start=int(starts[rows[0]])) -> np.ndarray:
            return np.asarray(block_hessian(game, jax.device_put(tangents), start, layered), np.float64)

        out = compute() if saved is None else saved(i // block, rows, compute)
        hv = np.zeros((n, out.shape[1], n)) if hv is None else hv  # [j, P, i] = H_p[i, j]
        hv[rows] = out[: len(rows), :, :n]
    H = np.transpose(hv, (1, 2, 0))  # H[p, i, j] from tangent j
    # H[i, j] from tangent j holds where every site of i lies at or above the start of j's block; every pair
    # has at least one such entry (the one whose tangent's block starts lower)
    valid = first[:, None] >= starts[None, :]
    both = valid & valid.T
    return np.where(both, (H + np.transpose(H, (0, 2, 1))) / 2, np.where(valid, H, np.transpose(H, (0, 2, 1))))


def block_hessian(game: Game, tangents: Float[Array, "B w"], start: int, layered: bool) -> Float[Array, "B P w"]:
    """H_p v for each row v of `tangents`: from layer `start` on (traced) for a layered game with per-prompt α,
    else over the whole game."""
    if layered and supports_layerwise(game):
        return layerwise_hvp(game, tangents, np.int32(start))
    if layered:
        alpha = jax.device_put(np.zeros((game.n_prompts, tangents.shape[1]), float_dtype()))
        return _hvp_from_layer(game, alpha, tangents, np.int32(start))
    if isinstance(game, PromptwiseGame):
        return _hvp_per_prompt(game, jax.device_put(np.zeros((game.n_prompts, tangents.shape[1]), float_dtype())),
                               tangents)
    return _hvp_shared(game, jax.device_put(np.zeros(tangents.shape[1], float_dtype())), tangents)


@eqx.filter_jit
def _hvp_from_layer(game, alpha: Float[Array, "P w"], tangents: Float[Array, "B w"], start) -> Float[Array, "B P w"]:
    """H_p v for each tangent v, f run from layer `start` (the layers below it skipped, not differentiated)."""
    grad = jax.grad(lambda a: game(a, start=start).sum())  # row p only feeds prompt p
    return jax.vmap(lambda v: jax.jvp(grad, (alpha,), (jnp.broadcast_to(v, alpha.shape),))[1])(tangents)


@eqx.filter_jit
def _hvp_per_prompt(game, alpha: Float[Array, "P w"], tangents: Float[Array, "B w"]) -> Float[Array, "B P w"]:
    """H_p v for each tangent v (the same for every prompt): one gradient, its tangents batched."""
    grad = jax.grad(lambda a: game.per_prompt(a).sum())  # row p only feeds prompt p
    return jax.vmap(lambda v: jax.jvp(grad, (alpha,), (jnp.broadcast_to(v, alpha.shape),))[1])(tangents)


@eqx.filter_jit
def _hvp_shared(game, alpha: Float[Array, " w"], tangents: Float[Array, "B w"]) -> Float[Array, "B P w"]:
    """H_p v for a game without per-prompt α: the jacobian over prompts, its tangents batched."""
    jac = jax.jacrev(lambda a: game(a))
    return jax.vmap(lambda v: jax.jvp(jac, (alpha,), (v,))[1])(tangents)


def pairs_of(n: int) -> list[tuple[int, int]]:
    """Every pair i < j of n components, in the order exact INT lists them (`mobius.subsets_up_to`)."""
    return list(itertools.combinations(range(n), 2))


def pair_values(H: Float[np.ndarray, "P n n"]) -> Float[np.ndarray, "P pairs"]:
    """H_ij for every pair i < j, `[P, n(n−1)/2]`: the screen's estimate of INT_ij."""
    i, j = np.triu_indices(H.shape[-1], k=1)
    return H[:, i, j]
