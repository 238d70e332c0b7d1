"""The interaction screen: H_ij = ∂²f/∂α_i∂α_j at the base corner α = 0 for every pair of components,
from forward-over-reverse Hessian-vector products in blocks of `HVP_BLOCK` unit tangents.

Second-order Taylor at 0 gives INT_ij ≈ H_ij (the diagonal terms ½H_ii, ½H_jj cancel in the Möbius sum);
the exact INT_ij is ∫∫ D_ij over the pair's face, so the error is how far D_ij moves on that face
(DESIGN.md §2, "Screening pairs from the Hessian").
"""

from __future__ import annotations

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from intjax.estimands.derivatives import float_dtype
from intjax.estimands.game import Game, PromptwiseGame

HVP_BLOCK = 8  # unit tangents per call of the Hessian-vector program: one shape for every n


def base_hessian(game: Game, block: int = HVP_BLOCK, compiled: Game | None = None) -> Float[np.ndarray, "P n n"]:
    """H at α = 0 for every prompt, `[P, n, n]` float64 (computed in the game's dtype, symmetrised).

    ⌈n / block⌉ calls of one program: each pushes `block` unit tangents (the last block padded with zero
    tangents) forward through the gradient of f. A problem with component slots (`PatchProblem.slots`)
    is differentiated at its slot width, so problems of different n but equal slots share the program
    when `compiled` is the same game without the labels f never reads (`evaluate.compile_view`).
    """
    n = game.n_components
    width = int(getattr(game, "slots", n))
    game = game if compiled is None else compiled
    eye = np.eye(-(-n // block) * block, width, dtype=float_dtype())  # rows past n: zero tangents
    if isinstance(game, PromptwiseGame):
        alpha = jax.device_put(np.zeros((game.n_prompts, width), float_dtype()))
        columns = [_hvp_per_prompt(game, alpha, jax.device_put(eye[i: i + block])) for i in range(0, n, block)]
    else:
        alpha = jax.device_put(np.zeros(width, float_dtype()))
        columns = [_hvp_shared(game, alpha, jax.device_put(eye[i: i + block])) for i in range(0, n, block)]
    hv = np.concatenate([np.asarray(c, np.float64) for c in columns])[:n, :, :n]  # [j, P, i] = H_p[i, j]
    H = np.transpose(hv, (1, 2, 0))
    return (H + np.transpose(H, (0, 2, 1))) / 2


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
