"""The claims table's verdict rule and Holm's correction, against hand computations."""

from __future__ import annotations

import math

import pytest

from intjax.report.claims import ClaimTest, claims_lines, holm, not_shown, p_value, verdicts


def test_holm_against_hand_computation():
    # sorted p: 0.01 (×4), 0.02 (×3), 0.03 (×2), 0.5 (×1); step-down keeps them monotone
    assert holm([0.03, 0.01, 0.5, 0.02]) == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert holm([0.9, 0.001]) == pytest.approx([0.9, 0.002])


def test_p_value_from_the_ci():
    t = ClaimTest("c", "t", 1.96, (0.0, 3.92))  # SE 1, z = 1.96: one-sided p = 0.025
    assert p_value(t) == pytest.approx(0.025, abs=1e-4)
    below = ClaimTest("c", "t", -1.96, (-3.92, 0.0), direction=-1)
    assert p_value(below) == pytest.approx(0.025, abs=1e-4)
    assert p_value(ClaimTest("c", "t", 3.0, (1.0, 5.0), null=3.0)) == pytest.approx(0.5)


def test_every_verdict_branch():
    tests = [
        ClaimTest("strong", "t", 5.0, (4.0, 6.0)),  # far above 0: supported
        ClaimTest("against", "t", -5.0, (-6.0, -4.0)),  # CI below the null: not supported
        ClaimTest("across", "t", 0.5, (-1.0, 2.0)),  # CI across 0: inconclusive
        ClaimTest("negligible", "t", 0.01, (-0.02, 0.04), negligible=0.1),  # inside the band: not supported
        ClaimTest("none", "t", None, None, note="not measured"),  # not testable
        ClaimTest("below", "t", -3.0, (-4.0, -2.0), direction=-1),  # claimed negative: supported
        ClaimTest("slope", "t", 3.8, (3.4, 4.1), null=3.0),  # above a null of 3: supported
    ]
    got = [v for v, _ in verdicts(tests)]
    assert got == ["supported", "not supported", "inconclusive", "not supported", "not testable", "supported",
                   "supported"]
    assert math.isnan(verdicts(tests)[4][1])
    assert not_shown(tests) == ["against (not supported)", "across (inconclusive)", "negligible (not supported)",
                                "none (not testable)"]


def test_holm_turns_a_marginal_ci_inconclusive():
    """Alone, a CI just above 0 (one-sided p ≈ 0.02) is supported; among 6 testable rows Holm needs p < 0.05/6."""
    marginal = ClaimTest("marginal", "t", 1.0, (0.04, 1.96))
    assert verdicts([marginal]) == [("supported", pytest.approx(p_value(marginal)))]
    crowd = [marginal] + [ClaimTest(f"c{i}", "t", 0.1, (-1.0, 1.2)) for i in range(5)]
    assert verdicts(crowd)[0][0] == "inconclusive"


def test_table_lines():
    # SE = 0.5 / 3.92, z = 3.92: one-sided p = Φ(−3.92) = 4.4e-05
    lines = claims_lines([ClaimTest("A claim", "a test", 0.5, (0.25, 0.75), fmt=".2f"),
                          ClaimTest("B claim", "b test", None, None, note="no data")])
    assert lines[0].splitlines()[2] == "| A claim | a test | 0.50 [0.25, 0.75] | 4.4e-05 | supported |"
    assert lines[0].splitlines()[3] == "| B claim | b test (no data) | — | — | not testable |"
    assert "over the 1 testable rows" in lines[2]


def test_two_sided_bonferroni_and_fixed_rows():
    two = ClaimTest("c", "t", -1.96, (-3.92, 0.0), direction=0)  # two-sided: p doubled, side of the estimate
    assert p_value(two) == pytest.approx(0.05, abs=2e-4)
    assert p_value(ClaimTest("c", "t", 1.96, (0.0, 3.92), multiplier=3)) == pytest.approx(0.075, abs=3e-4)
    assert verdicts([ClaimTest("c", "t", -5.0, (-6.0, -4.0), direction=0)])[0][0] == "supported"
    fixed = ClaimTest("labels", "t", None, None, fixed="inconclusive", text="L3H3 (45%)")
    assert verdicts([fixed])[0][0] == "inconclusive" and not fixed.testable
    assert "| L3H3 (45%) | — | inconclusive |" in claims_lines([fixed])[0]
