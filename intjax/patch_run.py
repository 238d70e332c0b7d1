"""`intjax patch` as a library call: NIE arrays for each direction, with timings."""

from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from intjax.estimands.effects import nie
from intjax.model.gpt2 import GPT2
from intjax.patching.components import Component
from intjax.patching.problem import build_problem
from intjax.patching.prompts import PromptSet


@dataclasses.dataclass(frozen=True)
class PatchOptions:
    """What `intjax patch` computes and how."""

    directions: tuple[str, ...] = ("noising", "denoising")
    semantics: str = "recompute"
    source: str = "counterfactual"
    metric: str = "logit_diff"
    memory_gb: float = 1.0
    quiet: bool = False


def run_patch(
    model: GPT2, prompts: PromptSet, components: Sequence[Component], options: PatchOptions
) -> tuple[dict[str, np.ndarray], dict[str, list[str]], dict[str, float]]:
    """Compute metric_clean, metric_corrupted and nie_<direction> as `[n_prompts, n_items]` arrays.

    Returns (arrays, item names per array, timings in seconds).
    """
    names = [c.name for c in components]
    arrays: dict[str, np.ndarray] = {}
    items: dict[str, list[str]] = {}
    timings: dict[str, float] = {}
    for direction in options.directions:
        t0 = time.perf_counter()
        problem = build_problem(model, prompts, components, direction=direction, source=options.source,
                                semantics=options.semantics, metric=options.metric)
        timings[f"setup_{direction}_s"] = time.perf_counter() - t0
        if "metric_clean" not in arrays:
            arrays["metric_clean"] = np.asarray(problem.metric_clean, np.float64)[:, None]
            arrays["metric_corrupted"] = np.asarray(problem.metric_corrupted, np.float64)[:, None]
            items["metric_clean"], items["metric_corrupted"] = ["clean"], ["corrupted"]
        t0 = time.perf_counter()
        with tqdm(total=len(components) * len(prompts), unit="run", desc=f"NIE {direction}",
                  disable=options.quiet) as bar:
            arrays[f"nie_{direction}"] = nie(
                problem, memory_bytes=int(options.memory_gb * 2**30),
                on_chunk=lambda k: bar.update(k * len(prompts)),
            )
        items[f"nie_{direction}"] = names
        timings[f"nie_{direction}_s"] = time.perf_counter() - t0
    return arrays, items, timings
