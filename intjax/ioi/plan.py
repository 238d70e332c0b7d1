"""The plan of an IOI analysis: how many patched runs each stage takes, how long that is on
this device, and which sizes shrink (never below their floors) to fit a time budget.

Cost is counted in forward equivalents (FE): one prompt through every layer,
without the unembedding. A patched run starting at layer ℓ costs (L − ℓ)/L FE.
`intjax.progress.seconds_per_forward` times the model's own forward on this
device; the constants here and in `intjax.costs` were measured against it on a
2-core CPU at GPT-2 small's shape (BENCHMARKS.md). Estimates are
estimates: the stage lines rescale the rest of the plan by what the finished
stages took.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

from intjax.costs import DISTANCE_FE, HVP_FORWARDS, layers_after_first, theorem_table_fe
from intjax.options import FLOORS

# Sizes the budget may shrink, in the order it shrinks them, each step to a value no smaller than its
# floor. Floors keep every statistic readable: 8 resamples is where the faithfulness variance shares
# stop being declared unreadable (studies.faithfulness_variance.MIN_RESAMPLES); 16 prompts per
# faithfulness resample; 200 sampled pairs for the pairwise/higher split (its CI includes the sampling);
# a search pool of 8 (it still admits heads by context effect); the identities of the theorem table
# hold prompt by prompt, so 2 prompts and 2 heads (every identity but the order-3 ones) check them.
SHRINK_STEPS: tuple[tuple[str, int], ...] = (
    ("split_pairs", 500), ("n_resamples", 12), ("faithfulness_prompts", 16), ("split_pairs", 250),
    ("search_pool", 10), ("theorem_prompts", 4), ("n_resamples", 10), ("pair_pool", 12), ("triple_pool", 6),
    ("search_k", 5), ("split_pairs", 200), ("theorem_prompts", 2), ("n_resamples", 8), ("search_pool", 8),
    ("distance_prompts", 8), ("theorem_heads", 3), ("theorem_heads", 2),
)

# How far the sweeps of a stage run below (< 1: prefix sharing) or above (> 1: compiling many
# shapes) their counted FE, measured as intjax.costs says.
EFFICIENCY = {"split": 0.65, "orders": 1.5, "faithfulness": 0.32, "search": 0.65, "completeness": 0.5}
WITNESS_OVERHEAD_FE = 13.0  # per witness beyond its patched runs (its pinned view, the vertex cache)


@dataclasses.dataclass(frozen=True)
class Sizes:
    """The sizes of an IOI analysis that set its cost (the budget may shrink them)."""

    n_prompts: int
    split_pairs: int
    pair_pool: int
    triple_pool: int
    theorem_heads: int
    theorem_order: int
    theorem_prompts: int
    distance_heads: int
    distance_prompts: int
    n_resamples: int
    faithfulness_prompts: int
    n_ablations: int
    search_pool: int
    search_k: int


def completeness_vertices(n_units: int, n_outside: int, exhaustive: bool = True) -> int:
    """Vertices of completeness and minimality (intjax.ioi.completeness): h(K) and h(K ∪ O) for every K ⊆ C
    (or greedy's n² steps), then three outside splits of m + 2 vertices each beside the m outside heads alone.
    Minimality reads the same lattice."""
    search = 2 ** (n_units + 1) if exhaustive else 2 * n_units * n_units + 4 * n_units ** 2
    return search + 3 * (n_outside + 2) + n_outside


def stage_forward_equivalents(sizes: Sizes, n_layers: int, n_heads: int, n_classes: int = 7,
                              n_circuit_units: int = 0) -> list[float]:
    """FE of each stage of `ioi_analysis.STAGE_NAMES` (the last, figures and report, costs none);
    `n_circuit_units` > 0 adds completeness and minimality over that many circuit units."""
    s, L = sizes, n_layers
    N = n_layers * n_heads
    one, two = layers_after_first(L, 1), layers_after_first(L, 2)  # share of layers after one head, two heads
    nie = 2 * 2 * (N + 1) * s.n_prompts * one + 2 * 3 * s.n_prompts  # 2 directions x 2 semantics; linear: jvp
    split = EFFICIENCY["split"] * 2 * min(s.split_pairs, math.comb(N, 2)) * s.n_prompts * two
    orders = (EFFICIENCY["orders"] * 2 * (math.comb(min(s.pair_pool, N), 2) + math.comb(min(s.triple_pool, N), 3))
              * s.n_prompts * two + 2 * HVP_FORWARDS * min(s.pair_pool, N) * s.n_prompts)  # and the pairs' screen
    theorems = 0.0
    if s.theorem_heads:  # n_check = 2 sets per order, the bound for pairs, the duality over heads and MLPs
        theorems = theorem_table_fe(s.theorem_prompts, s.theorem_heads, s.theorem_order, 2, 2, N + L)
    kinds = 10  # abc, s2_flip, random_token, mean, zero and five scaled ABC sources
    vertices = sum(math.comb(s.distance_heads, k) for k in range(4))
    distance = DISTANCE_FE * s.distance_prompts * vertices * kinds if s.distance_heads > 1 else 0.0
    remedies = 3 * 2 * (N + n_classes + L + 3) * s.n_prompts * one  # 3 estimators; NIE and context effect
    witnesses = (N + L + 2) * (s.n_prompts + WITNESS_OVERHEAD_FE)
    pool = min(s.search_pool, N)
    search = (EFFICIENCY["search"] * sum(math.comb(pool, k) for k in range(s.search_k + 1)) * s.n_prompts * two
              + 2 * N * s.n_prompts * one)
    faithfulness = (EFFICIENCY["faithfulness"] * s.n_resamples * s.n_ablations * ((1 << n_classes) + 1)
                    * s.faithfulness_prompts)
    complete = 0.0
    if n_circuit_units:
        outside = max(N - n_circuit_units, 1)
        complete = (EFFICIENCY["completeness"] * s.n_prompts
                    * completeness_vertices(n_circuit_units, outside, n_circuit_units <= 16))
    return [nie, split, orders, theorems, distance, remedies + witnesses + search + faithfulness + complete, 0.0]


# seconds each stage spends tracing, lowering and compiling with an empty compilation cache, measured
# on the idle 2-core CPU (intjax demo, 2026-12-04 00:34 UTC: the stage lines say it); the ETA rescales
# them by what the finished stages measured
STAGE_COMPILE_S = (7.0, 1.0, 7.0, 22.0, 7.0, 12.0, 0.0)
# what compiling costs when the persistent compilation cache holds the run's programs (a rerun, or a
# resumed run): tracing and lowering each program again and loading it. intjax demo --smoke, 2-core CPU
# under load 6: 14 s warm against 185 s with the cache off
WARM_COMPILE_SHARE = 0.1
# host work of a stage that its FE count misses (Python loops over faces, levels and resamples, bootstraps,
# building problems), fitted as the intercept of measured against estimated running time on ioi-small, idle
# (intjax demo and a resumed demo --smoke, 2026-12-04): theorem table 53 s against 16.6 and ~8 against 1;
# studies 23.6 against 30 and 5.9 against 1.4. Negligible at GPT-2 small's shape, where stages take minutes
STAGE_HOST_S = (0.0, 0.0, 0.0, 5.0, 0.0, 5.0, 0.0)
# the last stage (figures and report) is host work, not forward passes: 3.3-4.2 s on the 2-core CPU
# (intjax demo and demo --smoke, 2026-12-04), whatever the model
RENDER_S = 3.5


def compile_share(warm_cache: bool) -> float:
    """The share of a cold run's compiling a run pays: `WARM_COMPILE_SHARE` when the compilation cache already
    holds the model's programs (`intjax.progress.timed_forward` says so), else all of it."""
    return WARM_COMPILE_SHARE if warm_cache else 1.0


def stage_compile_seconds(warm_cache: bool) -> tuple[float, ...]:
    """`STAGE_COMPILE_S` at `compile_share(warm_cache)`."""
    return tuple(c * compile_share(warm_cache) for c in STAGE_COMPILE_S)


def stage_seconds(sizes: Sizes, n_layers: int, n_heads: int, per_forward: float, n_classes: int = 7,
                  n_circuit_units: int = 0, compiling: Sequence[float] = STAGE_COMPILE_S) -> list[float]:
    """Estimated seconds of each stage: its FE at `per_forward` plus its host work (`STAGE_HOST_S`) and its
    `compiling` seconds, for a stage with work to do; the last, figures and report, `RENDER_S`."""
    fes = stage_forward_equivalents(sizes, n_layers, n_heads, n_classes, n_circuit_units)
    return [fe * per_forward + (host + c if fe else 0.0)
            for fe, host, c in zip(fes[:-1], STAGE_HOST_S, compiling)] + [RENDER_S]


def fit_budget(sizes: Sizes, budget_s: float, estimate, fixed: Sequence[str] = ()) -> tuple[Sizes, list[str]]:
    """Shrink `sizes` along SHRINK_STEPS (skipping the `fixed` ones) until sum(estimate(sizes)) ≤ budget_s.

    Returns the sizes and one line per size changed ("n_resamples 20 → 8"). A budget
    the floors cannot meet leaves every shrinkable size at its floor.
    """
    start = sizes
    for field, value in SHRINK_STEPS:
        if sum(estimate(sizes)) <= budget_s:
            break
        if field in fixed or getattr(sizes, field) <= value:
            continue
        sizes = dataclasses.replace(sizes, **{field: max(value, FLOORS[field])})
    changed = [f"{f.name} {getattr(start, f.name)} → {getattr(sizes, f.name)}" for f in dataclasses.fields(Sizes)
               if getattr(start, f.name) != getattr(sizes, f.name)]
    return sizes, changed
