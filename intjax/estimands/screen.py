"""Reading a screen of pair interactions against the exact ones: which pairs it ranks highest, how far
its values are from the exact INT, and whether it orders pairs as the exact values do."""

from __future__ import annotations

import numpy as np
from jaxtyping import Float, Int

from intjax.estimands.screen_rules import sign_checks


def strongest(values: Float[np.ndarray, "P K"], k: int) -> Int[np.ndarray, " k"]:
    """Indices of the k items with the largest |mean over prompts|, strongest first (ties: lower index)."""
    return np.argsort(-np.abs(np.asarray(values, np.float64).mean(axis=0)), kind="stable")[:k]


def ranks(x: Float[np.ndarray, " K"]) -> Float[np.ndarray, " K"]:
    """Ranks 0..K−1 of x, ties given their average rank."""
    x = np.asarray(x, np.float64)
    ordered = np.sort(x)
    return (np.searchsorted(ordered, x, "left") + np.searchsorted(ordered, x, "right") - 1) / 2


def spearman(a: Float[np.ndarray, " K"], b: Float[np.ndarray, " K"]) -> float:
    """Spearman rank correlation of a and b (nan with fewer than two items or a constant one)."""
    if len(a) < 2:
        return float("nan")
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def recall_at(screen: Float[np.ndarray, "P K"], exact: Float[np.ndarray, "P K"], k: int) -> float:
    """Share of the k items strongest by the exact |mean| that are among the screen's k strongest."""
    k = min(k, screen.shape[1])
    return len(set(strongest(screen, k).tolist()) & set(strongest(exact, k).tolist())) / k


SCREEN_CHECK_ITEMS = ("pairs", "max_abs_error", "mean_abs_error", "max_abs_error_any_prompt", "spearman_abs",
                      "sign_agreement", "exact_scale", "signs_compared", "signs_wrong")


def screen_check(screen: Float[np.ndarray, "P K"], exact: Float[np.ndarray, "P K"]) -> dict[str, float]:
    """The screen's error on K pairs whose exact values are known: max and mean |mean screen − mean exact|,
    the largest error on any one prompt, Spearman correlation of |means| among the K, the share of pairs
    whose means have the same sign, the largest exact |mean| (the scale the errors compare to), and the pairs
    whose signs can be compared (both 95% intervals, simultaneous over the K, exclude 0:
    `screen_rules.sign_checks`) with how many of those the screen gets wrong."""
    screen, exact = np.asarray(screen, np.float64), np.asarray(exact, np.float64)
    s, e = screen.mean(axis=0), exact.mean(axis=0)
    err = np.abs(s - e)
    verdicts = [c.verdict for c in sign_checks(screen, exact)] if screen.shape[1] else []
    return dict(pairs=float(len(s)), max_abs_error=float(err.max(initial=0)), mean_abs_error=float(err.mean()),
                max_abs_error_any_prompt=float(np.abs(screen - exact).max(initial=0)),
                spearman_abs=spearman(np.abs(s), np.abs(e)), sign_agreement=float(np.mean(np.sign(s) == np.sign(e))),
                exact_scale=float(np.abs(e).max(initial=0)),
                signs_compared=float(sum(v != "not compared" for v in verdicts)),
                signs_wrong=float(verdicts.count("wrong sign")))
