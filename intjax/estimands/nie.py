"""Natural indirect effects: NIE_i = f(e_i) − f(0), one patched run per component."""

from __future__ import annotations

import numpy as np

from intjax.patching.evaluate import evaluate
from intjax.patching.problem import PatchProblem


def single_masks(n: int) -> np.ndarray:
    """The masks e_1..e_n, [n, n]."""
    return np.eye(n)


def nie(problem: PatchProblem, **evaluate_kwargs) -> np.ndarray:
    """NIE of every component for every prompt, `[P, n]` (float64).

    The direction (noising or denoising) is the problem's: effects are always
    f(patched) − f(base).
    """
    values = evaluate(problem, single_masks(problem.n_components), **evaluate_kwargs)  # [n, P]
    return (values - np.asarray(problem.metric_base, np.float64)[None]).T
