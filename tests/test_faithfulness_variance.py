"""Faithfulness variance: both expansions against brute force and closed forms, the variance table
against numpy, and the report's rules on planted data with known answers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from intjax.errors import InputError
from intjax.estimands.mobius import fast_mobius
from intjax.ioi.faithfulness import PARTS, FaithfulnessStudy
from intjax.studies.faithfulness_variance import (
    fast_zeta, faithfulness_variance, knockin_terms, knockout_terms, order_parts, paired_difference_ci, study_kept,
    variance_table)
from intjax.report.faithfulness_variance import expansion_dependent, variance_section


def bits(b: int, k: int) -> tuple[int, ...]:
    return tuple(i for i in range(k) if b >> i & 1)


def index(s) -> int:
    return sum(1 << i for i in s)


def brute_knockout(kept: np.ndarray) -> np.ndarray:
    """KO(T) = Σ_{U⊆T} (−1)^{|T|−|U|} [g(N) − g(N∖U)] for T ≠ ∅, KO(∅) = g(∅), by explicit loops."""
    size = kept.shape[-1]
    k = size.bit_length() - 1
    full = tuple(range(k))
    out = np.zeros_like(kept)
    for b in range(size):
        T = bits(b, k)
        if not T:
            out[..., b] = kept[..., 0]
            continue
        for j in range(len(T) + 1):
            for U in itertools.combinations(T, j):
                rest = tuple(i for i in full if i not in U)
                out[..., b] += (-1) ** (len(T) - j) * (kept[..., -1] - kept[..., index(rest)])
    return out


@pytest.mark.parametrize("k", [3, 4])
def test_knockout_terms_match_brute_force_and_sum_to_the_circuit(k):
    rng = np.random.default_rng(k)
    kept = rng.normal(size=(5, 1 << k))
    ko = knockout_terms(kept)
    np.testing.assert_allclose(ko, brute_knockout(kept), atol=1e-12)
    np.testing.assert_allclose(ko.sum(-1), kept[:, -1], atol=1e-12)  # Σ_T KO(T) = g(N) = F(C)
    # in knock-in terms: KO(T) = (−1)^{|T|+1} Σ_{S⊇T} m(S), T ≠ ∅
    m = knockin_terms(kept)
    for b in range(1, 1 << k):
        sup = [s for s in range(1 << k) if s & b == b]
        np.testing.assert_allclose(ko[:, b], (-1) ** (bin(b).count("1") + 1) * m[:, sup].sum(1), atol=1e-12)
    # main effect = g(all) − g(all ∖ i)
    for i in range(k):
        np.testing.assert_allclose(ko[:, 1 << i], kept[:, -1] - kept[:, ((1 << k) - 1) ^ (1 << i)], atol=1e-12)
    # both expansions: the same ablated part and the same main + INT
    pin, pout = order_parts(m), order_parts(ko)
    np.testing.assert_allclose(pin["ablated"], pout["ablated"])
    np.testing.assert_allclose(sum(pout.values()), kept[:, -1], atol=1e-12)
    np.testing.assert_allclose(pin["main"] + pin["pairwise"] + pin["higher"],
                               pout["main"] + pout["pairwise"] + pout["higher"], atol=1e-12)
    np.testing.assert_allclose(fast_zeta(m), kept, atol=1e-12)  # zeta inverts Möbius


def test_knockout_closed_forms():
    # product game g(S) = Π_{i∈S} a_i: m(T) = Π_T (a_i − 1), KO(T) = −g(N)·Π_T (1/a_i − 1)
    a = np.array([2.0, 0.5, 3.0, 1.5])
    k = len(a)
    kept = np.array([np.prod(a[list(bits(b, k))]) for b in range(1 << k)])
    ko, m = knockout_terms(kept), knockin_terms(kept)
    for b in range(1, 1 << k):
        T = list(bits(b, k))
        assert m[b] == pytest.approx(np.prod(a[T] - 1))
        assert ko[b] == pytest.approx(-np.prod(a) * np.prod(1 / a[T] - 1))
    # a pure pairwise synergy d plus main effects c: INT = +d knock-in, −d knock-out, mains absorb 2d
    c, d = np.array([0.3, -0.2, 0.7]), 1.25
    kept = np.array([c[list(bits(b, 3))].sum() + d * (b & 3 == 3) for b in range(8)])
    pin, pout = order_parts(knockin_terms(kept)), order_parts(knockout_terms(kept))
    assert pin["pairwise"] == pytest.approx(d) and pout["pairwise"] == pytest.approx(-d)
    assert pin["main"] == pytest.approx(c.sum()) and pout["main"] == pytest.approx(c.sum() + 2 * d)
    assert pin["higher"] == pytest.approx(0, abs=1e-12) and pout["higher"] == pytest.approx(0, abs=1e-12)
    ko = knockout_terms(kept)
    assert ko[0b011] == pytest.approx(-d) and ko[0b001] == pytest.approx(c[0] + d) and ko[0b100] == pytest.approx(c[2])
    with pytest.raises(InputError):
        knockout_terms(np.zeros(6))


def test_variance_table_matches_numpy():
    rng = np.random.default_rng(0)
    R = 30
    parts = {p: rng.normal(size=R) * s for p, s in zip(PARTS, (1.0, 2.0, 1.5, 0.3))}
    total = sum(parts.values())
    t = variance_table(total, parts, n_boot=500)
    P = np.stack(list(parts.values()))
    cov = np.cov(np.vstack([P, total]), bias=True)
    np.testing.assert_allclose(t.cov_matrix, cov[:4, :4], atol=1e-12)
    assert t.var_total == pytest.approx(np.var(total))
    for i, p in enumerate(PARTS):
        assert t.var[p] == pytest.approx(np.var(parts[p]))
        assert t.cov[p] == pytest.approx(cov[i, 4])
        assert t.share[p] == pytest.approx(cov[i, 4] / np.var(total))
        assert t.corr[p] == pytest.approx(np.corrcoef(parts[p], total)[0, 1])
        assert t.r2[p] == pytest.approx(t.corr[p] ** 2)
    # the CIs against an explicit loop over the same draws (rows with replacement, seed 0), numpy's cov per draw
    idx = np.random.default_rng(0).integers(0, R, (500, R))
    parts["INT"] = parts["pairwise"] + parts["higher"]
    for p in (*PARTS, "INT"):
        shares = [np.cov(parts[p][i], total[i], bias=True)[0, 1] / np.var(total[i]) for i in idx]
        r2s = [np.corrcoef(parts[p][i], total[i])[0, 1] ** 2 for i in idx]
        assert t.share_ci[p] == pytest.approx(tuple(np.quantile(shares, [0.025, 0.975])))
        assert t.r2_ci[p] == pytest.approx(tuple(np.quantile(r2s, [0.025, 0.975])))
    assert not t.too_few_resamples and t.parts == (*PARTS, "INT")
    with pytest.raises(InputError, match="do not sum"):
        variance_table(total + 1, parts)


def test_a_part_that_is_the_total_has_r2_one_and_share_one_with_a_tight_ci():
    rng = np.random.default_rng(1)
    total = rng.normal(size=20)
    noise = rng.normal(size=20) * 5
    t = variance_table(total, {"a": total, "b": noise, "c": -noise})
    assert t.share["a"] == pytest.approx(1.0) and t.r2["a"] == pytest.approx(1.0)
    assert t.share_ci["a"] == pytest.approx((1.0, 1.0)) and t.r2_ci["a"] == pytest.approx((1.0, 1.0))
    assert t.readable("a") and "excludes 0" in t.verdict("a")
    assert t.share["b"] == pytest.approx(-t.share["c"])


def test_anticorrelated_parts_have_large_opposite_shares_and_small_r2():
    rng = np.random.default_rng(2)
    R, s = 40, 1.5
    F = rng.normal(size=R)
    F = (F - F.mean()) / F.std()  # SD(F) = 1
    w = rng.normal(size=R)
    w -= w.mean()
    w -= (w @ F) / (F @ F) * F  # orthogonal to F in-sample
    w *= np.sqrt(9 - s**2) / w.std()  # so that SD(a) = 3 SD(F)
    a, b = s * F + w, (1 - s) * F - w
    t = variance_table(F, {"a": a, "b": b})
    assert t.share["a"] == pytest.approx(1.5) and t.share["b"] == pytest.approx(-0.5)
    assert t.sd_ratio("a") == pytest.approx(3.0)
    assert t.sd_ratio("b") == pytest.approx(np.sqrt(0.25 + 9 - s**2))
    assert t.corr["a"] == pytest.approx(0.5) and t.r2["a"] == pytest.approx(0.25)
    assert t.r2["b"] == pytest.approx(0.25 / (0.25 + 9 - s**2))
    assert t.r2["a"] < abs(t.share["a"]) and t.r2["b"] < abs(t.share["b"])
    assert t.cov_matrix[0, 1] < 0  # the parts move against each other
    # the CI is much wider than for a part that is the total itself
    assert t.share_ci["a"][1] - t.share_ci["a"][0] > 0.3


def test_ci_excludes_zero_rule_on_planted_data():
    rng = np.random.default_rng(3)
    R = 200
    F = rng.normal(size=R)
    w = rng.normal(size=R) * 3
    w -= w.mean()
    w -= (w @ (F - F.mean())) / np.sum((F - F.mean()) ** 2) * (F - F.mean())  # Cov(w, F) = 0 exactly
    t = variance_table(F, {"signal": F - w, "null": w})
    assert t.share["null"] == pytest.approx(0.0, abs=1e-12) and t.share["signal"] == pytest.approx(1.0)
    lo, hi = t.share_ci["null"]
    assert lo < 0 < hi and not t.readable("null")
    assert t.verdict("null").endswith("cannot be told apart from 0")
    assert t.readable("signal") and t.share_ci["signal"][0] > 0


def test_too_few_resamples():
    rng = np.random.default_rng(4)
    parts = {"a": rng.normal(size=5), "b": rng.normal(size=5)}
    t = variance_table(parts["a"] + parts["b"], parts, n_boot=200)
    assert t.too_few_resamples and not t.readable("a") and "too few" in t.verdict("a")


# ---------------------------------------------------------------------------
# On a FaithfulnessStudy built from a planted g


def synthetic_study(R: int = 20, seed: int = 0, d_sd: float = 0.1, noise: float = 0.01) -> FaithfulnessStudy:
    """k = 3 classes; g(S) = base + Σ_{i∈S} c_i + d·[0, 1 ∈ S], with d (a pairwise synergy) varying most."""
    rng = np.random.default_rng(seed)
    A, k = 2, 3
    kept = np.zeros((A, R, 1 << k))
    for a in range(A):
        base = 0.1 + noise * rng.normal(size=R)
        c = 0.2 + noise * rng.normal(size=(R, k))
        d = 0.2 + d_sd * rng.normal(size=R)
        for b in range(1 << k):
            S = list(bits(b, k))
            kept[a, :, b] = base + c[:, S].sum(1) + d * (b & 3 == 3)
    terms = fast_mobius(kept)
    parts = order_parts(terms)
    return FaithfulnessStudy(classes=("A", "B", "C"), ablations=("mean", "zero"), model_metric=np.ones(R),
                             circuit_metric=kept[..., -1], faithfulness=kept[..., -1], parts=parts, terms=terms,
                             n_prompts=8, reference_per_template=4, class_positions=None, seed=0, seconds=0.0)


def test_faithfulness_variance_on_a_study():
    """On g(S) = base + Σ c_i + d·[0, 1 ∈ S] the only interaction is the pair's d per resample: knock-in INT = d,
    knock-out INT = −d (closed forms), so the INT shares are ±Cov(d, F)/Var(F), F = g(all), by numpy; the main
    share knock-in is Cov(Σ c, F)/Var(F) and the ablated share Cov(base, F)/Var(F)."""
    study = synthetic_study()
    tabs = faithfulness_variance(study, "zero", n_boot=300)
    tin, tout = tabs["knock-in"], tabs["knock-out"]
    g = study_kept(study)[study.ablations.index("zero")]  # [R, 8] g(S) per resample
    F = g[:, -1]
    d = g[:, 0b011] - g[:, 0b001] - g[:, 0b010] + g[:, 0b000]  # the planted pair's d, by its definition
    base, mains = g[:, 0], g[:, [1, 2, 4]].sum(1) - 3 * g[:, 0]

    def share(x):
        return np.cov(x, F, bias=True)[0, 1] / np.var(F)

    assert tin.share["INT"] == pytest.approx(share(d)) and tout.share["INT"] == pytest.approx(-share(d))
    assert tin.share["main"] == pytest.approx(share(mains)) and tin.share["ablated"] == pytest.approx(share(base))
    assert tout.share["main"] == pytest.approx(share(mains + 2 * d))
    assert tin.share["higher"] == pytest.approx(0, abs=1e-9) and tout.share["higher"] == pytest.approx(0, abs=1e-9)
    # the synergy carries most of the spread: + knock-in, − knock-out, and their paired CI excludes 0
    assert tin.share["INT"] > 0.5 and tout.share["INT"] < -0.5
    assert expansion_dependent(tin, tout)[0]
    d_share, lo, hi = paired_difference_ci(tin, tout, "INT")
    assert d_share == pytest.approx(2 * share(d)) and lo > 0
    pooled = faithfulness_variance(study, None, n_boot=300)["knock-in"]
    assert pooled.n == 40 and pooled.n_resamples == 20
    both = study_kept(study)[..., -1].ravel()
    dd = (study_kept(study)[..., 0b011] - study_kept(study)[..., 0b001] - study_kept(study)[..., 0b010]
          + study_kept(study)[..., 0]).ravel()
    assert pooled.share["INT"] == pytest.approx(np.cov(dd, both, bias=True)[0, 1] / np.var(both))
    with pytest.raises(InputError):
        faithfulness_variance(study, "resample")


def test_variance_section_text():
    text = variance_section(synthetic_study(), n_boot=300)
    assert text.count("### ") == 2 and "| knock-out | INT = pairwise + higher |" in text
    assert "the split depends on the expansion point, so no expansion-free" in text
    assert "the parts cancel" in text and "row sum = share" in text
    assert "excludes 0" in text


def test_variance_section_says_nothing_numeric_with_few_resamples():
    text = variance_section(synthetic_study(R=3), n_boot=100)
    body = text.split("\n", 2)[2].strip()
    assert body == ("With 3 resamples (fewer than 8) the variance shares are too noisy to read, so none are "
                    "given; rerun with 20 or more resamples.")
    assert "%" not in text


def test_expansions_agree_when_nothing_interacts():
    # no synergy, main effects vary: INT is 0 in both expansions, no expansion-dependence sentence
    study = synthetic_study(d_sd=0.0)
    tin = faithfulness_variance(study, "mean", n_boot=300)["knock-in"]
    assert abs(tin.share["INT"]) < 1e-9 and not tin.readable("INT")  # rounding noise is not a share
    text = variance_section(study, n_boot=300)
    assert "the two expansions cannot be told apart" in text and "the split depends" not in text


def ioi_like_study(seed: int = 0, R: int = 20) -> FaithfulnessStudy:
    """The issue's shape: a synergy and the main effects vary 5× as much as F and cancel."""
    rng = np.random.default_rng(seed)
    k = 3
    z, w = rng.normal(size=R), rng.normal(size=R)
    base = 0.05 + 0.01 * rng.normal(size=R)
    d = 0.3 + 0.12 * z + 0.02 * w  # synergy of classes 0 and 1
    c = np.stack([0.2 - 0.08 * z + 0.01 * w, 0.2 - 0.04 * z, 0.1 + 0.01 * rng.normal(size=R)], 1)
    kept = np.zeros((1, R, 1 << k))
    for b in range(1 << k):
        kept[0, :, b] = base + c[:, list(bits(b, k))].sum(1) + d * (b & 3 == 3)
    terms = fast_mobius(kept)
    return FaithfulnessStudy(("A", "B", "C"), ("mean",), np.ones(R), kept[..., -1], kept[..., -1],
                             order_parts(terms), terms, 8, 4, None, 0, 0.0)


def test_issue_shape_large_unreadable_shares_small_r2():
    study = ioi_like_study()
    tabs = faithfulness_variance(study, "mean", n_boot=1000)
    tin, tout = tabs["knock-in"], tabs["knock-out"]
    assert tin.share["INT"] > 1 and tout.share["INT"] < -1  # a pure pair: INT_out = −INT_in exactly
    assert tin.r2["INT"] < 0.2 and tin.sd_ratio("INT") > 4
    assert not tin.readable("INT") and not tout.readable("INT")
    # opposite-signed means whose CIs include 0 (and a paired difference, 2 × INT_in, whose CI does too):
    # rule 4 follows the CIs and does not fire on the signs of the means
    lo, hi = paired_difference_ci(tin, tout, "INT")[1:]
    assert lo < 0 < hi and expansion_dependent(tin, tout) == (False, "")
    text = variance_section(study, n_boot=1000)
    assert text.count("cannot be told apart from 0") == 2
    assert "the two expansions cannot be told apart" in text and "the split depends" not in text
    assert "knock-in: the parts cancel — pairwise varies 5.09× as much as F" in text


def test_expansion_rule_follows_the_cis_not_the_signs_of_the_means():
    rng = np.random.default_rng(5)
    R = 30
    F = rng.normal(size=R)
    Fc = F - F.mean()

    def tables(share_in, share_out, noise):
        out = []
        for s in (share_in, share_out):
            w = rng.normal(size=R) * noise
            w -= w.mean()
            w -= (w @ Fc) / (Fc @ Fc) * Fc
            p = s * F + w  # share exactly s, independent noise
            out.append(variance_table(F, {"main": F - p, "pairwise": p, "higher": 0 * F}, n_boot=1000))
        return out

    noisy = tables(0.3, -0.3, 2.0)  # opposite signs, 60 points apart, each CI includes 0
    assert noisy[0].share["INT"] == pytest.approx(0.3) and noisy[1].share["INT"] == pytest.approx(-0.3)
    assert all(t.share_ci["INT"][0] < 0 < t.share_ci["INT"][1] for t in noisy)
    assert not expansion_dependent(*noisy)[0]
    tight = tables(0.3, -0.3, 0.05)  # the same means, each CI on its own side of 0
    assert tight[0].share_ci["INT"][0] > 0 and tight[1].share_ci["INT"][1] < 0
    assert expansion_dependent(*tight) == (True, "their CIs exclude 0 on opposite sides")


def test_pooled_bootstrap_draws_whole_resamples():
    study = synthetic_study(R=10)
    t = faithfulness_variance(study, None, n_boot=200)["knock-in"]
    assert t.n == 20 and t.n_resamples == 10 and not t.too_few_resamples
    # 5 resamples under 2 ablations are 10 rows but only 5 independent units: too few
    assert faithfulness_variance(synthetic_study(R=5), None, n_boot=200)["knock-in"].too_few_resamples
    with pytest.raises(InputError, match="unequal"):
        variance_table(np.arange(4.0), {"a": np.arange(4.0)}, clusters=np.array([0, 0, 0, 1]))
