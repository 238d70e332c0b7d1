"""Greedy versus combinatorial component search on any Game.

For a budget k, the usual ranking keeps the k components with the largest
|NIE|. Interactions break that, in a way that depends on the direction. Under
noising (as the IOI search runs): two redundant components (a backup, either
suffices) both have NIE ≈ 0 although removing both matters, and two that are
both needed (an AND) both rank high although removing the second adds nothing.
Under denoising the roles swap: an AND pair has NIE ≈ 0 each, a redundant pair
ranks high twice. `greedy_vs_best` compares the top-k by |NIE| with the k-set whose joint
effect f(1_S) − f(0) (mean over prompts) is largest in absolute value, found by
exhaustive search over a candidate pool (every set of ≤ k_max members, each
evaluated once) or, for pools too large for that, by beam search.
"""

from __future__ import annotations

import dataclasses
import itertools
from math import comb
from typing import Optional, Sequence

import numpy as np

from intjax.errors import InputError
from intjax.estimands.effects import nie as nie_of
from intjax.estimands.game import Game
from intjax.estimands.mobius import Subset, subset_masks

EXHAUSTIVE_LIMIT = 24  # pools up to this size are searched exhaustively


class NamedSets:
    """The top-k by |NIE| and the best k-set of a search row, by component name (`names`: every
    component's name in the game's order; indices as text when it has none)."""

    names: tuple[str, ...]
    top_by_nie: Subset
    best: Subset

    def name(self, members: Subset) -> tuple[str, ...]:
        """The names of the components at indices `members`."""
        return tuple(self.names[i] if self.names else str(i) for i in members)

    @property
    def top_names(self) -> tuple[str, ...]:
        """The top-k by |NIE|, by name."""
        return self.name(self.top_by_nie)

    @property
    def best_names(self) -> tuple[str, ...]:
        """The best k-set found, by name."""
        return self.name(self.best)

    @property
    def missed(self) -> Subset:
        """Members of the best set that the top-k by |NIE| leaves out."""
        return tuple(i for i in self.best if i not in self.top_by_nie)

    @property
    def missed_names(self) -> tuple[str, ...]:
        """The same, by name."""
        return self.name(self.missed)


@dataclasses.dataclass(frozen=True)
class SearchRow(NamedSets):
    """One budget k: the top-k by |NIE|, the best k-set found, and their joint effects."""

    k: int
    top_by_nie: Subset
    top_effect: float  # mean over prompts of f(1_top) − f(0)
    best: Subset
    best_effect: float
    method: str  # "exhaustive" or "beam(width)"
    n_evaluated: int  # sets evaluated to find `best` (all budgets share them)
    names: tuple[str, ...] = ()  # every component's name, in the game's order (its index if it has none)

    @property
    def shortfall(self) -> float:
        """How much of the best joint effect the top-k misses: 1 − top/best (0 = greedy is optimal)."""
        return 1.0 - self.top_effect / self.best_effect if self.best_effect else 0.0


def joint_effects(game: Game, sets: Sequence[Subset]) -> np.ndarray:
    """Mean over prompts of f(1_S) − f(0) for each set S, `[len(sets)]` float64."""
    masks = subset_masks([()] + list(sets), game.n_components)
    vals = game.values(masks)
    return (vals[1:] - vals[:1]).mean(axis=1)


def exhaustive_best(game: Game, pool: Sequence[int], k_max: int) -> tuple[dict, int]:
    """The best k-set for every k ≤ k_max among all sets drawn from `pool`.

    Returns ({k: (set, joint effect)}, number of sets evaluated). Sets are
    ranked by |mean joint effect|.
    """
    pool = sorted(set(int(i) for i in pool))
    if len(pool) > EXHAUSTIVE_LIMIT:
        raise InputError(f"an exhaustive search over {len(pool)} candidates is too large; "
                         f"use at most {EXHAUSTIVE_LIMIT} or beam_search")
    sets = [s for k in range(1, min(k_max, len(pool)) + 1) for s in itertools.combinations(pool, k)]
    effects = joint_effects(game, sets)
    best: dict[int, tuple[Subset, float]] = {}
    for s, e in zip(sets, effects):
        if len(s) not in best or abs(e) > abs(best[len(s)][1]):
            best[len(s)] = (s, float(e))
    return best, len(sets)


def beam_search(game: Game, pool: Sequence[int], k_max: int, width: int = 16) -> tuple[dict, int]:
    """Beam search for the best k-set, k ≤ k_max: keep the `width` sets with the largest
    |joint effect| at each size and extend each by every other pool member.

    Returns ({k: (set, joint effect)}, number of sets evaluated).
    """
    if width < 1:
        raise InputError(f"beam width must be at least 1, got {width}")
    pool = sorted(set(int(i) for i in pool))
    beam: list[Subset] = [()]
    best: dict[int, tuple[Subset, float]] = {}
    n_evaluated = 0
    for k in range(1, min(k_max, len(pool)) + 1):
        candidates = sorted({tuple(sorted(s + (i,))) for s in beam for i in pool if i not in s})
        effects = joint_effects(game, candidates)
        n_evaluated += len(candidates)
        order = np.argsort(-np.abs(effects), kind="stable")[:width]
        beam = [candidates[i] for i in order]
        best[k] = (beam[0], float(effects[order[0]]))
    return best, n_evaluated


def greedy_vs_best(
    game: Game,
    k_max: int = 6,
    pool: Optional[Sequence[int]] = None,
    *,
    nie: Optional[np.ndarray] = None,
    exhaustive_limit: int = EXHAUSTIVE_LIMIT,
    beam_width: int = 16,
    names: Optional[Sequence[str]] = None,
) -> list[SearchRow]:
    """For k = 1..k_max: the top-k of `pool` by |mean NIE| against the best k-set by joint effect.

    `pool` defaults to every component; `nie` (`[P, n]`, as `estimands.nie`
    returns) is computed when not given. Each row names its sets (`top_names`, `best_names`)
    by `names`, by default the game's own (a PatchProblem's component names). Pools of at most `exhaustive_limit`
    members are searched exhaustively (Σ_{j≤k_max} C(pool, j) sets), larger ones
    by beam search of width `beam_width`.
    """
    n = game.n_components
    pool = list(range(n)) if pool is None else sorted(set(int(i) for i in pool))
    if not pool or min(pool) < 0 or max(pool) >= n:
        raise InputError(f"the candidate pool must name components in 0..{n - 1}, got {pool}")
    if k_max < 1:
        raise InputError(f"k_max must be at least 1, got {k_max}")
    k_max = min(k_max, len(pool))
    nie = nie_of(game) if nie is None else np.asarray(nie)
    strength = np.abs(nie.mean(axis=0))[pool]
    ranked = [pool[i] for i in np.argsort(-strength, kind="stable")]
    if len(pool) <= exhaustive_limit:
        best, n_eval = exhaustive_best(game, pool, k_max)
        method = "exhaustive"
    else:
        best, n_eval = beam_search(game, pool, k_max, beam_width)
        method = f"beam({beam_width})"
    names = tuple(getattr(game, "names", ()) if names is None else names)
    if names and len(names) != n:
        raise InputError(f"names must give one name per component ({n}), got {len(names)}")
    tops = [tuple(sorted(ranked[:k])) for k in range(1, k_max + 1)]
    top_effects = joint_effects(game, tops)
    rows = []
    for k, top, top_effect in zip(range(1, k_max + 1), tops, top_effects):
        best_set, best_effect = best[k]
        if abs(top_effect) > abs(best_effect):  # beam search can miss what the ranking finds
            best_set, best_effect = top, float(top_effect)
        rows.append(SearchRow(k, top, float(top_effect), best_set, best_effect, method, n_eval, names))
    return rows


def n_exhaustive_sets(pool_size: int, k_max: int) -> int:
    """Σ_{1≤j≤k_max} C(pool, j): the sets an exhaustive search evaluates."""
    return sum(comb(pool_size, j) for j in range(1, min(k_max, pool_size) + 1))
