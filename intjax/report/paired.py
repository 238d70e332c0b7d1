"""Which of several per-prompt quantities is smallest in magnitude, said only where paired CIs support it."""

from __future__ import annotations

import numpy as np


def abs_mean_gaps(values: np.ndarray, best: int, n_boot: int = 2000, seed: int = 0,
                  level: float = 0.95) -> np.ndarray:
    """Per column k of `values` `[P, K]` (the same prompts in every column), the percentile CI `[K, 2]`
    of |mean_k| − |mean_best| over bootstrap resamples of the prompts (one draw shared by all columns)."""
    values = np.asarray(values, np.float64)
    idx = np.random.default_rng(seed).integers(0, len(values), (n_boot, len(values)))
    means = np.abs(values[idx].mean(1))  # [n_boot, K]
    gaps = means - means[:, best:best + 1]
    return np.quantile(gaps, [(1 - level) / 2, (1 + level) / 2], axis=0).T


def smallest_abs_mean(values: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[int, bool, np.ndarray]:
    """(column with the smallest |mean|, whether every other column's paired 95% CI of the gap lies above 0,
    the gap CIs `[K, 2]`)."""
    values = np.asarray(values, np.float64)
    best = int(np.argmin(np.abs(values.mean(0))))
    cis = abs_mean_gaps(values, best, n_boot, seed)
    others = [k for k in range(values.shape[1]) if k != best]
    return best, bool(all(cis[k, 0] > 0 for k in others)), cis
