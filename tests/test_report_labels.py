"""Labels in the summary only with bootstrap support: planted prompts whose labels are firm or on a knife edge."""

from __future__ import annotations

import numpy as np

from intjax.report.labels import LabelClaim, label_claims, label_summary, split_by_support
from intjax.report.paired import smallest_abs_mean
from intjax.studies.visibility import flip_support, label_components, label_support


def test_flip_support_matches_an_explicit_bootstrap_loop():
    rng = np.random.default_rng(3)
    nie = rng.normal(0.1, 1.0, (24, 3))
    ctx = rng.normal(-0.1, 1.0, (24, 3))
    idx = np.random.default_rng(0).integers(0, 24, (1000, 24))  # the same draws, looped one by one
    expected = np.mean([[np.sign(nie[i].mean(0)[k]) != np.sign(ctx[i].mean(0)[k]) for k in range(3)] for i in idx], 0)
    np.testing.assert_allclose(flip_support(nie, ctx), expected)
    # identical prompts: a flip is certain or impossible
    assert flip_support(np.ones((8, 1)), -np.ones((8, 1)))[0] == 1.0
    assert flip_support(np.ones((8, 1)), np.ones((8, 1)))[0] == 0.0


def test_summary_states_only_supported_labels():
    claims = [LabelClaim("L1H0", "inflated", 0.97), LabelClaim("L3H3", "inflated", 0.45),
              LabelClaim("L2H0", "sign flip", 0.62), LabelClaim("L0H1", "invisible", 0.90)]
    settled, unsettled = split_by_support(claims)
    assert [c.name for c in settled] == ["L1H0", "L0H1"] and [c.name for c in unsettled] == ["L3H3", "L2H0"]
    assert label_summary("noising", claims) == (
        "noising: inflated L1H0 (97%), invisible L0H1 (90%); unsettled (support < 90%): inflated L3H3 (45%), "
        "sign flip L2H0 (62%)")
    assert label_summary("denoising", claims[1:3]) == (
        "denoising: none settled; unsettled (support < 90%): inflated L3H3 (45%), sign flip L2H0 (62%)")


def test_a_knife_edge_label_is_unsettled_and_a_firm_one_is_settled():
    """Per-prompt NIEs and context effects: head A's |NIE| is 6× its context effect on every prompt (inflated,
    firm); head B's mean |NIE| sits exactly on the 3× threshold with prompt noise (inflated by a hair in the
    means, in about half the resamples); C is invisible with a sign flip, its NIE near 0 with wide noise."""
    noise = np.random.default_rng(1).normal(size=64)
    noise = (noise - noise.mean()) / noise.std()
    nie = np.stack([np.full(64, -6.0), -3.0 - 1e-6 + 0.5 * noise, 0.05 + 2.0 * noise], 1)
    ctx = np.stack([np.full(64, -1.0), np.full(64, -1.0), np.full(64, -0.9)], 1)
    labels = label_components(nie.mean(0), ctx.mean(0), scale=6.0)
    assert labels == ("inflated", "inflated", "invisible")
    support = label_support(nie, ctx, labels, scale=6.0)
    flips = flip_support(nie, ctx)
    claims = label_claims(["A", "B", "C"], labels, support, flips, [True if i == 2 else False for i in range(3)])
    settled, unsettled = split_by_support(claims)
    assert [c.name for c in settled] == ["A"] and support[0] == 1.0
    assert [(c.name, c.label) for c in unsettled] == [("B", "inflated"), ("C", "invisible"), ("C", "sign flip")]
    assert 0.3 < support[1] < 0.7 and 0.3 < flips[2] < 0.7


def test_smallest_abs_mean_needs_paired_support():
    """Column 1's |mean| is smallest in both cases; with a shared prompt noise the pairing removes it and the
    gap is settled, with independent noise of the same size it is not."""
    rng = np.random.default_rng(2)
    shared = rng.normal(size=(40, 1)) * 3
    paired = np.concatenate([2.0 + shared, 1.5 + shared, 3.0 + shared], 1)
    best, settled, cis = smallest_abs_mean(paired)
    assert best == 1 and settled and cis[1, 0] == cis[1, 1] == 0.0
    np.testing.assert_allclose(cis[[0, 2]], [[0.5, 0.5], [1.5, 1.5]], atol=1e-9)  # the planted gaps exactly
    independent = np.array([2.0, 1.5, 3.0]) + rng.normal(size=(40, 3)) * 3
    best, settled, _ = smallest_abs_mean(independent)
    assert not settled


def test_label_verdict_branches():
    from intjax.report.labels import label_verdict

    claims = [LabelClaim("L1H0", "inflated", 1.0), LabelClaim("L3H3", "inflated", 0.45),
              LabelClaim("L2H3", "invisible", 0.56)]
    assert label_verdict(claims, "inflated") == ("supported", "L1H0 (100%), L3H3 (45%)")
    assert label_verdict(claims, "invisible") == ("inconclusive", "L2H3 (56%)")
    assert label_verdict(claims, "flipped") == ("not supported", "none")
