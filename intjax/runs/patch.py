"""`intjax patch` as a library call: NIE, PIE, interactions and linear estimates of components."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from typing import Optional, Sequence

import numpy as np

from intjax.costs import layers_after_first
from intjax.errors import InputError
from intjax.estimands.derivatives import linear
from intjax.estimands.mobius import interactions, set_name, subsets_up_to
from intjax.model.protocol import PatchableModel
from intjax.patching.components import Component
from intjax.patching.problem import DIRECTIONS, SEMANTICS, SOURCES, build_problem
from intjax.patching.metrics import METRICS
from intjax.patching.prompts import PromptSet
from intjax.progress import COMPILE_S_PER_STAGE, Stages, mean_length, seconds_per_forward
from intjax.results import Results
from intjax.sweeps.context import SweepContext


@dataclasses.dataclass(frozen=True)
class PatchOptions:
    """What `intjax patch` computes and how."""

    directions: tuple[str, ...] = ("noising", "denoising")
    semantics: str = "recompute"
    source: str = "counterfactual"
    metric: str = "logit_diff"
    order: int = 1  # >= 2 adds exact interactions up to this order
    linear: bool = False  # add the linear (attribution) estimates

    def __post_init__(self):
        bad = [d for d in self.directions if d not in DIRECTIONS]
        if bad or not self.directions:
            raise InputError(f"directions={self.directions!r}: give one or both of {list(DIRECTIONS)}")
        if self.semantics not in SEMANTICS:
            raise InputError(f"semantics={self.semantics!r}: give one of {list(SEMANTICS)}")
        if self.source not in SOURCES:
            raise InputError(f"source={self.source!r}: give one of {list(SOURCES)}")
        if self.metric not in METRICS:
            raise InputError(f"metric={self.metric!r}: give one of {list(METRICS)}")
        if not isinstance(self.order, int) or self.order < 1:
            raise InputError(f"order={self.order!r}: give 1 (NIE only) or more (exact interactions up to it)")


def patch_stages(model: PatchableModel, prompts: PromptSet, n_components: int, options: PatchOptions,
                 quiet: bool = False) -> Stages:
    """The plan of `run_patch` (one stage per direction: its subsets, patched runs and estimated time),
    printed now unless `quiet`."""
    masks = sum(math.comb(n_components, k) for k in range(options.order + 1))
    runs = masks * len(prompts)
    share = layers_after_first(model.config.n_layers, min(options.order, 2))  # most subsets have 2 members or more
    per_forward = 0.0 if quiet else seconds_per_forward(model, mean_length(prompts.lengths))
    linear_fe = 3 * len(prompts) if options.linear else 0
    estimate = COMPILE_S_PER_STAGE + per_forward * (runs * share + linear_fe)
    names = [f"patching ({d}): {masks:,} subsets x {len(prompts)} prompts = {runs:,} patched runs"
             + (", linear estimates" if options.linear else "") for d in options.directions]
    return Stages(names, quiet=quiet, title=f"intjax patch ({n_components} components, order {options.order})",
                  estimates=[estimate] * len(names))


def run_patch(
    model: PatchableModel, prompts: PromptSet, components: Sequence[Component], options: PatchOptions,
    sweeps: SweepContext = SweepContext(), witnesses: Sequence[Component] = (), stages: Optional[Stages] = None,
) -> tuple[Results, dict[str, float]]:
    """Estimates `[n_prompts, n_items]`: metric_clean, metric_corrupted, and per direction
    nie_ (pie_ under frozen semantics), int2_ … intK_ (order K) and linear_ (if asked), each
    with its direction, semantics and source among its options.

    `witnesses` are held at their base-run values in every run (witness pinning). `stages`
    (`patch_stages`) prints a line as each direction starts and ends.

    Each needed subset is patched once: NIE and every interaction order share
    the same vertex values. `sweeps` sets the memory budget, the checkpoint folder
    (each direction's sweeps are saved in its subfolder chunk by chunk and a rerun
    resumes them) and the run's vertex cache. Returns (the estimates, timings in s).
    """
    results = Results()
    timings: dict[str, float] = {}
    names = [c.name for c in components]
    n = len(components)
    for index, direction in enumerate(options.directions):
        with (stages.stage(stages.names[index]) if stages else contextlib.nullcontext()):
            t0 = time.perf_counter()
            problem = build_problem(model, prompts, components, direction=direction, source=options.source,
                                    semantics=options.semantics, metric=options.metric, pin=witnesses)
            timings[f"setup_{direction}_s"] = time.perf_counter() - t0
            if "metric_clean" not in results:
                results.add("metric_clean", np.asarray(problem.metric_clean)[:, None], ["clean"], metric=options.metric)
                results.add("metric_corrupted", np.asarray(problem.metric_corrupted)[:, None], ["corrupted"],
                            metric=options.metric)
            how = dict(direction=direction, semantics=options.semantics, source=options.source, metric=options.metric)
            t0 = time.perf_counter()
            game = sweeps.game(problem, direction, desc=f"patching ({direction})", options=dict(order=options.order))
            if options.order >= 2:
                sets, ints, values = interactions(game, options.order)
            else:
                sets, ints = [], np.zeros((len(prompts), 0))
                masks = np.concatenate([np.zeros((1, n)), np.eye(n)])
                vals = game.values(masks)
                values = dict(zip(subsets_up_to(n, 1), vals))
            single = f"{'pie' if options.semantics == 'frozen' else 'nie'}_{direction}"
            results.add(single, np.stack([values[(i,)] - values[()] for i in range(n)], axis=1), names, **how)
            for k in range(2, options.order + 1):
                cols = [i for i, T in enumerate(sets) if len(T) == k]
                results.add(f"int{k}_{direction}", ints[:, cols], [set_name(sets[i], names) for i in cols],
                            order=k, **how)
            timings[f"patching_{direction}_s"] = time.perf_counter() - t0
            if options.linear:
                t0 = time.perf_counter()
                results.add(f"linear_{direction}", linear(problem), names, **how)
                timings[f"linear_{direction}_s"] = time.perf_counter() - t0
    return results, timings
