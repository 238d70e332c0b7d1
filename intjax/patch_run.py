"""`intjax patch` and `intjax theorems` as library calls."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from pathlib import Path
from typing import Optional, Sequence

import jax.numpy as jnp
import numpy as np

from intjax.costs import layers_after_first
from intjax.errors import InputError
from intjax.estimands.derivatives import linear
from intjax.estimands.mobius import interactions, set_name, subsets_up_to
from intjax.estimands.theorems import duality_check, theorem_table
from intjax.model.protocol import PatchableModel
from intjax.patching.components import Component
from intjax.patching.problem import SEMANTICS, build_problem
from intjax.patching.structure import predicted_slopes, prompt_roles, reads_matrix
from intjax.patching.prompts import PromptSet
from intjax.progress import COMPILE_S_PER_STAGE, Stages, mean_length, seconds_per_forward
from intjax.results import Results
from intjax.sweeps.runner import CheckpointedGame


@dataclasses.dataclass(frozen=True)
class PatchOptions:
    """What `intjax patch` computes and how."""

    directions: tuple[str, ...] = ("noising", "denoising")
    semantics: str = "recompute"
    source: str = "counterfactual"
    metric: str = "logit_diff"
    order: int = 1  # >= 2 adds exact interactions up to this order
    linear: bool = False  # add the linear (attribution) estimates
    memory_gb: float = 1.0
    chunk: int | None = None  # masks per chunk (default: from memory_gb)
    quiet: bool = False
    restart: bool = False  # discard saved sweeps in the checkpoint folder


def patch_stages(model: PatchableModel, prompts: PromptSet, n_components: int, options: PatchOptions) -> Stages:
    """The plan of `run_patch` (one stage per direction: its subsets, patched runs and estimated time),
    printed now unless `options.quiet`."""
    masks = sum(math.comb(n_components, k) for k in range(options.order + 1))
    runs = masks * len(prompts)
    share = layers_after_first(model.config.n_layers, min(options.order, 2))  # most subsets have 2 members or more
    per_forward = 0.0 if options.quiet else seconds_per_forward(model, mean_length(prompts.lengths))
    linear_fe = 3 * len(prompts) if options.linear else 0
    estimate = COMPILE_S_PER_STAGE + per_forward * (runs * share + linear_fe)
    names = [f"patching ({d}): {masks:,} subsets x {len(prompts)} prompts = {runs:,} patched runs"
             + (", linear estimates" if options.linear else "") for d in options.directions]
    return Stages(names, quiet=options.quiet, title=f"intjax patch ({n_components} components, order {options.order})",
                  estimates=[estimate] * len(names))


def run_patch(
    model: PatchableModel, prompts: PromptSet, components: Sequence[Component], options: PatchOptions,
    checkpoints: str | Path | None = None, witnesses: Sequence[Component] = (), cache=None,
    stages: Optional[Stages] = None,
) -> tuple[Results, dict[str, float]]:
    """Estimates `[n_prompts, n_items]`: metric_clean, metric_corrupted, and per direction
    nie_ (pie_ under frozen semantics), int2_ … intK_ (order K) and linear_ (if asked), each
    with its direction, semantics and source among its options.

    `witnesses` are held at their base-run values in every run (witness pinning). `stages`
    (`patch_stages`) prints a line as each direction starts and ends.

    Each needed subset is patched once: NIE and every interaction order share
    the same vertex values. With `checkpoints`, the sweeps are saved there chunk
    by chunk and a rerun resumes them. `cache` (a `VertexCache`) shares vertex
    values with other sweeps of a run. Returns (the estimates, timings in s).
    """
    if options.order < 1:
        raise InputError(f"--order must be at least 1, got {options.order}")
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
            sweep = dict(memory_bytes=int(options.memory_gb * 2**30), chunk=options.chunk, quiet=options.quiet,
                         restart=options.restart, desc=f"patching ({direction})",
                         options=dict(order=options.order), cache=cache)
            game = CheckpointedGame(problem, Path(checkpoints) / direction if checkpoints else None, **sweep)
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


def run_theorems(
    model: PatchableModel, prompts: PromptSet, components: Sequence[Component], *, order: int = 2,
    direction: str = "noising", source: str = "counterfactual", metric: str = "logit_diff",
    n_check: int = 6, cut: Sequence[Component] | None = None, step=None, **table_kwargs,
) -> dict:
    """The theorem table (DESIGN.md §2) for these components; use a float64 model for it.

    `cut`: the components the noising/denoising duality is checked over, under
    both semantics (default: `components`). The duality holds only under frozen
    semantics for a complete cut, e.g. every head and MLP (`heads,mlps`) when
    clean and corrupted prompts share their last token; it needs the
    counterfactual source (skipped otherwise). `step(name)` is called as each part
    starts (progress lines). `table_kwargs` go to `theorem_table`
    (e.g. `bound_max_points`).
    """
    problems = {s: build_problem(model, prompts, components, direction=direction, source=source,
                                 semantics=s, metric=metric) for s in SEMANTICS}
    names = [c.name for c in components]
    lengths = prompts.lengths
    per_prompt = prompt_roles(prompts)

    def structure(T: tuple[int, ...]) -> dict:
        return predicted_slopes(reads_matrix([components[i] for i in T], per_prompt, lengths))

    table = theorem_table(lambda s, t: problems[s].with_source_scale(t), order=order, n_check=n_check,
                          structure=structure, derivative_game=problems["recompute"].with_dtype(jnp.float32),
                          step=step, **table_kwargs)
    table["checked_sets"] = [set_name(tuple(T), names) for T in table["checked_sets"]]
    for row in table["slopes_by_set"]:
        row["set"] = [names[i] for i in row["set"]]
        if "chain" in row:
            row["chain"] = [names[i] for i in row["chain"]]
            row["cover"] = [[names[i] for i in block] for block in row["cover"]]
    cut = list(components if cut is None else cut)
    if source != "counterfactual":
        table["duality"] = dict(skipped=f"the duality compares the two directions of a counterfactual patch; "
                                        f"source {source!r} has no reverse game")
        return table
    reverse = "denoising" if direction == "noising" else "noising"
    table["duality"] = dict(cut=[c.name for c in cut], direction=direction)
    if step is not None:
        step(f"noising/denoising duality over {len(cut)} components")
    for semantics in SEMANTICS:
        game, back = (build_problem(model, prompts, cut, direction=d, source=source, semantics=semantics,
                                    metric=metric) for d in (direction, reverse))
        table["duality"][semantics] = duality_check(game, back)
    return table
