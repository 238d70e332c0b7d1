"""`intjax patch` as a library call: NIE, PIE, interactions and linear estimates of components."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from typing import Optional, Sequence

import numpy as np

from intjax.costs import HVP_FORWARDS, layers_after_first
from intjax.errors import InputError
from intjax.estimands.derivatives import linear
from intjax.estimands.hessian import HVP_BLOCK, BlockStore, base_hessian, pair_values, pairs_of
from intjax.estimands.screen import SCREEN_CHECK_ITEMS, screen_check, strongest
from intjax.estimands.mobius import interactions, set_name, subsets_up_to
from intjax.model.protocol import PatchableModel
from intjax.patching.components import Component
from intjax.patching.evaluate import compile_view
from intjax.patching.problem import DIRECTIONS, SEMANTICS, SOURCES, PatchProblem, build_problem
from intjax.patching.metrics import METRICS
from intjax.patching.prompts import PromptSet
from intjax.progress import COMPILE_S_PER_STAGE, Stages, mean_length, seconds_per_forward
from intjax.results import Results
from intjax.sweeps.context import SweepContext
from intjax.sweeps.fingerprint import code_digest, sweep_fingerprint


ESTIMATES = ("exact", "hessian")


@dataclasses.dataclass(frozen=True)
class PatchOptions:
    """What `intjax patch` computes and how."""

    directions: tuple[str, ...] = ("noising", "denoising")
    semantics: str = "recompute"
    source: str = "counterfactual"
    metric: str = "logit_diff"
    order: int = 1  # >= 2 adds exact interactions up to this order
    linear: bool = False  # add the linear (attribution) estimates
    estimate: str = "exact"  # order 2 only: "hessian" screens every pair by H_ij at α = 0 instead
    verify_top: int = 0  # with estimate="hessian": exact INT of this many pairs the screen ranks highest

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
        if self.estimate not in ESTIMATES:
            raise InputError(f"estimate={self.estimate!r}: give one of {list(ESTIMATES)}")
        if self.estimate == "hessian" and self.order != 2:
            raise InputError(f"estimate='hessian' screens pairs: give order=2, not {self.order!r}")
        if not isinstance(self.verify_top, int) or self.verify_top < 0:
            raise InputError(f"verify_top={self.verify_top!r}: give a number of pairs >= 0")
        if self.verify_top and self.estimate != "hessian":
            raise InputError("verify_top checks the Hessian screen: give estimate='hessian' with it")


def patch_stages(model: PatchableModel, prompts: PromptSet, n_components: int, options: PatchOptions,
                 quiet: bool = False) -> Stages:
    """The plan of `run_patch` (one stage per direction: its subsets, patched runs and estimated time),
    printed now unless `quiet`."""
    screen = options.estimate == "hessian"
    masks = (min(n_components + 1 + options.verify_top, math.comb(n_components + 1, 2) + 1) if options.verify_top
             else 0) if screen else sum(math.comb(n_components, k) for k in range(options.order + 1))
    runs = masks * len(prompts)
    share = layers_after_first(model.config.n_layers, min(options.order, 2))  # most subsets have 2 members or more
    per_forward = 0.0 if quiet else seconds_per_forward(model, mean_length(prompts.lengths))
    linear_fe = 3 * len(prompts) if options.linear else 0
    hessian_fe = HVP_FORWARDS * n_components * len(prompts) if screen else 0
    estimate = COMPILE_S_PER_STAGE + per_forward * (runs * share + linear_fe + hessian_fe)
    what = (f"hessian screen ({{}}): {n_components} Hessian-vector products x {len(prompts)} prompts"
            + (f", exact INT of the top {options.verify_top} pairs" if options.verify_top else "")) if screen else (
        f"patching ({{}}): {masks:,} subsets x {len(prompts)} prompts = {runs:,} patched runs")
    names = [what.format(d) + (", linear estimates" if options.linear else "") for d in options.directions]
    return Stages(names, quiet=quiet, title=f"intjax patch ({n_components} components, order {options.order})",
                  estimates=[estimate] * len(names))


def run_patch(
    model: PatchableModel, prompts: PromptSet, components: Sequence[Component], options: PatchOptions,
    sweeps: SweepContext = SweepContext(), witnesses: Sequence[Component] = (), stages: Optional[Stages] = None,
) -> tuple[Results, dict[str, float]]:
    """Estimates `[n_prompts, n_items]`: metric_clean, metric_corrupted, and per direction
    nie_ (pie_ under frozen semantics), int2_ … intK_ (order K) and linear_ (if asked), each
    with its direction, semantics and source among its options. With `estimate="hessian"`:
    int2_hessian_ (every pair's H_ij at α = 0) instead of nie_ and int2_, and with `verify_top=K`
    int2_ of the K pairs it ranks highest and screen_check_ (the screen's error on them).

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
            if options.estimate == "hessian":
                timings.update(_screen(problem, sweeps, options.verify_top, results, how))
            else:
                timings.update(_exact(problem, sweeps, options.order, results, how))
            if options.linear:
                t0 = time.perf_counter()
                results.add(f"linear_{direction}", _saved_linear(problem, sweeps), names, **how)
                timings[f"linear_{direction}_s"] = time.perf_counter() - t0
    return results, timings


def _exact(problem: PatchProblem, sweeps: SweepContext, order: int, results: Results,
           how: dict[str, str]) -> dict[str, float]:
    """NIE (PIE under frozen semantics) and exact interactions up to `order` from each vertex once
    (`nie_<direction>`, `int2_<direction>` …). Returns its timings in s."""
    direction, names, n = how["direction"], problem.names, problem.n_components
    t0 = time.perf_counter()
    game = sweeps.game(problem, direction, desc=f"patching ({direction})", options=dict(order=order))
    if order >= 2:
        sets, ints, values = interactions(game, order)
    else:
        sets, ints = [], np.zeros((problem.n_prompts, 0))
        masks = np.concatenate([np.zeros((1, n)), np.eye(n)])
        vals = game.values(masks)
        values = dict(zip(subsets_up_to(n, 1), vals))
    single = f"{'pie' if how['semantics'] == 'frozen' else 'nie'}_{direction}"
    results.add(single, np.stack([values[(i,)] - values[()] for i in range(n)], axis=1), names, **how)
    for k in range(2, order + 1):
        cols = [i for i, T in enumerate(sets) if len(T) == k]
        results.add(f"int{k}_{direction}", ints[:, cols], [set_name(sets[i], names) for i in cols],
                    order=k, **how)
    return {f"patching_{direction}_s": time.perf_counter() - t0}


def _screen(problem: PatchProblem, sweeps: SweepContext, verify_top: int, results: Results,
            how: dict[str, str]) -> dict[str, float]:
    """The Hessian screen of every pair (`int2_hessian_<direction>`) and, with `verify_top`, the exact INT of
    the pairs it ranks highest (`int2_<direction>`, through the run's checkpoints and vertex cache) and the
    screen's error on them (`screen_check_<direction>`, one row). Returns its timings in s."""
    direction, names = how["direction"], problem.names
    t0 = time.perf_counter()
    screen = pair_values(base_hessian(problem, compiled=compile_view(problem), saved=_block_store(problem, sweeps)))
    pairs = pairs_of(problem.n_components)
    results.add(f"int2_hessian_{direction}", screen, [set_name(T, names) for T in pairs], order=2,
                estimate="hessian", **how)
    timings = {f"hessian_{direction}_s": time.perf_counter() - t0}
    if verify_top:
        t0 = time.perf_counter()
        top = strongest(screen, verify_top)
        game = sweeps.game(problem, direction, desc=f"verifying ({direction})", options=dict(order=2))
        sets, exact, _ = interactions(game, sets=[pairs[k] for k in top])
        results.add(f"int2_{direction}", exact, [set_name(T, names) for T in sets], order=2,
                    pairs=f"the {len(top)} strongest of int2_hessian_{direction}", **how)
        check = screen_check(screen[:, top], exact)
        results.add(f"screen_check_{direction}", np.array([[check[k] for k in SCREEN_CHECK_ITEMS]]),
                    SCREEN_CHECK_ITEMS, screen=f"int2_hessian_{direction}", exact=f"int2_{direction}", **how)
        timings[f"verify_{direction}_s"] = time.perf_counter() - t0
    return timings


def _saved_linear(problem: PatchProblem, sweeps: SweepContext) -> np.ndarray:
    """`linear(problem)`, kept in the direction's checkpoint folder with the problem's fingerprint: a resumed
    run reads it back."""
    inputs = sweep_fingerprint(problem, np.zeros((0, problem.n_components)), estimate="linear",
                               code=code_digest("intjax.estimands.derivatives"))
    return sweeps.child(problem.direction).saved("linear", inputs, lambda: np.asarray(linear(problem)))


def _block_store(problem: PatchProblem, sweeps: SweepContext) -> Optional[BlockStore]:
    """Each block of the screen's Hessian-vector products kept in the direction's checkpoint folder
    (`hessian_block0000` …, with the problem's fingerprint and the block's rows): a rerun after a kill reads
    the finished blocks back. None without checkpoints."""
    folder = sweeps.child(problem.direction)
    if folder.checkpoints is None:
        return None
    inputs = sweep_fingerprint(problem, np.zeros((0, problem.n_components)), estimate="hessian", block=HVP_BLOCK,
                               code=code_digest("intjax.estimands.hessian", "intjax.estimands.layerwise_hvp"))

    def saved(index: int, rows: np.ndarray, compute):
        return folder.saved(f"hessian_block{index:04d}", dict(inputs, rows=rows.tolist()), compute)

    return saved


def screen_lines(results: Results) -> str:
    """One line per direction on the screen's error over the pairs verified exactly (`screen_check_*`)."""
    lines = []
    for name, estimate in results.items():
        if name.startswith("screen_check_"):
            c = dict(zip(estimate.items, estimate.values[0]))
            lines.append(f"hessian screen ({estimate.options['direction']}), its {int(c['pairs'])} strongest pairs "
                         f"against exact INT (means over prompts): max |error| {c['max_abs_error']:.4g}, mean "
                         f"{c['mean_abs_error']:.4g} (largest |INT| {c['exact_scale']:.4g}); Spearman of |values| "
                         f"{c['spearman_abs']:.3f} (a point value over these pairs); sign wrong on "
                         f"{int(c['signs_wrong'])} of the {int(c['signs_compared'])} pairs where both 95% intervals "
                         f"(simultaneous over the {int(c['pairs'])}) exclude 0")
    return "\n".join(lines)
