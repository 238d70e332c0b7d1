"""The IOI report's screen section: the rules behind each of its sentences on hand-made rankings (the
missed pairs, recall, the Spearman CI against scipy and in closed-form cases), and the section's text
on a made-up pair of screen and exact results."""

from __future__ import annotations

import re
import types

import numpy as np
import pytest
from scipy.stats import spearmanr

from intjax.report import screen
from intjax.bootstrap import standard_error
from intjax.results import Results
from intjax.studies.heldout_search import split_indices

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


def analysis_with(screen_values: np.ndarray, exact_values: np.ndarray, heldout: bool = False):
    """The parts of an IOIAnalysis the section reads: results with int2_ and int2_hessian_ in both directions,
    and the options that set the prompt split."""
    res = Results()
    for d in ("noising", "denoising"):
        res.add(f"int2_{d}", exact_values, ITEMS, order=2, direction=d)
        res.add(f"int2_hessian_{d}", screen_values, ITEMS, order=2, direction=d, estimate="hessian")
    options = types.SimpleNamespace(studies=types.SimpleNamespace(heldout=heldout), seed=0)
    return types.SimpleNamespace(results=res, pair_pool=("A", "B", "C", "D"), options=options)


def test_section_text_on_a_known_pair_of_rankings(tmp_path, monkeypatch):
    monkeypatch.setattr(screen, "TOP", 3)
    exact = np.tile([6.0, -5.0, 4.0, 3.0, 2.0, 1.0], (4, 1)) + np.arange(4)[:, None] * 0.01
    shuffled = np.tile([6.0, 1.0, 0.5, -5.0, 4.0, 2.0], (4, 1))
    part = screen.section(analysis_with(shuffled, exact), tmp_path)
    text = part.markdown
    assert ("recall@3 33% (the screen's 3 strongest pairs hold 1 of the exact 3 strongest); with 6 pairs even "
            "recall 100% would not beat a random ranking (chance 50%, every ranking reaches 0%), so recall@3 says "
            "nothing here; missed: A,C; A,D.") in text
    rho = spearmanr(shuffled.mean(0), exact.mean(0)).correlation
    assert f"over all 6 pairs {rho:.2f}" in text
    assert "chosen and measured on the same 4 prompts" in text
    assert "| 2 | A,C | -4.985 ± 0.006 | B,C | -5.000 ± 0.000 | +3.015 ± 0.006 | -8.015 ± 0.006 |" in text
    assert part.summary[0].startswith("- Hessian screen of the 6 pairs against exact INT: noising recall@3 33% "
                                      "(chance 50%, uninformative)")


def planted_game(P: int, select: np.ndarray, seed: int = 0):
    """Per-prompt f_p(α) = Σ_{i<j} Q_p,ij α_iα_j + c_p,ij (α_i²α_j + α_iα_j²)/2 over heads A–D, whose exact
    INT_ij is Q_ij + c_ij and whose H_ij(0) is Q_ij. A,B is strongly non-affine (Q −5, c +15: INT +10, H −5);
    A,C and B,D are quadratic (H = INT = 4, −3); B,C has H 8 and INT 0 on the selection prompts only.
    Returns (screen, exact) `[P, 6]`, H by central differences of f (exact for a cubic up to rounding, which
    is rounded off so that H − INT is exactly 0 where it should be) and INT from its four corners."""
    rng = np.random.default_rng(seed)
    Q = np.array([-5.0, 4.0, 0.1, 0.0, -3.0, 0.2]) + 0.5 * rng.normal(size=(P, 6))
    c = np.zeros((P, 6))
    c[:, 0] = 15 + 0.5 * rng.normal(size=P)
    chosen = np.isin(np.arange(P), select)
    Q[:, 3] += 8 * chosen
    c[:, 3] = -Q[:, 3]
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]

    def f(p: int, a: np.ndarray) -> float:
        return sum(Q[p, r] * a[i] * a[j] + c[p, r] * (a[i] ** 2 * a[j] + a[i] * a[j] ** 2) / 2
                   for r, (i, j) in enumerate(pairs))

    def at(i: int, j: int, x: float, y: float) -> np.ndarray:
        a = np.zeros(4)
        a[i] += x
        a[j] += y
        return a

    h = 1e-3
    screen = np.array([[(f(p, at(i, j, h, h)) - f(p, at(i, j, h, -h)) - f(p, at(i, j, -h, h))
                         + f(p, at(i, j, -h, -h))) / (4 * h * h) for i, j in pairs] for p in range(P)])
    exact = np.array([[f(p, at(i, j, 1, 1)) - f(p, at(i, j, 1, 0)) - f(p, at(i, j, 0, 1)) + f(p, at(i, j, 0, 0))
                       for i, j in pairs] for p in range(P)])
    return np.round(screen, 6), np.round(exact, 6)


def test_section_on_a_planted_game_chooses_on_one_half_and_states_the_wrong_sign(tmp_path, monkeypatch):
    monkeypatch.setattr(screen, "TOP", 3)
    select, score = split_indices(16, 0.5, 0)
    shots, exact = planted_game(16, select)
    part = screen.section(analysis_with(shots, exact, heldout=True), tmp_path)
    text = part.markdown
    assert "chosen by |mean| on 8 selection prompts" in text and "measured on the other 8" in text
    # chosen on the selection half: the screen's B,C (H 8 there) displaces B,D; measured held out, its H is ~0
    assert "hold 2 of the exact 3 strongest" in text and "missed: B,D." in text
    row = next(line for line in text.splitlines() if "| B,C |" in line)
    assert f"{shots[score, 3].mean():+.3f} ± {standard_error(shots[score, 3]):.3f}" in row and abs(
        shots[score, 3].mean()) < 0.5
    # A,B: exact +10, screen −5 (its non-affine face), both intervals far from 0 on the held-out half
    wrong = re.search(r"the screen gets the sign wrong on 1: A,B \(exact ([-+.\d]+) \[([-+.\d]+), ([-+.\d]+)\], "
                      r"screen ([-+.\d]+) \[([-+.\d]+), ([-+.\d]+)\]\)", text)
    assert wrong, text
    e, e_lo, e_hi, s, s_lo, s_hi = map(float, wrong.groups())
    assert 8 < e_lo <= e <= e_hi < 12 and -6 < s_lo <= s <= s_hi < -4  # truth: +10 and −5
    assert "Of the exact 3 strongest pairs, 3 have both intervals excluding 0" in text
    # A,C and B,D are quadratic (H = INT on every prompt): only A,B's error, −15, is established
    error = re.search(r"The screen's error H_ij − INT excludes 0 on 1 of the exact 3 strongest pairs: A,B "
                      r"([-+.\d]+) \[([-+.\d]+), ([-+.\d]+)\]\.", text)
    assert error and float(error[2]) < -15 < float(error[3]) < 0, text  # truth: −15
    assert part.summary[0].endswith("sign wrong on A,B.")


def test_section_is_empty_for_an_analysis_without_the_screen(tmp_path):
    res = Results()
    res.add("int2_noising", np.ones((2, 6)), ITEMS)
    assert screen.section(types.SimpleNamespace(results=res, pair_pool=()), tmp_path).markdown == ""
