"""The IOI claims rows from planted study results (order splits, a distance study with known slopes, a
held-out search), and the model sentence."""

from __future__ import annotations

import dataclasses

import pytest

from intjax.report.claims import ClaimTest, verdicts
from intjax.report.ioi_claims import CLAIMS, _distance_rows, _search_row, _split_rows, model_lines
from intjax.studies.distance_scaling import regime_fits
from intjax.studies.order_split import OrderSplit
from test_distance_regimes import planted_study


def split(gap, gap_ci, pairwise, pairwise_ci):
    higher = gap - pairwise
    return OrderSplit(sum_nie=0.0, joint=gap, gap=gap, pairwise=pairwise, higher=higher, gap_ci=gap_ci,
                      pairwise_ci=pairwise_ci, higher_ci=(higher - 1.0, higher + 1.0), n_pairs=6,
                      n_pairs_evaluated=6)


def test_split_rows_name_both_directions():
    rows = _split_rows(dict(noising=split(12.6, (10.0, 15.0), 9.0, (2.5, 15.4)),
                            denoising=split(-0.5, (-3.0, 2.0), -0.2, (-1.0, 0.6))))
    assert [r.claim for r in rows] == [CLAIMS[0], f"{CLAIMS[3]} (noising)", f"{CLAIMS[3]} (denoising)"]
    assert rows[1].estimate == pytest.approx(3.6) and rows[2].estimate == pytest.approx(-0.3)
    assert [v for v, _ in verdicts(rows)] == ["supported", "supported", "inconclusive"]


def test_distance_rows_from_planted_slopes():
    study = dataclasses.replace(planted_study(natural_slope=4.0, scaled_slope=2.0))
    study = dataclasses.replace(study, by_regime=regime_fits(study))
    grows, affine = _distance_rows(study)
    assert grows.estimate == pytest.approx(4.0) and affine.estimate == pytest.approx(2.0) and affine.null == 1.0
    assert "outside the local regime" in grows.note  # slope 4 against |T| ≤ 3
    assert [v for v, _ in verdicts([grows, affine])] == ["supported", "supported"]
    flat = dataclasses.replace(study, by_regime=regime_fits(planted_study(natural_slope=4.0, scaled_slope=0.5)))
    assert verdicts(_distance_rows(flat))[1][0] == "not supported"  # INT shrinks slower than t: CI below 1
    assert [r.testable for r in _distance_rows(None)] == [False, False]


@dataclasses.dataclass
class Row:
    k: int
    difference: float
    difference_ci: tuple[float, float]


def test_search_row_takes_the_strongest_budget_with_bonferroni():
    row = _search_row([Row(1, 0.0, (0.0, 0.0)), Row(2, 0.2, (-0.1, 0.5)), Row(3, 0.3, (0.1, 0.5))])
    assert row.estimate == 0.3 and row.multiplier == 2 and "k = 3" in row.note
    assert not _search_row([Row(1, 0.0, (0.0, 0.0))]).testable


def test_model_lines_say_what_the_model_does_not_show():
    tests = [ClaimTest("A", "t", 5.0, (4.0, 6.0)), ClaimTest("B", "t", 0.1, (-1.0, 1.0))]
    line = model_lines("ioi-small", 4, False, False, tests)[0]
    assert line.startswith("**Model.** ioi-small is a 4-layer model trained on IOI, not GPT-2 small; its "
                           "discovered circuit is not in Wang et al.'s layer order")
    assert line.endswith("It does not show: B (inconclusive).")
    assert model_lines("gpt2", 12, True, True, tests) == []


def test_multiplicity_line_counts():
    from intjax.report.ioi_claims import multiplicity_line

    tests = [ClaimTest("A", "t", 5.0, (4.0, 6.0)), ClaimTest("B", "t", None, None)]
    line = multiplicity_line(tests, n_readings=20, n_labels=7)
    assert "holds 1 tested rows" in line and "20 pair readings" in line and "about 1.0 false signs" in line
    assert "7 head labels" in line
