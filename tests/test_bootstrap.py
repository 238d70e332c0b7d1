"""The one bootstrap: its draws follow the stated convention, counts and indices are the same resamples,
clusters are drawn whole, and the paired and max-type statistics match direct computations."""

from __future__ import annotations

import numpy as np
import pytest

from intjax import bootstrap
from intjax.errors import InputError


def test_draws_follow_the_convention_and_counts_are_the_same_resamples():
    rng = np.random.default_rng(7)
    by_row = np.stack([rng.integers(0, 9, 9) for _ in range(40)])  # resample b: rng.integers(0, n, n) in turn
    np.testing.assert_array_equal(bootstrap.draws(9, 40, 7), by_row)
    expected = np.stack([np.bincount(row, minlength=9) for row in by_row]).astype(float)
    np.testing.assert_array_equal(bootstrap.counts(9, 40, 7), expected)
    np.testing.assert_array_equal(np.concatenate(bootstrap.blocks(9, 250, 7)), bootstrap.draws(9, 250, 7))


def test_cluster_draws_take_whole_clusters():
    clusters = np.array([0, 1, 2, 0, 1, 2])  # e.g. resample r under two ablations
    idx, n = bootstrap.cluster_draws(clusters, 50, 3)
    assert n == 3 and idx.shape == (50, 6)
    for row in idx:
        for a, b in row.reshape(3, 2):  # each drawn cluster brings both of its rows
            assert clusters[a] == clusters[b] and a != b
    with pytest.raises(InputError, match="unequal sizes"):
        bootstrap.cluster_draws(np.array([0, 0, 1]), 5)


def test_paired_gaps_and_max_type_bound_against_direct_loops():
    x = np.random.default_rng(0).normal(size=(12, 3)) + np.array([0.0, 1.0, -2.0])
    idx = bootstrap.draws(12, 300, 5)
    gaps = np.array([[abs(x[i, k].mean()) - abs(x[i, 0].mean()) for k in range(3)] for i in idx])
    np.testing.assert_allclose(bootstrap.paired_abs_mean_gaps(x, 0, 300, 5),
                               np.quantile(gaps, [0.025, 0.975], axis=0).T, rtol=1e-12)
    weights = bootstrap.counts(12, 300, 5)
    devs = [np.abs(x[i].mean(0) - x.mean(0)).max() for i in idx]
    assert bootstrap.simultaneous_bound(x, weights, chunk=7) == pytest.approx(np.quantile(devs, 0.95), rel=1e-12)
    lo, hi = bootstrap.max_abs_mean_ci(x, weights, chunk=7)
    assert (lo, hi) == pytest.approx(tuple(np.quantile([np.abs(x[i].mean(0)).max() for i in idx], [0.025, 0.975])))
    mean, lo, hi = bootstrap.mean_ci(x[:, 1], 300, 5)
    assert (lo, hi) == pytest.approx(tuple(np.quantile([x[i, 1].mean() for i in idx], [0.025, 0.975])))
