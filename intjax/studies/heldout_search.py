"""Greedy versus combinatorial search, selected on some prompts and scored on others.

`studies.search.greedy_vs_best` selects the top-k by |mean NIE| and the best
k-set by |mean f(1_S) − f(0)| on one set of prompts and reports their joint
effects on the same prompts. The best set is the argmax of a noisy mean, so its
in-sample effect is biased upward (the winner's curse) and the in-sample
shortfall of greedy is too. Here both sets are chosen on the *selection* game
and their joint effects are measured on a *score* game: the same components
patched on other prompts (`split_prompts`). Per budget k (`HeldoutRow`):

- t_p, b_p = f(1_top) − f(0) and f(1_best) − f(0) on held-out prompt p;
  `top_effect`, `best_effect` = their means over the held-out prompts.
- σ = the sign of the best set's mean joint effect on the *selection* prompts
  (fixed before scoring; 0 counts as +1).
- paired difference d_p = σ·(b_p − t_p); `difference` = mean_p d_p. When both
  held-out means have the sign σ, mean d = |mean b| − |mean t|: how much more
  of the effect the best set carries than the top-k, in the effect's units.
- held-out `shortfall` = 1 − |mean t| / |mean b| (0: greedy is as good as the
  best set; 40%: it reaches 60% of it; negative: it does better held out).
- 95% CIs: percentile bootstrap over held-out prompts, `n_boot` resamples of
  the P held-out prompts with replacement, the same resample for t and b
  (paired) and for every k; the shortfall is recomputed from the resampled
  means (resamples with mean b = 0 are dropped).
- `significant`: the difference's CI excludes 0. `greedy_worse` (lower bound
  > 0) says the best set beats the top-k on prompts it was not chosen on;
  `greedy_better` (upper bound < 0) says the search overfit its prompts.
- in-sample numbers (`in_top_effect`, `in_best_effect`, `in_shortfall`) are
  the same sets' mean joint effects on the selection prompts, for comparison:
  `in_shortfall − shortfall` is the optimism of scoring on the prompts one
  selected on.

The candidate pool matters too: a pool of the strongest components by |NIE|
cannot contain a component that NIE hides (one that acts only together with
others, DESIGN.md §2 "invisible"). `search_pool` fills the pool alternately
from the strongest by |mean NIE| and the strongest by |mean context effect|
Δ_i(C) with the strongest components C already patched (`context_pool`).

Prompts: `split_prompts` splits a PromptSet (build one problem per part);
`split_indices` with `PromptSlice` splits one already-built Game (and its NIE,
`nie[select]`) instead.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from intjax import bootstrap
from intjax.errors import InputError
from intjax.estimands.effects import context_effects, nie as nie_of
from intjax.estimands.game import Game
from intjax.estimands.mobius import Subset, subset_masks
from intjax.patching.prompts import PromptSet
from intjax.studies.search import EXHAUSTIVE_LIMIT, NamedSets, greedy_vs_best

LEVEL = 0.95


# ----------------------------------------------------------------------------- prompts


def split_indices(n: int, fraction: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random split of 0..n−1 into selection and score indices (each sorted).

    The selection part has round(fraction·n) members; both parts must be non-empty.
    """
    if not 0 < fraction < 1:
        raise InputError(f"the selection fraction must lie strictly between 0 and 1, got {fraction}")
    n_select = int(round(fraction * n))
    if n_select < 1 or n_select > n - 1:
        raise InputError(f"cannot split {n} prompts with fraction {fraction}: both the selection and the "
                         "held-out part need at least one prompt (give more prompts)")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:n_select]), np.sort(order[n_select:])


def split_prompts(prompts: PromptSet, fraction: float = 0.5, seed: int = 0) -> tuple[PromptSet, PromptSet]:
    """(selection prompts, held-out score prompts): a random split (`split_indices`) via `PromptSet.subset`."""
    select, score = split_indices(len(prompts), fraction, seed)
    return prompts.subset(select.tolist()), prompts.subset(score.tolist())


class PromptSlice:
    """The Game `game` restricted to the prompts at `idx`: f at each mask on those prompts only.

    Lets one built problem (and its checkpoints and NIE) serve as both the
    selection and the score game: `PromptSlice(game, select)`,
    `PromptSlice(game, score)` with `split_indices`. Every `values` call
    evaluates all of `game`'s prompts and keeps `idx`; for large prompt sets,
    build one problem per part with `split_prompts` instead.
    """

    def __init__(self, game: Game, idx: Sequence[int] | np.ndarray):
        self.game = game
        self.idx = np.asarray(idx, int)
        if self.idx.ndim != 1 or not self.idx.size:
            raise InputError("a prompt slice needs at least one prompt index")

    @property
    def n_components(self) -> int:
        """n, the length of α."""
        return self.game.n_components

    @property
    def names(self) -> tuple[str, ...]:
        """The game's component names (none if it has none)."""
        return tuple(getattr(self.game, "names", ()))

    def values(self, masks: np.ndarray) -> np.ndarray:
        """f at each mask on the sliced prompts, `[M, len(idx)]` float64."""
        vals = np.asarray(self.game.values(masks), np.float64)
        if self.idx.max() >= vals.shape[1] or self.idx.min() < -vals.shape[1]:
            raise InputError(f"prompt slice {self.idx.tolist()} names a prompt outside 0..{vals.shape[1] - 1}")
        return vals[:, self.idx]

    def __call__(self, alpha):
        """f(α) on the sliced prompts, differentiable in α."""
        return self.game(alpha)[self.idx]


# ----------------------------------------------------------------------------- pool


def search_pool(nie: np.ndarray, context: Optional[np.ndarray], size: int) -> list[int]:
    """The candidate pool: strongest by |mean NIE| and strongest by |mean context effect|, alternately.

    `nie` and `context` are `[P, n]` (as `estimands.nie` and
    `estimands.context_effects` return; `context` = Δ_i(C) with the strongest
    components C already patched). Starting with the strongest by |mean NIE|,
    the next component not yet taken is added from the |mean NIE| ranking, then
    from the |mean context| ranking, and so on until `size` are taken (ties
    keep the lower index). `context=None` gives the NIE-only pool. Returns the
    indices sorted.

    A component whose NIE is small but whose effect with C patched is large
    (invisible) enters through the context ranking; a pool of the same size by
    NIE alone can leave it out.
    """
    nie = np.asarray(nie, np.float64)
    if nie.ndim != 2:
        raise InputError(f"nie must be [prompts, components], got shape {nie.shape}")
    n = nie.shape[1]
    rankings = [np.argsort(-np.abs(nie.mean(axis=0)), kind="stable")]
    if context is not None:
        context = np.asarray(context, np.float64)
        if context.shape[1:] != nie.shape[1:] or context.ndim != 2:
            raise InputError(f"context effects {context.shape} and NIE {nie.shape} must name the same "
                             "components ([prompts, components])")
        rankings.append(np.argsort(-np.abs(context.mean(axis=0)), kind="stable"))
    if not 1 <= size <= n:
        raise InputError(f"the pool size must be in 1..{n} (the number of components), got {size}")
    taken: list[int] = []
    cursors = [0] * len(rankings)
    turn = 0
    while len(taken) < size:
        ranking = rankings[turn]
        while int(ranking[cursors[turn]]) in taken:
            cursors[turn] += 1
        taken.append(int(ranking[cursors[turn]]))
        turn = (turn + 1) % len(rankings)
    return sorted(taken)


def context_pool(game: Game, size: int, n_context: int = 2, *,
                 nie: Optional[np.ndarray] = None) -> tuple[list[int], tuple[int, ...], list[int]]:
    """`search_pool` on `game` with C = its `n_context` strongest components by |mean NIE|.

    Returns (pool, C, the pool members the NIE-only pool of the same size leaves
    out). Compute it on the selection game: the pool is part of the selection.
    """
    nie = nie_of(game) if nie is None else np.asarray(nie)
    if not 0 <= n_context <= game.n_components:
        raise InputError(f"n_context={n_context} must be in 0..{game.n_components}")
    C = tuple(sorted(int(i) for i in np.argsort(-np.abs(nie.mean(0)), kind="stable")[:n_context]))
    pool = search_pool(nie, context_effects(game, C), size)
    by_nie = set(search_pool(nie, None, size))
    return pool, C, [i for i in pool if i not in by_nie]


def pool_rule(size: int, context_names: Sequence[str] = ()) -> str:
    """The pool rule in words, for reports."""
    if not context_names:
        return f"the {size} strongest by |mean NIE|"
    return (f"{size} components taken alternately from the strongest by |mean NIE| and the strongest by "
            f"|mean context effect| with {', '.join(context_names)} already patched")


# ----------------------------------------------------------------------------- rows


CI = tuple[float, float]


@dataclasses.dataclass(frozen=True)
class HeldoutRow(NamedSets):
    """One budget k: sets chosen on the selection prompts, scored on held-out prompts (module doc);
    `top_names`, `best_names` and `missed_names` name the sets."""

    k: int
    top_by_nie: Subset  # top-k of the pool by |mean NIE| on the selection prompts
    best: Subset  # best k-set by |mean joint effect| on the selection prompts
    method: str  # "exhaustive" or "beam(width)"
    n_evaluated: int  # sets evaluated on the selection prompts to find `best`
    n_select: int  # selection prompts
    n_score: int  # held-out prompts
    level: float  # CI level
    n_boot: int  # bootstrap resamples
    sign: float  # σ: sign of the best set's mean joint effect on the selection prompts
    in_top_effect: float  # selection prompts: mean f(1_top) − f(0)
    in_best_effect: float
    top_effect: float  # held-out prompts: mean f(1_top) − f(0)
    best_effect: float
    top_ci: CI
    best_ci: CI
    difference: float  # mean over held-out prompts of σ·(b_p − t_p)
    difference_ci: CI
    shortfall: float  # 1 − |top_effect| / |best_effect| (nan when best_effect = 0)
    shortfall_ci: CI
    top_per_prompt: np.ndarray = dataclasses.field(compare=False, repr=False)  # [n_score] t_p
    best_per_prompt: np.ndarray = dataclasses.field(compare=False, repr=False)  # [n_score] b_p
    names: tuple[str, ...] = ()  # every component's name, in the game's order (its index if it has none)

    @property
    def same_set(self) -> bool:
        """The top-k by |NIE| is the best set (then every held-out number of the two agrees)."""
        return self.top_by_nie == self.best

    @property
    def in_shortfall(self) -> float:
        """1 − |in_top_effect| / |in_best_effect| on the selection prompts."""
        return float(_shortfall(self.in_top_effect, self.in_best_effect))

    @property
    def optimism(self) -> float:
        """in_shortfall − shortfall: how much scoring on the selection prompts overstates greedy's shortfall."""
        return self.in_shortfall - self.shortfall

    @property
    def significant(self) -> bool:
        """The CI of the paired difference excludes 0."""
        return self.greedy_worse or self.greedy_better

    @property
    def greedy_worse(self) -> bool:
        """The best set beats the top-k on held-out prompts (difference CI above 0)."""
        return self.difference_ci[0] > 0

    @property
    def greedy_better(self) -> bool:
        """The top-k beats the set chosen as best on held-out prompts (difference CI below 0: overfitting)."""
        return self.difference_ci[1] < 0

    @property
    def sign_holds(self) -> bool:
        """The best set's held-out mean has the sign σ it had on the selection prompts."""
        return bool(np.sign(self.best_effect) == self.sign)


def _shortfall(top, best):
    """1 − |top| / |best|, nan where best = 0 (elementwise)."""
    best = np.abs(np.asarray(best, np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(best > 0, 1.0 - np.abs(top) / best, np.nan)


def per_prompt_joint(game: Game, sets: Sequence[Subset]) -> np.ndarray:
    """f(1_S) − f(0) for each set S and prompt, `[len(sets), P]` float64 (one `values` call)."""
    masks = subset_masks([()] + list(sets), game.n_components)
    vals = np.asarray(game.values(masks), np.float64)
    return vals[1:] - vals[:1]


def bootstrap_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Means of `values` `[S, P]` over `n_boot` resamples of the P prompts with replacement, `[n_boot, S]`.

    Every row is resampled with the same prompts (paired); the resample i draws
    `rng.integers(0, P, P)` from `np.random.default_rng(seed)` in turn.
    """
    P = values.shape[1]
    return bootstrap.counts(P, n_boot, seed) @ values.T / P


def _ci(samples: np.ndarray, level: float) -> CI:
    samples = samples[np.isfinite(samples)]
    if not samples.size:
        return (float("nan"), float("nan"))
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return (float(lo) + 0.0, float(hi) + 0.0)  # + 0.0: no −0.0 in reports


def heldout_greedy_vs_best(
    select_game: Game,
    score_game: Game,
    k_max: int,
    pool: Sequence[int],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    beam_width: int = 16,
    exhaustive_limit: int = EXHAUSTIVE_LIMIT,
    nie: Optional[np.ndarray] = None,
    level: float = LEVEL,
) -> list[HeldoutRow]:
    """For k = 1..k_max: choose the top-k of `pool` by |mean NIE| and the best k-set on `select_game`
    (as `search.greedy_vs_best`: exhaustive for pools of ≤ `exhaustive_limit`, else beam search),
    then score both on `score_game` (definitions and CIs: module doc).

    `score_game` must patch the same components as `select_game` on other
    prompts. `nie` (`[P_select, n]`) is the selection game's NIE, computed when
    not given. Pass the pool chosen on the selection prompts (e.g. `context_pool`).
    """
    n = select_game.n_components
    if score_game.n_components != n:
        raise InputError(f"the selection game has {n} components but the score game has "
                         f"{score_game.n_components}: score the same components on other prompts")
    pool = sorted(set(int(i) for i in pool))
    if not pool:
        raise InputError("the candidate pool is empty; give at least one component")
    if min(pool) < 0 or max(pool) >= n:
        raise InputError(f"the candidate pool must name components in 0..{n - 1}, got {pool}")
    if not 1 <= k_max <= len(pool):
        raise InputError(f"k_max must be in 1..{len(pool)} (the pool size), got {k_max}")
    if n_boot < 1:
        raise InputError(f"n_boot must be at least 1, got {n_boot}")
    if not 0 < level < 1:
        raise InputError(f"the CI level must lie strictly between 0 and 1, got {level}")

    nie = nie_of(select_game) if nie is None else np.asarray(nie, np.float64)
    if nie.ndim != 2 or nie.shape[1] != n:
        raise InputError(f"nie must be [selection prompts, {n}], got shape {nie.shape}")
    selected = greedy_vs_best(select_game, k_max, pool, nie=nie, exhaustive_limit=exhaustive_limit,
                              beam_width=beam_width)

    sets = sorted({s for r in selected for s in (r.top_by_nie, r.best)})
    where = {s: j for j, s in enumerate(sets)}
    effects = per_prompt_joint(score_game, sets)  # [S, P]
    P = effects.shape[1]
    if P < 2:
        raise InputError(f"the score game has {P} prompt; a held-out CI needs at least 2")
    boot = bootstrap_means(effects, n_boot, seed)  # [B, S]
    means = effects.mean(axis=1)

    rows = []
    for r in selected:
        t, b = where[r.top_by_nie], where[r.best]
        sign = 1.0 if r.best_effect >= 0 else -1.0
        diff = sign * (effects[b] - effects[t])
        rows.append(HeldoutRow(
            k=r.k, top_by_nie=r.top_by_nie, best=r.best, method=r.method, n_evaluated=r.n_evaluated,
            n_select=int(nie.shape[0]), n_score=P, level=level, n_boot=n_boot, sign=sign,
            in_top_effect=float(r.top_effect), in_best_effect=float(r.best_effect),
            top_effect=float(means[t]), best_effect=float(means[b]),
            top_ci=_ci(boot[:, t], level), best_ci=_ci(boot[:, b], level),
            difference=float(diff.mean()) + 0.0, difference_ci=_ci(sign * (boot[:, b] - boot[:, t]), level),
            shortfall=float(_shortfall(means[t], means[b])),
            shortfall_ci=_ci(_shortfall(boot[:, t], boot[:, b]), level),
            top_per_prompt=effects[t].copy(), best_per_prompt=effects[b].copy(), names=r.names,
        ))
    return rows
