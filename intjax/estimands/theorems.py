"""The theorem table: DESIGN.md §2's identities, integral identity, bound, scaling law and
noising/denoising duality, checked numerically on a model.

Every check compares two different computations: the Möbius sums from the
chunked evaluator against fresh f values from the differentiable scan path;
quadrature of nested-JVP mixed partials against the exact Möbius INT; measured
scaling slopes against the slopes the sets' causal structure predicts; the
denoising game against the noising game read from the other corner.
"""

from __future__ import annotations

import itertools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from intjax.estimands.bound import affinity_vs_interaction, bound_report, face_integral
from intjax.estimands.derivatives import f_at
from intjax.estimands.effects import nie
from intjax.estimands.game import Game
from intjax.estimands.mobius import Subset, interactions
from intjax.estimands.scaling import DEFAULT_TS, rounding_floor, scaled_interactions, slopes_by_order, slopes_by_set


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


def duality_check(game: Game, reverse: Game, tol: float = 1e-6) -> dict:
    """Noising/denoising duality on two games over the same components in opposite directions.

    When the components form a complete cut under frozen semantics (the metric
    is a function of their values alone), the reverse game is the game read
    from the other corner, g(1_U) = f(1_{N∖U}), so
    NIE^reverse_i = −Δ_i(N∖i) = −Σ_{T∋i} INT_T (every INT of the game containing
    i). Under recompute semantics nothing makes the two games agree; the gap is
    measured, not claimed.

    `complete_cut`: patching every component reproduces the other run's metric
    in both directions (f(1_N) = g(0) and g(1_N) = f(0)), to `tol` × the
    effect scale — necessary for a cut, and what makes the corners agree.
    Returns the largest residual of the duality (absolute and relative to the
    largest |NIE^reverse|), the cut residual, and whether the duality holds to
    `tol` (only meaningful, and only claimed, for a complete cut).
    """
    n = game.n_components
    ones = np.ones((1, n))
    leave_one_out = ones - np.eye(n)
    f = game.values(np.concatenate([np.zeros((1, n)), ones, leave_one_out]))  # [2 + n, P]
    g = reverse.values(np.concatenate([np.zeros((1, n)), ones]))
    minus_delta = -(f[1][None] - f[2:]).T  # −Δ_i(N∖i) = −Σ_{T∋i} INT_T, [P, n]
    nie_reverse = nie(reverse)
    scale = max(float(np.abs(nie_reverse).max()), float(np.abs(f[1] - f[0]).max()), 1e-12)
    residual = float(np.abs(nie_reverse - minus_delta).max())
    cut = float(max(np.abs(f[1] - g[0]).max(), np.abs(g[1] - f[0]).max()))
    complete = cut <= tol * scale
    return dict(
        complete_cut=bool(complete), cut_residual=cut, max_residual=residual,
        max_rel_residual=residual / scale, effect_scale=scale, tolerance=tol,
        holds=bool(complete and residual <= tol * scale), n_components=n,
        reverse_nie_mean=nie_reverse.mean(0).tolist(), minus_context_mean=minus_delta.mean(0).tolist(),
    )


def theorem_table(
    game_at: Callable[[str, float], object],
    order: int = 2,
    *,
    n_check: int = 6,
    integral_points: int = 16,
    integral_max_points: int = 64,
    integral_scramblings: int = 8,
    ts: Sequence[float] = DEFAULT_TS,
    seed: int = 0,
    structure: Callable[[Subset], dict] | None = None,
    bound_rtol: float = 0.01,
    bound_max_points: int = 5000,
    bound_polish_starts: int = 1,
    bound_order: int | None = None,
    derivative_game: Game | None = None,
    step: Callable[[str], None] | None = None,
    tick: Callable[[str], None] | None = None,
) -> dict:
    """Check the identities of DESIGN.md §2 on `game_at(semantics, t)`.

    `game_at("recompute", 1.0)` is the game under study; scaled and frozen
    versions are used for the scaling law. Checks use the `n_check` strongest
    sets per order (and up to 8·n_check sampled sets for the identities).
    `structure(T)` gives the slopes a set's causal structure predicts
    (`intjax.patching.structure.predicted_slopes`); each checked set's measured
    slopes are listed beside them in `slopes_by_set`. The local-affine bound is
    checked against the *sampled* sup of |D_T| (refined until it grows by less
    than `bound_rtol`, or until `bound_max_points` mixed partials per set; see
    `estimands.bound.sampled_sup`), with its looseness and the face's distance
    from affine, for the checked sets of order ≤ `bound_order` (all if None:
    each order adds a dimension to the face, and nested JVPs a pass).
    `integral_points` × `integral_scramblings`: the scrambled Sobol points of the
    integral identity's check (`bound.face_integral`): its estimate comes with a
    standard error, so the check says pass, fail or inconclusive (too wide). A face whose
    error bar (3 SE) is wider than INTEGRAL_RESOLUTION of the effect scale is integrated
    again with 4× the points, up to `integral_max_points` (sharply curved faces of trained
    models need 64; smooth ones are told apart with 16).
    `derivative_game`: the same game in another precision for the quadrature and
    the sampled sup (default: the game). Both compare at a tolerance far above
    float32 rounding (5%; a rounding floor set by the dtype D_T is computed in),
    so `run_theorems` passes a float32 copy: nested JVPs cost half as much, while
    the identities and slopes keep float64.
    `step(name)` is called as each part starts (progress lines); `tick(text)` within a part, after
    each face and each level of a sampled sup (a progress line the caller may print or skip).
    """
    step = step or (lambda name: None)
    tick = tick or (lambda text: None)
    dgame = game_at("recompute", 1.0) if derivative_game is None else derivative_game
    game = game_at("recompute", 1.0)
    n = game.n_components
    rng = np.random.default_rng(seed)
    step("exact interactions and the Möbius and context identities")
    sets, ints, values = interactions(game, order)
    INT = _int_lookup(sets, ints, values)
    fresh = _fresh(game)
    scale = max(1e-12, float(np.abs(ints).max()) if ints.size else 0.0,
                max(float(np.abs(values[(i,)] - values[()]).max()) for i in range(n)))

    def sample(k: int, m: int) -> list[Subset]:
        combos = [tuple(sorted(int(i) for i in rng.choice(n, size=k, replace=False))) for _ in range(m)]
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
    step(f"integral of nested-JVP mixed partials over {len(checked)} faces (scrambled Sobol points)")
    integrals = []
    for j, T in enumerate(checked):
        if j and len(T) != len(checked[j - 1]):  # a new order: a new program to compile
            step(f"integral over the {sum(len(U) == len(T) for U in checked)} faces of order {len(T)}")
        def on_points(done: int, total: int, j: int = j, order: int = len(T)) -> None:
            tick(f"integral over face {j + 1} of {len(checked)} (order {order}): {done} of {total} new points")

        r = face_integral(dgame, T, points=integral_points, scramblings=integral_scramblings, seed=seed,
                          on_points=on_points)
        while 3 * r.standard_error.max() > INTEGRAL_RESOLUTION * scale and r.points < integral_max_points:
            r = face_integral(dgame, T, points=min(4 * r.points, integral_max_points),  # a bar too wide to
                              scramblings=integral_scramblings, seed=seed, previous=r,  # tell: more points
                              on_points=on_points)
        integrals.append(r)
        tick(f"integral over face {j + 1} of {len(checked)} (order {len(T)}): {r.points} points x "
             f"{r.scramblings} scramblings")
    quad = np.stack([r.estimate for r in integrals], axis=1)  # [P, n_checked]
    se = np.stack([r.standard_error for r in integrals], axis=1)
    rounding = 100 * float(np.finfo(np.dtype(_dtype_of(dgame))).eps) * scale  # the smallest error bar believed
    z = np.stack([r.z_scores(exact[:, j], rounding) for j, r in enumerate(integrals)], axis=1)
    bounded = [T for T in checked if bound_order is None or len(T) <= bound_order]

    def on_face(j: int, T: Subset) -> None:
        if j:  # the first face's line is the part's own
            step(f"sampled sup on face {j + 1} of {len(bounded)} (order {len(T)})")

    step("sampled sup of |D_T| (local-affine bound)")

    def on_level(m: int, evaluated: int, sup: float) -> None:
        tick(f"sampled sup: {m} points per axis, {evaluated} evaluations, largest |D_T| so far {sup:.3g}")

    bound = bound_report(dgame, bounded, rtol=bound_rtol, max_points=bound_max_points,
                         polish_starts=bound_polish_starts, on_set=on_face, on_level=on_level)
    affinity = affinity_vs_interaction(bound)

    eps = float(np.finfo(np.float64 if jax.config.jax_enable_x64 else np.float32).eps)
    magnitude = max(float(np.abs(values[()]).max()), scale)

    def floor(k: int) -> float:
        return rounding_floor(k, magnitude, eps)

    step(f"distance-scaling slopes at {len(ts)} source scales, both semantics")
    slopes, per_set = {}, {}
    for semantics in ("frozen", "recompute"):
        scaled = scaled_interactions(lambda t: game_at(semantics, t), checked, ts)
        slopes[semantics] = slopes_by_order(ts, checked, scaled, floor)
        per_set[semantics] = slopes_by_set(ts, checked, scaled, floor)
    by_set = []
    for j, T in enumerate(checked):
        row = dict(set=list(map(int, T)), frozen=per_set["frozen"][j], recompute=per_set["recompute"][j],
                   predicted_frozen=len(T))
        if structure is not None:
            pred = structure(T)
            row.update(predicted_recompute=pred["recompute"], conjecture_recompute=pred["conjecture"],
                       chain=[int(T[i]) for i in pred["chain"]],
                       cover=[[int(T[i]) for i in block] for block in pred["cover"]])
        by_set.append(row)
    return dict(
        order=order,
        n_components=n,
        n_interactions=len(sets),
        patched_runs=len(values),
        identity_max_residual=identity,
        context_identity_max_residual=context,
        effect_scale=scale,
        integral_max_z=float(z.max()) if z.size else 0.0,
        integral_max_rel_error=float(np.abs(quad - exact).max() / scale) if z.size else 0.0,
        integral_resolution=float(3 * se.max() / scale) if se.size else 0.0,
        bound_holds_fraction=float(np.mean([r["int_le_sampled_sup"] for r in bound])),
        bound_by_set=[dict(r, set=list(r["set"])) for r in bound],
        bound_points=int(sum(r["points"] for r in bound)),
        bound_batches=int(sum(r["batches"] for r in bound)),
        bound_looseness_median=float(np.nanmedian([r["looseness_median"] for r in bound])),
        affinity_vs_interaction={k: v for k, v in affinity.items() if k not in ("affinity_error", "relative_int")},
        slope_frozen=slopes["frozen"],
        slope_recompute=slopes["recompute"],
        slopes_by_set=by_set,
        checked_sets=[list(map(int, T)) for T in checked],
        checked_exact_mean=np.abs(exact).mean(axis=0).tolist(),
        checked_integral_mean=np.abs(quad).mean(axis=0).tolist(),
        checked_integral_se_max=se.max(axis=0).tolist(),
        ts=list(ts),
        integral_points=dict(points=max(r.points for r in integrals) if integrals else integral_points,
                             scramblings=integral_scramblings, by_face=[r.points for r in integrals]),
        dtype=str(jnp.zeros(()).dtype) if not jax.config.jax_enable_x64 else "float64",
        derivative_dtype=_dtype_of(dgame),
    )


def _dtype_of(game) -> str:
    """The dtype a game computes in: its first float array (the default float for games without one)."""
    leaves = [a for a in jax.tree.leaves(game) if isinstance(a, jax.Array) and jnp.issubdtype(a.dtype, jnp.floating)]
    return str(leaves[0].dtype) if leaves else str(jnp.zeros(()).dtype)


SLOPE_TOLERANCE = 0.25  # |measured − predicted| log-log slope accepted per set
# The integral identity's check: |estimate − INT| within INTEGRAL_Z standard errors (8 scramblings:
# a t with 7 degrees of freedom, two-sided p ≈ 0.002 per comparison), and an error bar (3 SE) at most
# INTEGRAL_RESOLUTION of the effect scale for the check to say anything.
INTEGRAL_Z = 5.0
INTEGRAL_RESOLUTION = 0.10


def integral_verdict(table: dict) -> str:
    """pass / fail / inconclusive for the integral identity (see INTEGRAL_Z and INTEGRAL_RESOLUTION)."""
    if table["integral_max_z"] > INTEGRAL_Z:
        return "fail"
    return "pass" if table["integral_resolution"] <= INTEGRAL_RESOLUTION else "inconclusive"
