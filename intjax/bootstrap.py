"""The one bootstrap of intjax: prompts (or clusters of them) drawn with replacement, and what every study
computes from the draws (standard errors, percentile CIs, paired differences, max-type bounds).

One convention for the draws: resample b takes `rng.integers(0, n, n)` in turn from
`np.random.default_rng(seed)` (or from a generator the caller already drew from), so every
statistic of a study that shares a seed sees the same resamples (paired). Index form
(`draws`) and count form (`counts`, how often each prompt is drawn) are the same
resamples; counts make means a matrix product.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np
from jaxtyping import Float, Int

from intjax.errors import InputError

Seed = int | np.random.Generator


def _rng(seed: Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def draws(n: int, n_boot: int, seed: Seed = 0) -> Int[np.ndarray, "B n"]:
    """Row indices of `n_boot` resamples of `n` prompts with replacement."""
    return _rng(seed).integers(0, n, (n_boot, n))


def counts(n: int, n_boot: int, seed: Seed = 0) -> Float[np.ndarray, "B n"]:
    """How often each of `n` prompts is drawn in each resample (the same resamples as `draws`)."""
    idx = draws(n, n_boot, seed)
    return np.bincount((idx + n * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * n).reshape(
        n_boot, n).astype(np.float64)


def blocks(n: int, n_boot: int, seed: Seed = 0, size: int = 100) -> list[Int[np.ndarray, "b n"]]:
    """`draws` in blocks of about `size` resamples (bounded memory when each resample holds a large array)."""
    return np.array_split(draws(n, n_boot, seed), max(1, n_boot // size))


def cluster_draws(clusters: np.ndarray, n_boot: int, seed: Seed = 0) -> tuple[Int[np.ndarray, "B n"], int]:
    """Row indices of resamples that draw whole clusters (equal sizes) with replacement, and the cluster count."""
    ids, inv = np.unique(np.asarray(clusters), return_inverse=True)
    members = [np.flatnonzero(inv == c) for c in range(len(ids))]
    if len({len(m) for m in members}) != 1:
        raise InputError(f"clusters of unequal sizes ({sorted({len(m) for m in members})}) are not supported")
    return np.stack(members)[draws(len(ids), n_boot, seed)].reshape(n_boot, -1), len(ids)


def cluster_weights(n_clusters: int, n_boot: int, seed: Seed = 0) -> Float[np.ndarray, "B C"]:
    """How often each of `n_clusters` clusters is drawn in each resample, as multinomial counts."""
    return _rng(seed).multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters), size=n_boot).astype(np.float64)


def percentile_ci(samples: np.ndarray, level: float = 0.95, axis: Optional[int] = None) -> np.ndarray:
    """The (low, high) percentile interval of `samples` at coverage `level` (along `axis`)."""
    return np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=axis)


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
    lo, hi = percentile_ci(x[draws(len(x), n_boot, seed)].mean(1), level)
    return MeanCI(float(x.mean()), float(lo), float(hi))


def paired_abs_mean_gaps(values: Float[np.ndarray, "P K"], best: int, n_boot: int = 2000, seed: int = 0,
                         level: float = 0.95) -> Float[np.ndarray, "K 2"]:
    """Per column k of `values` (the same prompts in every column), the percentile CI of
    |mean_k| − |mean_best| over resamples of the prompts (one draw shared by all columns: paired)."""
    values = np.asarray(values, np.float64)
    means = np.abs(values[draws(len(values), n_boot, seed)].mean(1))  # [n_boot, K]
    return percentile_ci(means - means[:, best:best + 1], level, axis=0).T


def abs_mean_ci(x: Float[np.ndarray, " P"], weights: Float[np.ndarray, "B P"], level: float = 0.95,
                scale: Optional[np.ndarray] = None) -> tuple[float, float, float]:
    """|mean| of `x` (over |mean scale| when given) and its percentile CI over the resamples `weights` (counts)."""
    P = len(x)
    num = np.abs(weights @ x) / P
    den = np.abs(weights @ scale) / P if scale is not None else 1.0
    point = abs(x.mean()) / (abs(scale.mean()) if scale is not None else 1.0)
    lo, hi = percentile_ci(num / den, level)
    return float(point), float(lo), float(hi)


def simultaneous_bound(x: Float[np.ndarray, "P S"], weights: Float[np.ndarray, "B P"], level: float = 0.95,
                       chunk: int = 100) -> float:
    """The level-quantile of max over columns of |resampled mean − mean|: with probability `level` no column's
    mean strays further from its truth, so a column whose |mean| exceeds it is non-zero even after picking the
    largest of S (a max-type bootstrap; Westfall and Young 1993)."""
    P = x.shape[0]
    centred = x - x.mean(0)
    stats = [np.abs(c @ centred / P).max(1) for c in np.array_split(weights, max(1, len(weights) // chunk))]
    return float(np.quantile(np.concatenate(stats), level))


def max_abs_mean_ci(x: Float[np.ndarray, "P S"], weights: Float[np.ndarray, "B P"], level: float = 0.95,
                    chunk: int = 100, scale: Optional[np.ndarray] = None) -> tuple[float, float]:
    """Percentile CI of max over columns of |mean of x[:, j]|, re-selecting the column in every resample (so the
    CI includes the luck of picking the worst of many)."""
    P = x.shape[0]
    out = []
    for start in range(0, len(weights), chunk):
        c = weights[start:start + chunk]
        stat = np.abs(c @ x / P).max(1)
        out.append(stat / (np.abs(c @ scale / P) if scale is not None else 1.0))
    lo, hi = percentile_ci(np.concatenate(out), level)
    return float(lo), float(hi)
