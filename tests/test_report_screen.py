"""The IOI report's screen section: the rules behind each of its sentences on hand-made rankings (the
missed pairs, recall, the Spearman CI against scipy and in closed-form cases), and the section's text
on a made-up pair of screen and exact results."""

from __future__ import annotations

import types

import numpy as np
import pytest
from scipy.stats import spearmanr

from intjax.report import screen
from intjax.results import Results

ITEMS = ("A,B", "A,C", "A,D", "B,C", "B,D", "C,D")


def test_missed_pairs_on_hand_made_rankings():
    exact = np.array([[6.0, -5.0, 4.0, 3.0, 2.0, 1.0]])  # exact order: 0, 1, 2, 3, 4, 5
    shuffled = np.array([[6.0, 1.0, 0.5, -5.0, 4.0, 2.0]])  # screen's top 3: 0, 3, 4
    assert screen.missed(shuffled, exact, 3).tolist() == [1, 2]  # in the exact order
    assert screen.missed(exact, exact, 3).tolist() == []
    assert screen.missed(-exact, exact, 6).tolist() == []  # ranked by |mean|: signs do not matter


def test_spearman_ci_closed_form_cases_and_scipy():
    rng = np.random.default_rng(0)
    exact = rng.normal(size=(12, 20)) + np.linspace(-3, 3, 20)
    rho, lo, hi = screen.spearman_ci(2 * exact + 1, exact, n_boot=200)
    assert (rho, lo, hi) == (pytest.approx(1), pytest.approx(1), pytest.approx(1))  # same means' order always
    rho, lo, hi = screen.spearman_ci(-exact, exact, n_boot=200)
    assert (rho, lo, hi) == (pytest.approx(-1), pytest.approx(-1), pytest.approx(-1))
    noisy = exact + rng.normal(scale=3, size=exact.shape)
    rho, lo, hi = screen.spearman_ci(noisy, exact, n_boot=500)
    assert rho == pytest.approx(spearmanr(noisy.mean(0), exact.mean(0)).correlation, abs=1e-12)
    assert -1 <= lo < rho < hi <= 1


def analysis_with(screen_values: np.ndarray, exact_values: np.ndarray):
    """The parts of an IOIAnalysis the section reads: results with int2_ and int2_hessian_ in both directions."""
    res = Results()
    for d in ("noising", "denoising"):
        res.add(f"int2_{d}", exact_values, ITEMS, order=2, direction=d)
        res.add(f"int2_hessian_{d}", screen_values, ITEMS, order=2, direction=d, estimate="hessian")
    return types.SimpleNamespace(results=res, pair_pool=("A", "B", "C", "D"))


def test_section_text_on_a_known_pair_of_rankings(tmp_path, monkeypatch):
    monkeypatch.setattr(screen, "TOP", 3)
    exact = np.tile([6.0, -5.0, 4.0, 3.0, 2.0, 1.0], (4, 1)) + np.arange(4)[:, None] * 0.01
    shuffled = np.tile([6.0, 1.0, 0.5, -5.0, 4.0, 2.0], (4, 1))
    part = screen.section(analysis_with(shuffled, exact), tmp_path)
    text = part.markdown
    assert "recall@3 33% (the screen's 3 strongest pairs hold 1 of the exact 3 strongest); missed: A,C; A,D." in text
    rho = spearmanr(shuffled.mean(0), exact.mean(0)).correlation
    assert f"over all 6 pairs {rho:.2f}" in text
    assert "| 2 | A,C | -4.985 | B,C | -5.000 | +3.015 |" in text  # rank 2: exact's pair, screen's pair
    assert part.summary[0].startswith("- Hessian screen of the 6 pairs against exact INT: noising recall@3 33%")


def test_section_is_empty_for_an_analysis_without_the_screen(tmp_path):
    res = Results()
    res.add("int2_noising", np.ones((2, 6)), ITEMS)
    assert screen.section(types.SimpleNamespace(results=res, pair_pool=()), tmp_path).markdown == ""
