"""Uncertainty of means over prompts (or resamples): standard errors and bootstrap CIs."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def standard_error(x: np.ndarray) -> np.ndarray | np.floating:
    """Standard error of the mean along axis 0 (a number for one-dimensional x; nan with fewer than two rows)."""
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return np.full(x.shape[1:], np.nan)
    return x.std(0, ddof=1) / np.sqrt(len(x))


class MeanCI(NamedTuple):
    """A mean over prompts with the low and high ends of its confidence interval."""

    mean: float
    low: float
    high: float


def mean_ci(x: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> MeanCI:
    """(mean, low, high) of a per-prompt array `[P]`: a bootstrap percentile CI over prompts."""
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return MeanCI(float(x.mean()), float("nan"), float("nan"))
    idx = np.random.default_rng(seed).integers(0, len(x), (n_boot, len(x)))
    lo, hi = np.quantile(x[idx].mean(1), [(1 - level) / 2, (1 + level) / 2])
    return MeanCI(float(x.mean()), float(lo), float(hi))
