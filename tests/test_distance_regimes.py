"""The distance study by regime, on planted rows: natural kinds on one law, a t-scaled family on another."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from intjax.report.distance import regime_reading
from intjax.studies.distance_scaling import DistanceScaling, fit_loglog, regime_fits, regimes


def test_r2_against_numpy():
    rng = np.random.default_rng(0)
    d = np.exp(rng.normal(size=200))
    y = d ** 2 * np.exp(rng.normal(0, 1.5, 200))
    fit = fit_loglog(d, y, np.arange(200) % 10, n_boot=200)
    assert fit.r2 == pytest.approx(np.corrcoef(np.log(d), np.log(y))[0, 1] ** 2)
    groups = np.arange(200) % 40  # each group inside one cluster (40 ≡ 0 mod 10)
    gx = np.log(d) - np.array([np.log(d)[groups == g].mean() for g in groups])
    gy = np.log(y) - np.array([np.log(y)[groups == g].mean() for g in groups])
    within = fit_loglog(d, y, np.arange(200) % 10, groups=groups, n_boot=200)
    assert within.r2 == pytest.approx(np.corrcoef(gx, gy)[0, 1] ** 2)


def planted_study(natural_slope=4.0, scaled_slope=2.0) -> DistanceScaling:
    """Per (set, prompt): natural kinds with |INT| = c·d^natural_slope and the scaled family (abc, t = 0.1,
    0.5) with |INT| = c'·d^scaled_slope through abc's point; one pair and one triple per prompt."""
    rows = []
    rng = np.random.default_rng(1)
    for p in range(8):
        for set_name, order in (("A,B", 2), ("A,B,C", 3)):
            d_abc, c = np.exp(rng.normal()), np.exp(rng.normal())
            natural = {"abc": d_abc, "mean": d_abc * np.exp(rng.normal()), "zero": d_abc * np.exp(rng.normal())}
            for kind, d in natural.items():
                rows.append((set_name, order, p, kind, d, c * (d / d_abc) ** natural_slope))
            for t in (0.1, 0.5):
                rows.append((set_name, order, p, f"abc t={t:g}", t * d_abc, c * t ** scaled_slope))
    s, k, p, kind, d, v = map(np.array, zip(*rows))
    return DistanceScaling(set_name=s.astype(str), order=k.astype(int), prompt=p.astype(int),
                           corruption=kind.astype(str),
                           distance=d.astype(float), interaction=v.astype(float), fit=None, by_order={},
                           by_corruption={}, within=None, within_by_order={}, by_regime={}, n_zero_distance=0,
                           n_zero_int=0, normalized=False, semantics={}, n_boot=200, seed=0, seconds=0.0)


def test_regimes_split_the_kinds():
    assert regimes(["abc", "mean", "abc t=0.1", "zero", "abc t=0.5"]) == dict(
        natural=["abc", "mean", "zero"], scaled=["abc", "abc t=0.1", "abc t=0.5"])
    assert regimes(["abc", "mean"]) == dict(natural=["abc", "mean"])


def test_each_regime_recovers_its_planted_slope():
    study = planted_study()
    fits = regime_fits(study)
    assert fits["natural"]["within"].slope == pytest.approx(4.0)
    assert fits["scaled"]["within"].slope == pytest.approx(2.0)
    for k in (2, 3):
        assert fits["scaled"][f"within order {k}"].slope == pytest.approx(2.0)
        assert fits["scaled"][f"within order {k}"].r2 == pytest.approx(1.0)
    # the two laws mixed: the slope of all points together is neither
    mixed = study.fit_subset(within=True).slope
    assert 2.0 < mixed < 4.0


def test_reading_says_natural_patches_are_outside_the_taylor_regime():
    fits = regime_fits(planted_study())
    natural, scaled = regime_reading(fits, max_order=3)
    assert natural.startswith("- Natural corruptions only: within slope 4.00 [4.00, 4.00]")
    assert "outside the local (Taylor) regime" in natural
    assert "|T| = 2: slope 2.00 [2.00, 2.00] (CI contains |T|)" in scaled
    assert "|T| = 3: slope 2.00 [2.00, 2.00] (CI below |T|)" in scaled
    inside = regime_reading(regime_fits(planted_study(natural_slope=2.0)), max_order=3)[0]
    assert "growth within the Taylor orders" in inside and "outside" not in inside
