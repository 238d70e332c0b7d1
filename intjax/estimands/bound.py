"""The local-affine bound stated honestly: a *sampled* sup of |D_T| over the face, how loose
it is against the exact INT_T, and how close to affine f is on that face.

The integral identity INT_T = ∫_{[0,1]^T} D_T(α_T, 0) dα_T (DESIGN.md §2) gives

    |INT_T| ≤ sup_{α_T ∈ [0,1]^T} |D_T(α_T, 0)|,

and INT_T = 0 where f is affine on the face {α_T ∈ [0,1]^T, α_rest = 0}.

`derivatives.face_check` takes that sup over the Gauss–Legendre nodes only. The
weights are positive and sum to 1, so node-sup ≥ |quadrature| always: comparing
it with INT re-tests quadrature convergence, and a narrow bump of D_T between
the nodes goes unseen. Here the sup is searched for on the whole face:

- `sampled_sup`: nested uniform grids (3, 5, 9, 17, … points per axis; every
  level contains the previous one, so only new points are evaluated), each level
  followed by a compass search from the grid's best local maxima, refined until
  every prompt's sampled sup grows by no more than `rtol` from one level to the
  next, or a point budget is hit. It is a LOWER estimate of the true sup (a
  sample can always miss a narrower bump); nothing here proves a bound.
- `looseness_ratio`: sampled sup / |INT_T| per prompt.
- `affine_fit`: the best affine function of α_T fitted to f on a face grid, and
  its relative error, a measure of how affine f is on the face.
- `bound_report` / `affinity_vs_interaction`: all of it per set, and whether
  faces that are nearly affine carry small interactions.

Mixed partials are evaluated in batches through `derivatives.mixed_partials_batched` (nested
jax.jvp, one compile per order and batch shape); f values through `game.values`.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Callable, Iterable, Sequence

import jax
import numpy as np

from intjax.errors import InputError
from intjax.estimands.derivatives import FACE_BATCH, float_dtype, mixed_partials_batched, start_layer, unit_directions
from intjax.estimands.game import Game, PromptwiseGame
from intjax.estimands.mobius import Subset, mobius


# ---------------------------------------------------------------------------------------------
# Mixed partials at arbitrary face points, in batches


class _FaceD:
    """D_T at face points through `derivatives.mixed_partials_batched`, in batches of ONE shape per order
    (compiling the nested JVPs of a model dominates small runs).

    Games whose `__call__` takes α `[P, n]` (row p feeding prompt p only, e.g. a
    PatchProblem) are always called that way: a point shared by all prompts is
    broadcast, and a polish step can put each prompt at its own point at the
    same cost. Other games (FunctionGame) take one α `[n]` for all prompts.
    """

    def __init__(self, game: Game, T: Subset, chunk: int):
        self.game, self.T, self.chunk = game, T, chunk
        n = game.n_components
        self.dirs = unit_directions(n, T)  # [k, n]
        self.per_prompt = isinstance(game, PromptwiseGame)
        if self.per_prompt:
            per_prompt = np.broadcast_to(np.asarray(self.dirs)[:, None, :], (len(T), game.n_prompts, n))
            self.dirs = jax.device_put(per_prompt)
        self.start = start_layer(game, T)
        self.dtype = None
        self.evaluated = 0  # batch elements: one nested-JVP pass over all prompts each
        self.batches = 0  # program calls of `chunk` elements each: what the evaluations cost

    def __call__(self, coords: np.ndarray) -> np.ndarray:
        """`coords` `[B, |T|]` (shared by all prompts) or `[B, P, |T|]` (per prompt) →
        D_T `[B, P]` float64. Padded with the point 0 to whole chunks."""
        n, B = self.game.n_components, coords.shape[0]
        if self.per_prompt and coords.ndim == 2:
            coords = np.broadcast_to(coords[:, None, :], (B, self.dirs.shape[1], coords.shape[-1]))
        if coords.ndim == 3 and not self.per_prompt:
            raise InputError("this game takes one α for all prompts; per-prompt points need a PromptwiseGame "
                             "(one that takes α [P, n], as a PatchProblem does)")
        pts = np.zeros((B,) + coords.shape[1:-1] + (n,))
        pts[..., list(self.T)] = coords
        d = mixed_partials_batched(self.game, self.dirs, pts, self.start, self.chunk)
        self.dtype = d.dtype
        self.evaluated += B
        self.batches += -(-B // self.chunk)
        return d.astype(np.float64)


# ---------------------------------------------------------------------------------------------
# The integral of D_T over the face, with its uncertainty


@dataclasses.dataclass(frozen=True)
class FaceIntegral:
    """∫_{[0,1]^T} D_T(α_T, 0) dα_T by randomized quasi-Monte Carlo, which the integral identity
    says equals INT_T: the mean over `scramblings` independently scrambled Sobol sets of
    `points` each, and its standard error from their spread (an honest error bar where
    Gauss–Legendre on sharply curved partials gives none)."""

    T: Subset
    estimate: np.ndarray  # [P]
    standard_error: np.ndarray  # [P]
    points: int
    scramblings: int
    seed: int = 0
    samples: np.ndarray | None = None  # D_T at every point, [scramblings, points, P]: a refinement reuses them

    def z_scores(self, exact: np.ndarray, floor: float = 0.0) -> np.ndarray:
        """|estimate − exact| in standard errors, `[P]` (`floor` keeps a rounding-sized error bar)."""
        return np.abs(self.estimate - exact) / np.maximum(self.standard_error, floor)


def face_integral(game: Game, T: Sequence[int], *, points: int = 64, scramblings: int = 8, seed: int = 0,
                  chunk: int = FACE_BATCH, previous: FaceIntegral | None = None,
                  on_points: Callable[[int, int], None] | None = None) -> FaceIntegral:
    """∫ D_T over the face of T (other components at 0) by scrambled Sobol points, with its standard
    error over `scramblings` independent scramblings (see `FaceIntegral`); `points` a power of 2.

    `previous`: an integral of the same face, scramblings and seed at fewer points. A scrambled
    Sobol set of m points is the first m of the set of 4m, so only the new points are evaluated
    (the result equals a fresh call's). `on_points(done, total)` is called after every 4 batches of new
    points (a progress line for long faces)."""
    from scipy.stats import qmc

    if points < 2 or points & (points - 1):
        raise InputError(f"face_integral needs a power of 2 of points per scrambling (Sobol balance), got {points}")
    if scramblings < 2:
        raise InputError(f"face_integral needs at least 2 scramblings for a standard error, got {scramblings}")
    T = tuple(int(i) for i in T)
    done = 0
    if previous is not None and previous.samples is not None and (previous.T, previous.scramblings,
                                                                   previous.seed) == (T, scramblings, seed):
        done = previous.points if previous.points <= points else 0  # a larger set is not a prefix to extend
    D = _FaceD(game, T, chunk)
    coords = np.concatenate([qmc.Sobol(len(T), scramble=True, seed=seed + s).random(points)[done:]
                             for s in range(scramblings)])  # one call: whole chunks, no padding per scrambling
    step = 4 * chunk  # whole batches: the padding is the same as in one call
    parts = []
    for at in range(0, len(coords), step):
        parts.append(D(coords[at:at + step]))
        if on_points is not None:
            on_points(min(at + step, len(coords)), len(coords))
    new = np.concatenate(parts).reshape(scramblings, points - done, -1)
    samples = np.concatenate([previous.samples[:, :done], new], axis=1) if done else new  # [scramblings, points, P]
    means = samples.mean(axis=1)  # [scramblings, P]
    return FaceIntegral(T, means.mean(axis=0), means.std(axis=0, ddof=1) / np.sqrt(scramblings), points,
                        scramblings, seed, samples)


# ---------------------------------------------------------------------------------------------
# Sampled sup of |D_T| over the face


@dataclasses.dataclass(frozen=True)
class SampledSup:
    """Sampled sup of |D_T(α_T, 0)| over the face of T: a LOWER estimate of the true sup.

    - `sampled_sup` `[P]`: the largest |D_T| found for each prompt.
    - `argmax` `[P, |T|]`: where on the face it was found (α_T).
    - `points_per_axis`: the uniform grid of each level (3, 5, 9, …).
    - `level_sampled_sups` `[L, P]`: the sampled sup after each level (grid and
      polish so far; non-decreasing), to show convergence.
    - `level_grid_sups` `[L, P]`: the max of |D_T| over that level's grid alone.
    - `grid_points`, `polish_points`, `n_points`: mixed-partial evaluations, each
      one nested-JVP pass over all P prompts (a polish evaluation may put each
      prompt at its own point).
    - `batches`: program calls of `chunk` points each (padding included): the cost.
    - `converged`: every prompt's sampled sup grew by at most `rtol` (relative)
      over the last refinement; False when the point budget stopped it first.
    """

    T: Subset
    sampled_sup: np.ndarray
    argmax: np.ndarray
    points_per_axis: tuple[int, ...]
    level_sampled_sups: np.ndarray
    level_grid_sups: np.ndarray
    grid_points: int
    polish_points: int
    batches: int
    converged: bool
    rtol: float
    dtype: str  # what the game computed D_T in (sets the rounding floor downstream)

    @property
    def n_points(self) -> int:
        """All mixed-partial evaluations: grid plus polish."""
        return self.grid_points + self.polish_points

    @property
    def growth(self) -> np.ndarray:
        """Relative growth of each prompt's sampled sup at each refinement, `[L-1, P]`."""
        s = self.level_sampled_sups
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(s[1:] > 0, (s[1:] - s[:-1]) / s[1:], 0.0)


def _grid_coords(m: int, k: int) -> np.ndarray:
    """Coordinates of the uniform m^k grid in C order, `[m^k, k]`."""
    axis = np.linspace(0.0, 1.0, m)
    idx = np.indices((m,) * k).reshape(k, -1).T
    return axis[idx]


def _local_maxima(values: np.ndarray, m: int, k: int) -> np.ndarray:
    """Which grid points are ≥ all their axis neighbours, per prompt: `[m^k, P]` bool."""
    P = values.shape[-1]
    v = values.reshape((m,) * k + (P,))
    is_max = np.ones(v.shape, bool)
    for ax in range(k):
        pad = [(0, 0)] * (k + 1)
        pad[ax] = (1, 1)
        vp = np.pad(v, pad, constant_values=-np.inf)
        lo = np.take(vp, np.arange(0, m), axis=ax)
        hi = np.take(vp, np.arange(2, m + 2), axis=ax)
        is_max &= (v >= lo) & (v >= hi)
    return is_max.reshape(-1, P)


def _polish(D: _FaceD, starts, values, step, *, tol, max_iter, scales=2, min_gain=0.0, diagonal=False):
    """Compass search for local maxima of |D_T| on the face, one per (start, prompt).

    `starts` `[S, P, k]`, their |D| `values` `[S, P]`, initial `step` `[S, P]`
    (0 skips that search). Each iteration tries α + s·u (clipped to [0,1]) for
    every direction u (±e_i along each axis i; with `diagonal`, every neighbour
    u ∈ {−1, 0, 1}^k of the cube, so a search can climb a ridge that runs across
    the axes instead of zig-zagging up it) and `scales` (≥ 2) step sizes
    s = 2h, h, h/2, … (h the search's step), moves to the best candidate if it beats the current value by more than
    `min_gain` (relative) and more than rounding (`_rounding_floor` of the dtype D_T is
    computed in: float32 noise on a flat ridge would otherwise keep a search moving
    until `max_iter`) and takes that
    candidate's step as its own (so a search climbing a long slope doubles its
    step), and otherwise divides its step by 2^scales, so the next iteration tries the
    step sizes just below the smallest one tried (every power of 2 is tried in turn); a search
    ends when its step is below `tol`, all end after `max_iter` iterations.
    Trying several step sizes in one batch takes that many times fewer
    sequential program calls than halving one step at a time. Returns the final
    points and values. With per-prompt evaluation each prompt's candidates ride
    in the same batch element; otherwise each (start, prompt) search costs whole
    evaluations.
    """
    S, P, k = starts.shape
    X, V, h = starts.copy(), values.copy(), np.asarray(step, np.float64).copy()
    factors = 2.0 ** (1 - np.arange(scales))  # 2, 1, 1/2, …
    directions = _directions(k, diagonal)
    offsets = (factors[:, None, None] * directions[None]).reshape(-1, k)  # [directions × scales, k]
    factor_of = np.repeat(factors, len(directions))  # the step factor of each candidate
    n_cand = len(offsets)
    for _ in range(max_iter):
        active = h >= tol
        if not active.any():
            break
        C = np.clip(X[None] + h[None, :, :, None] * offsets[:, None, None, :], 0.0, 1.0)  # [2kJ, S, P, k]
        Dc = np.full((n_cand, S, P), -np.inf)
        if D.per_prompt:
            rows = np.flatnonzero(active.any(axis=1))  # starts with some prompt still searching
            Dc[:, rows] = np.abs(D(C[:, rows].reshape(-1, P, k))).reshape(n_cand, len(rows), P)
        else:
            s_idx, p_idx = np.nonzero(active)
            vals = D(C[:, s_idx, p_idx].reshape(-1, k)).reshape(n_cand, len(s_idx), P)
            Dc[:, s_idx, p_idx] = np.abs(vals[:, np.arange(len(s_idx)), p_idx])
        best = Dc.argmax(axis=0)  # [S, P]
        best_val = np.take_along_axis(Dc, best[None], axis=0)[0]
        move = active & (best_val > V + np.maximum(_rounding_floor(V, D.dtype), min_gain * V))
        shrink = active & ~move
        X = np.where(move[..., None], np.take_along_axis(C, best[None, ..., None], axis=0)[0], X)
        V = np.where(move, best_val, V)
        h = np.where(move, h * factor_of[best], np.where(shrink, h * factors[-1] / 4, h))  # next: the scales below
    return X, V


def _directions(k: int, diagonal: bool) -> np.ndarray:
    """The search's step directions: ±e_i `[2k, k]`, or every non-zero u ∈ {−1, 0, 1}^k `[3^k − 1, k]`."""
    if not diagonal:
        return np.concatenate([np.eye(k), -np.eye(k)])
    cube = np.indices((3,) * k).reshape(k, -1).T - 1.0
    return cube[np.abs(cube).sum(axis=1) > 0]


def _scales_filling(chunk: int, candidates_per_scale: int) -> int:
    """How many step sizes one polish iteration tries so its candidates fill one batch (at least 2)."""
    return max(2, chunk // max(1, candidates_per_scale))


def sampled_sup(
    game: Game,
    T: Sequence[int],
    *,
    start: int = 3,
    max_points: int = 5000,
    rtol: float = 0.01,
    min_levels: int = 2,
    min_grid_points: int = 64,
    polish: bool = True,
    polish_starts: int = 1,
    polish_tol: float = 1e-4,
    polish_iters: int = 60,
    polish_scales: int | None = None,
    polish_gain: float = 0.01,
    chunk: int = FACE_BATCH,
    on_level: Callable[[int, int, float], object] | None = None,
) -> SampledSup:
    """The sampled sup of |D_T(α_T, 0)| over the face {α_T ∈ [0,1]^T, α_rest = 0}, `[P]`.

    A lower estimate of the true sup (which bounds |INT_T|), never a proof.

    Refinement: level ℓ is the uniform grid of m_ℓ = (start − 1)·2^ℓ + 1 points
    per axis (3, 5, 9, 17, 33, 65, … for start = 3). The levels are nested, so
    each evaluates only its new points. With `polish` (default), each level then
    runs a compass search (`_polish`) from the `polish_starts` best discrete
    local maxima of |D_T| on that level's grid, per prompt, starting with half
    the grid spacing and stopping below `polish_tol`: the grid finds the basins,
    the search finds the peak inside a basin (a peak the grid brackets is found
    to ~`polish_tol` in α). Each search step tries `polish_scales` step sizes at
    once (default: as many as fill one batch of `chunk` points), so it takes
    that many times fewer sequential batches, and along every neighbour direction
    of the cube (diagonals too) where four step sizes of them fit in one batch
    (a pair's single search; triples step along the axes); a search moves only for a gain above
    `polish_gain`·`rtol` (relative: 1e-4 by default, a hundredth of what the
    stopping rule below resolves), so it does not creep up a shallow ridge a
    rounding-sized gain at a time. Without polishing, dyadic grids can stall: a peak at
    0.45 has the same nearest grid point (0.5) for spacings 1/2, 1/4 and 1/8, so
    the sup does not grow between those levels and the rule below would stop
    far below the peak.

    Stopping rule, per prompt (the bound and the looseness ratio are per prompt,
    and a max over prompts would let the prompt with the largest sup hide the
    others): stop after the first refinement at which, for EVERY prompt p, the
    sampled sup s_p grew by at most rtol·s_p (growths below 1e-6·rtol·max_q s_q
    count as none, so a prompt whose D_T vanishes to rounding cannot hold the
    refinement open). The rule may stop only once at least `min_levels` (≥ 2)
    levels are evaluated and the grid holds at least `min_grid_points` points:
    by default 3, 5 and 9 per axis for a pair (81 points), 3 and 5 for a triple
    (125), so basins narrower than the first grids get a chance before the rule
    can stop it (with polishing the sup rarely grows once its basin is found, so
    the grid's reach matters more than the rule); a budget in points rather than
    levels keeps a triple's face from costing 9³ = 729 grid points. Refinement also stops,
    with `converged=False`, before a level whose new grid points would take the
    evaluations past `max_points` (the first level is always evaluated; polish
    evaluations count toward the budget once made).

    `on_level(points_per_axis, evaluations, sup)` is called after each level (progress lines;
    `sup` the largest over prompts so far).
    """
    T = tuple(sorted(set(int(i) for i in T)))
    k = len(T)
    if k == 0:
        raise InputError("sampled_sup needs a non-empty set")
    if min(T) < 0 or max(T) >= game.n_components:
        raise InputError(f"set {T} names a component outside 0..{game.n_components - 1}")
    if start < 2:
        raise InputError(f"start must be at least 2 points per axis, got {start}")
    if polish_scales is not None and polish_scales < 2:
        raise InputError(f"polish_scales must be at least 2 (the step sizes 2h and h), got {polish_scales}")
    D = _FaceD(game, T, chunk)

    m = start
    coords = _grid_coords(m, k)
    grid = D(coords)  # [m^k, P]
    P = grid.shape[1]
    best = np.full(P, -np.inf)
    best_at = np.zeros((P, k))
    ends = np.zeros((0, P, k))  # where earlier polishes ended
    levels, level_grid, sizes = [], [], []
    grid_points, converged = len(coords), False

    while True:
        absD = np.abs(grid)
        gi = absD.argmax(axis=0)
        gmax = absD[gi, np.arange(P)]
        better = gmax > best
        best = np.where(better, gmax, best)
        best_at = np.where(better[:, None], coords[gi], best_at)
        if polish:
            spacing = 1.0 / (m - 1)
            score = np.where(_local_maxima(absD, m, k), absD, -np.inf)
            order = np.argsort(-score, axis=0, kind="stable")[:polish_starts]  # [S, P]
            order = np.where(np.isfinite(np.take_along_axis(score, order, axis=0)), order, order[:1])
            starts = coords[order]  # [S, P, k]
            # a start within one grid spacing of where an earlier polish ended lies in a basin
            # already climbed: skip it (step 0)
            near = (np.abs(starts[:, None] - ends[None]).max(axis=-1) <= spacing + 1e-12).any(axis=1)
            step = np.where(near, 0.0, spacing / 2)
            searches = len(starts) * (1 if D.per_prompt else P)  # each costs its own points per candidate
            diagonal = 4 * (3 ** k - 1) * searches <= chunk  # every neighbour direction, four step sizes
            per_scale = len(_directions(k, diagonal)) * searches
            X, V = _polish(D, starts, np.take_along_axis(absD, order, axis=0), step, tol=polish_tol,
                           max_iter=polish_iters, scales=polish_scales or _scales_filling(chunk, per_scale),
                           min_gain=polish_gain * rtol, diagonal=diagonal)
            ends = np.concatenate([ends, X[~near.all(axis=1)]])
            j = V.argmax(axis=0)
            pmax = V[j, np.arange(P)]
            better = pmax > best
            best = np.where(better, pmax, best)
            best_at = np.where(better[:, None], X[j, np.arange(P)], best_at)
        levels.append(best.copy())
        level_grid.append(gmax)
        sizes.append(m)
        if on_level is not None:
            on_level(m, D.evaluated, float(best.max()))
        if len(levels) >= max(2, min_levels) and m ** k >= min_grid_points:
            floor = 1e-6 * rtol * max(float(best.max()), 0.0)
            growth = levels[-1] - levels[-2]
            if np.all((growth <= rtol * levels[-1]) | (growth <= floor)):
                converged = True
                break
        m_next = 2 * (m - 1) + 1
        if D.evaluated + m_next ** k - m ** k > max_points:
            break
        idx = np.indices((m_next,) * k).reshape(k, -1).T
        is_new = (idx % 2 == 1).any(axis=1)
        fine = np.zeros((m_next,) * k + (P,))
        fine[(slice(None, None, 2),) * k] = grid.reshape((m,) * k + (P,))
        fine = fine.reshape(-1, P)
        coords = _grid_coords(m_next, k)
        fine[is_new] = D(coords[is_new])
        grid, m = fine, m_next
        grid_points += int(is_new.sum())

    return SampledSup(
        T=T, sampled_sup=best, argmax=best_at, points_per_axis=tuple(sizes),
        level_sampled_sups=np.stack(levels), level_grid_sups=np.stack(level_grid),
        grid_points=grid_points, polish_points=D.evaluated - grid_points, batches=D.batches,
        converged=converged, rtol=rtol, dtype=str(D.dtype),
    )


# ---------------------------------------------------------------------------------------------
# Looseness and affinity


def looseness_ratio(sampled: np.ndarray, exact_int: np.ndarray, atol: float | np.ndarray = 0.0) -> np.ndarray:
    """sampled sup / |INT_T| per prompt, `[P]`.

    Where |INT_T| ≤ `atol` (zero to rounding) the ratio is `inf` if the sampled
    sup exceeds `atol` (a non-zero D_T integrating to nothing: the bound says
    nothing useful) and `nan` if it does not (D_T vanishes on the face: 0/0).
    """
    s = np.asarray(sampled, np.float64)
    i = np.abs(np.asarray(exact_int, np.float64))
    atol = np.broadcast_to(np.asarray(atol, np.float64), i.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = s / i
    zero = i <= atol
    return np.where(zero, np.where(s > atol, np.inf, np.nan), ratio)


@dataclasses.dataclass(frozen=True)
class AffineFit:
    """Least-squares affine fit of f(α_T, 0) on the uniform face grid of `points` per axis.

    - `relative_error` `[P]`: RMS residual / RMS(f − mean f) over the grid, i.e.
      sqrt(1 − R²): 0 where f is affine on the face, at most 1 (the constant fit
      is an affine fit), scale-free. Set to 0 where f is constant on the face to
      rounding (RMS(f − mean f) ≤ `atol`).
    - `rms_residual` `[P]`, `face_range` `[P]` (max f − min f on the grid),
      `face_max_abs` `[P]` (max |f| on the grid, the scale rounding is relative to),
      `coefficients` `[P, |T| + 1]` (intercept, then the slope along each α_i, i ∈ T).
    """

    T: Subset
    points: int
    relative_error: np.ndarray
    rms_residual: np.ndarray
    face_range: np.ndarray
    face_max_abs: np.ndarray
    coefficients: np.ndarray
    atol: np.ndarray


def _rounding_floor(scale: np.ndarray, dtype) -> np.ndarray:
    """What counts as zero next to values of size `scale` computed in `dtype`."""
    return 64 * float(np.finfo(dtype).eps) * np.asarray(scale, np.float64) + 1e-300


def _face_masks(n: int, T: Subset, points: int) -> np.ndarray:
    """Masks of the uniform face grid of T with `points` per axis, `[points^|T|, n]` (C order)."""
    coords = _grid_coords(points, len(T))
    masks = np.zeros((len(coords), n))
    masks[:, list(T)] = coords
    return masks


def _fit(T: Subset, points: int, f: np.ndarray, dtype) -> AffineFit:
    """The affine fit from f `[points^|T|, P]` on the face grid (see `affine_fit`)."""
    coords = _grid_coords(points, len(T))
    X = np.concatenate([np.ones((len(coords), 1)), coords], axis=1)
    coef, *_ = np.linalg.lstsq(X, f, rcond=None)
    resid = f - X @ coef
    rms_res = np.sqrt(np.mean(resid ** 2, axis=0))
    rms_dev = np.sqrt(np.mean((f - f.mean(axis=0)) ** 2, axis=0))
    max_abs = np.abs(f).max(axis=0)
    atol = _rounding_floor(max_abs, dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(rms_dev > atol, rms_res / rms_dev, 0.0)
    return AffineFit(T=T, points=points, relative_error=rel, rms_residual=rms_res,
                     face_range=f.max(axis=0) - f.min(axis=0), face_max_abs=max_abs,
                     coefficients=coef.T, atol=atol)


def affine_fit(game: Game, T: Sequence[int], *, points: int = 5, dtype=None) -> AffineFit:
    """How affine f is on the face of T: fit c + Σ_{i∈T} b_i α_i to f(α_T, 0) by least
    squares over the uniform grid of `points` per axis (f from `game.values` on those
    fractional masks) and report the relative error (see `AffineFit`).

    Why RMS residual / RMS(f − mean f) rather than / max|f − f(0)|: it is the
    share of f's variation over the face that no affine function explains
    (sqrt(1 − R²)), bounded in [0, 1], invariant to f's scale and offset, and
    uses every grid value rather than one extreme. For a bilinear face
    f = c + b_1 a + b_2 b + I·ab the residual is exactly I·(a − ½)(b − ½), so
    RMS residual = |I|·v with v = (m+1)/(12(m−1)) the grid variance of one axis:
    the measure is |INT| in units of f's variation there. For f = ab it is
    sqrt(v/(1/2 + v)) (0.447 on the 5-point grid, 1/√7 ≈ 0.378 in the limit).

    `dtype`: the dtype f is computed in (default: float32 unless jax x64 is on),
    which sets the rounding floor.
    """
    T = tuple(sorted(set(int(i) for i in T)))
    if points < 2:
        raise InputError(f"an affine fit needs at least 2 points per axis, got {points}")
    f = np.asarray(game.values(_face_masks(game.n_components, T, points)), np.float64)
    return _fit(T, points, f, dtype or float_dtype())


# ---------------------------------------------------------------------------------------------
# Report


def bound_report(
    game: Game,
    sets: Iterable[Iterable[int]],
    *,
    start: int = 3,
    max_points: int = 5000,
    rtol: float = 0.01,
    fit_points: int = 5,
    on_set: Callable[[int, Subset], object] | None = None,
    **sup_kwargs,
) -> list[dict]:
    """Per set T: the exact INT_T, the sampled sup of |D_T| on its face, how loose the
    bound is, and how affine f is there.

    Keys (per-prompt values are lists over prompts):
    - `set` (tuple of ints), `order`
    - `exact_int_mean_abs`: mean over prompts of |INT_T| (exact: the Möbius sum of f at
      the face's vertices, float64, as `mobius.interactions` computes it)
    - `sampled_sup_mean`, `sampled_sup_max`: over prompts (see `sampled_sup`)
    - `points`: mixed-partial evaluations (grid + polish); `batches`: the program calls
      they took (each `FACE_BATCH` points, padding included); `points_per_axis`: the
      finest grid; `converged`; `level_sampled_sups_max`: max over prompts per level
    - `looseness_median`: median over prompts of sampled sup / |INT_T|, ignoring
      nan (0/0) prompts; inf prompts count as larger than any other (see
      `looseness_ratio`); nan if every prompt is 0/0
    - `affinity_error_mean`: mean over prompts of `AffineFit.relative_error`
    - `int_le_sampled_sup`: |INT_T| ≤ sampled sup (+ rounding floor) for every prompt.
      False means the sampling missed where |D_T| is large (the true sup always
      bounds |INT_T|), not that the theorem failed.
    - per prompt: `int`, `sampled_sup`, `looseness`, `affinity_error`,
      `face_range`, `relative_int` (|INT_T| / face range of f, nan where the range is 0)

    The rounding floor is 64·eps·max|f| on the face, eps of the dtype the game
    computes D_T in. `on_set(i, T)` is called as set i's sampled sup starts (progress lines).
    """
    targets = [tuple(sorted(set(int(i) for i in s))) for s in sets]
    if not targets:
        return []
    if fit_points < 2:
        raise InputError(f"an affine fit needs at least 2 points per axis, got {fit_points}")
    n = game.n_components
    for T in targets:
        if not T or min(T) < 0 or max(T) >= n:
            raise InputError(f"set {T} is empty or names a component outside 0..{n - 1}")
    # every face grid in one evaluator call (each distinct mask once); the grids hold their
    # faces' vertices, so INT_T is the exact Möbius sum (`mobius`) of the same f(1_U) that
    # `interactions(game, sets=...)` reads
    grids = [_face_masks(n, T, fit_points) for T in targets]
    unique, inverse = np.unique(np.concatenate(grids), axis=0, return_inverse=True)
    f_all = np.asarray(game.values(unique), np.float64)[inverse.ravel()]
    offsets = np.cumsum([0] + [len(g) for g in grids])
    rows = []
    for col, T in enumerate(targets):
        if on_set is not None:  # progress: set `col` of the list starts
            on_set(col, T)
        sup = sampled_sup(game, T, start=start, max_points=max_points, rtol=rtol, **sup_kwargs)
        dtype = np.dtype(sup.dtype)
        f = f_all[offsets[col]: offsets[col + 1]]
        fit = _fit(T, fit_points, f, dtype)
        idx = np.indices((fit_points,) * len(T)).reshape(len(T), -1).T
        corner = (idx % (fit_points - 1) == 0).all(axis=1)  # grid points at the face's vertices
        vertex = {tuple(t for t, bit in zip(T, i // (fit_points - 1)) if bit): f[r]
                  for r, i in zip(np.flatnonzero(corner), idx[corner])}
        exact = mobius(vertex, T)
        atol = _rounding_floor(fit.face_max_abs, dtype)
        loose = looseness_ratio(sup.sampled_sup, exact, atol)
        finite = loose[~np.isnan(loose)]
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = np.where(fit.face_range > atol, np.abs(exact) / fit.face_range, np.nan)
        rows.append(dict(
            set=T,
            order=len(T),
            exact_int_mean_abs=float(np.abs(exact).mean()),
            sampled_sup_mean=float(sup.sampled_sup.mean()),
            sampled_sup_max=float(sup.sampled_sup.max()),
            points=sup.n_points,
            batches=sup.batches,
            points_per_axis=sup.points_per_axis[-1],
            converged=sup.converged,
            level_sampled_sups_max=sup.level_sampled_sups.max(axis=1).tolist(),
            looseness_median=float(np.median(finite)) if finite.size else float("nan"),
            affinity_error_mean=float(fit.relative_error.mean()),
            int_le_sampled_sup=bool(np.all(np.abs(exact) <= sup.sampled_sup + atol)),
            int=exact.tolist(),
            sampled_sup=sup.sampled_sup.tolist(),
            looseness=loose.tolist(),
            affinity_error=fit.relative_error.tolist(),
            face_range=fit.face_range.tolist(),
            relative_int=relative.tolist(),
        ))
    return rows


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..N, ties given their average rank."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    ranks = np.empty(len(x))
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i: j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[int | float] | np.ndarray, y: Sequence[int | float] | np.ndarray) -> float:
    """Spearman rank correlation (ties: average ranks); nan with < 3 pairs or a constant side."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 3:
        return float("nan")
    rx, ry = _ranks(x), _ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def affinity_vs_interaction(report: list[dict], near_affine: float = 0.05) -> dict:
    """Do nearly affine faces carry small interactions? Across every (set, prompt) pair
    with |T| ≥ 2 and a non-zero face range:

    - `spearman`: rank correlation between the affine-fit relative error and
      |INT_T| / (max f − min f on the face) (the theorem predicts INT_T → 0 as
      the face becomes affine, so a positive correlation);
    - `n_pairs`; `affinity_error`, `relative_int`: the pairs' values;
    - `near_affine_pairs`: how many have affinity error < `near_affine`, and
      `near_affine_max_relative_int` / `other_median_relative_int`: the largest
      relative |INT| among them and the median among the rest (nan if none).
    """
    xs, ys = [], []
    for row in report:
        if row["order"] < 2:
            continue
        for a, r in zip(row["affinity_error"], row["relative_int"]):
            if np.isfinite(a) and np.isfinite(r):
                xs.append(a)
                ys.append(r)
    x, y = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    near = x < near_affine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return dict(
            spearman=spearman(x, y),
            n_pairs=int(len(x)),
            affinity_error=x.tolist(),
            relative_int=y.tolist(),
            near_affine_threshold=near_affine,
            near_affine_pairs=int(near.sum()),
            near_affine_max_relative_int=float(y[near].max()) if near.any() else float("nan"),
            other_median_relative_int=float(np.median(y[~near])) if (~near).any() else float("nan"),
        )
