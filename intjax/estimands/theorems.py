"""The theorem table: DESIGN.md §2's identities, integral identity, bound and scaling law,
checked numerically on a model.

Every check compares two different computations: the Möbius sums from the
chunked evaluator against fresh f values from the differentiable scan path;
quadrature of nested-JVP mixed partials against the exact Möbius INT.
"""

from __future__ import annotations

import itertools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from intjax.estimands.derivatives import f_at, face_check
from intjax.estimands.mobius import Subset, interactions
from intjax.estimands.scaling import DEFAULT_TS, scaled_interactions, slopes_by_order


def _fresh(game) -> Callable[[np.ndarray], np.ndarray]:
    """f at one mask through game.__call__ (not the chunked evaluator)."""
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    return lambda mask: np.asarray(f_at(game, jnp.asarray(mask, dtype)), np.float64)


def _int_lookup(sets, ints, values) -> Callable[[Subset], np.ndarray]:
    index = {T: ints[:, i] for i, T in enumerate(sets)}
    base = values[()]

    def INT(T: Subset) -> np.ndarray:
        return values[T] - base if len(T) == 1 else index[T]

    return INT


def strongest_sets(sets: Sequence[Subset], ints: np.ndarray, per_order: int) -> list[Subset]:
    """The `per_order` sets of each order with the largest mean |INT| over prompts."""
    strength = np.abs(ints).mean(axis=0)
    out = []
    for k in sorted({len(T) for T in sets}):
        idx = [i for i, T in enumerate(sets) if len(T) == k]
        out += [sets[i] for i in sorted(idx, key=lambda i: -strength[i])[:per_order]]
    return out


def theorem_table(
    game_at: Callable[[str, float], object],
    order: int = 2,
    *,
    n_check: int = 6,
    quadrature_points: dict[int, int] | None = None,
    ts: Sequence[float] = DEFAULT_TS,
    seed: int = 0,
) -> dict:
    """Check the identities of DESIGN.md §2 on `game_at(semantics, t)`.

    `game_at("recompute", 1.0)` is the game under study; scaled and frozen
    versions are used for the scaling law. Checks use the `n_check` strongest
    sets per order (and up to 8·n_check sampled sets for the identities).
    `quadrature_points[k]`: Gauss–Legendre nodes per axis for order k (default
    12 for pairs, 6 for triples, 4 above: trained models have sharply curved
    mixed partials, and the quadrature error shows how well it converged).
    """
    q_by_order = {2: 12, 3: 6, **(quadrature_points or {})}
    game = game_at("recompute", 1.0)
    n = game.n_components
    rng = np.random.default_rng(seed)
    sets, ints, values = interactions(game, order)
    INT = _int_lookup(sets, ints, values)
    fresh = _fresh(game)
    scale = max(1e-12, float(np.abs(ints).max()) if ints.size else 0.0,
                max(float(np.abs(values[(i,)] - values[()]).max()) for i in range(n)))

    def sample(k: int, m: int) -> list[Subset]:
        combos = [tuple(sorted(rng.choice(n, size=k, replace=False))) for _ in range(m)]
        return sorted(set(combos))

    identity = 0.0
    base = fresh(np.zeros(n))
    for S in sample(min(order, n), 8 * n_check):
        mask = np.zeros(n)
        mask[list(S)] = 1
        total = sum(INT(T) for j in range(1, len(S) + 1) for T in itertools.combinations(S, j))
        identity = max(identity, float(np.abs(fresh(mask) - base - total).max()))

    context = 0.0
    for S in sample(min(order, n), 8 * n_check):
        i, C = S[0], S[1:]
        with_i, without_i = np.zeros(n), np.zeros(n)
        with_i[list(S)] = 1
        without_i[list(C)] = 1
        delta = fresh(with_i) - fresh(without_i)
        total = sum(INT(tuple(sorted((i,) + U))) for j in range(len(C) + 1) for U in itertools.combinations(C, j))
        context = max(context, float(np.abs(delta - total).max()))

    checked = strongest_sets(sets, ints, n_check)
    exact = np.stack([INT(T) for T in checked], axis=1)  # [P, n_checked]
    checks = [face_check(game, T, q_by_order.get(len(T), 4), grid=0) for T in checked]
    quad = np.stack([c[0] for c in checks], axis=1)
    bound = np.stack([c[1] for c in checks], axis=1)
    rel = float(np.abs(quad - exact).max() / max(np.abs(exact).max(), 1e-12))
    holds = float(np.mean(np.abs(exact) <= bound * (1 + 1e-6) + 1e-12))

    slopes = {}
    for semantics in ("frozen", "recompute"):
        scaled = scaled_interactions(lambda t: game_at(semantics, t), checked, ts)
        slopes[semantics] = slopes_by_order(ts, checked, scaled)
    return dict(
        order=order,
        n_components=n,
        n_interactions=len(sets),
        patched_runs=len(values),
        identity_max_residual=identity,
        context_identity_max_residual=context,
        effect_scale=scale,
        quadrature_vs_exact_max_rel=rel,
        bound_holds_fraction=holds,
        slope_frozen=slopes["frozen"],
        slope_recompute=slopes["recompute"],
        checked_sets=[list(map(int, T)) for T in checked],
        checked_exact_mean=np.abs(exact).mean(axis=0).tolist(),
        checked_quadrature_mean=np.abs(quad).mean(axis=0).tolist(),
        checked_bound_mean=bound.mean(axis=0).tolist(),
        ts=list(ts),
        quadrature_points={k: q_by_order.get(k, 4) for k in range(2, order + 1)},
        dtype=str(jnp.zeros(()).dtype) if not jax.config.jax_enable_x64 else "float64",
    )
