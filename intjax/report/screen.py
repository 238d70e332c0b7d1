"""The Hessian screen of the pairs (H_ij at the base run, `int2_hessian_*`) next to their exact pairwise INT
(`int2_*`, the same heads). Both top-k lists are chosen on the selection half of the prompts (the split of the
interactions section) and every value is measured on the other half; each sentence comes from a rule in
`intjax.estimands.screen_rules`: recall@k against a random ranking, Spearman's CI, sign failures and the
screen's error on the exact top pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from jaxtyping import Float, Int

from intjax.bootstrap import MeanCI, draws, percentile_ci, standard_error
from intjax.estimands.screen import spearman, strongest
from intjax.estimands.screen_rules import (RecallReading, SignCheck, excludes_zero, read_order, read_recall,
                                          sign_checks, simultaneous_cis)
from intjax.ioi.saved import IOIAnalysis
from intjax.report.markdown import markdown_table
from intjax.report.numbers import pm
from intjax.report.section import Section
from intjax.studies.heldout_search import split_indices

TOP = 10  # the pairs compared: recall@TOP
N_BOOT = 1000


def missed(screen: Float[np.ndarray, "P K"], exact: Float[np.ndarray, "P K"], k: int) -> Int[np.ndarray, " m"]:
    """The exact k strongest items (by |mean|) that are not among the screen's k strongest, strongest first."""
    picked = set(strongest(screen, k).tolist())
    return np.array([i for i in strongest(exact, k) if i not in picked], int)


def spearman_ci(screen: Float[np.ndarray, "P K"], exact: Float[np.ndarray, "P K"], n_boot: int = N_BOOT,
                seed: int = 0) -> tuple[float, float, float]:
    """Spearman correlation of the screen's and the exact means over items, and its 95% percentile
    bootstrap interval over prompts (the same prompts resampled for both)."""
    screen, exact = np.asarray(screen, np.float64), np.asarray(exact, np.float64)
    point = spearman(screen.mean(0), exact.mean(0))
    rows = draws(screen.shape[0], n_boot, seed)
    samples = np.array([spearman(screen[r].mean(0), exact[r].mean(0)) for r in rows])
    lo, hi = percentile_ci(samples[np.isfinite(samples)]) if np.isfinite(samples).any() else (np.nan, np.nan)
    return point, float(lo), float(hi)


def recall_words(r: RecallReading) -> str:
    """recall@k, what it means against a random ranking of the same pairs (rules: `read_recall`)."""
    head = (f"recall@{r.k} {r.recall:.0%} (the screen's {r.k} strongest pairs hold {r.overlap} of the exact "
            f"{r.k} strongest")
    if not r.can_inform:
        return (head + f"); with {r.n} pairs even recall 100% would not beat a random ranking (chance "
                f"{r.chance:.0%}, every ranking reaches {r.floor:.0%}), so recall@{r.k} says nothing here")
    if r.beyond_chance:
        return head + f"; a random ranking does as well with probability {r.p_value:.2g}): beyond chance"
    floor = f", every ranking reaches {r.floor:.0%}" if r.floor > 0 else ""
    return (head + f"; chance {r.chance:.0%}{floor}, a random ranking does as well with probability "
            f"{r.p_value:.2f}): no better than chance")


def order_words(rho: float, lo: float, hi: float, n_pairs: int, n_prompts: int) -> str:
    """Spearman over all pairs with its CI and what the CI says (rule: `read_order`)."""
    head = (f"Spearman correlation of the mean values over all {n_pairs} pairs {rho:.2f} (95% bootstrap CI over "
            f"the {n_prompts} prompts [{lo:.2f}, {hi:.2f}]; no pair is chosen for it, so all prompts count)")
    return head + {"agrees": ": the screen orders the pairs as the exact INT does, beyond chance.",
                   "reverses": ": the screen orders the pairs against the exact INT.",
                   "undetermined": ": no evidence that the screen orders the pairs as the exact INT does."
                   }[read_order(lo, hi)]


def _ci(c) -> str:
    return f"{c.mean:+.2f} [{c.low:+.2f}, {c.high:+.2f}]"


def sign_words(items, checks: dict[int, SignCheck]) -> str:
    """Where both intervals exclude 0, whether the screen's sign is the exact one (rule: `sign_checks`); then
    the pairs whose own intervals, uncorrected for the others, show a wrong sign."""
    wrong = [i for i, c in checks.items() if c.verdict == "wrong sign"]
    both = sum(c.verdict != "not compared" for c in checks.values())
    text = (f"Of the exact {len(checks)} strongest pairs, {both} {'has' if both == 1 else 'have'} both intervals "
            "excluding 0")
    if wrong:
        named = "; ".join(f"{items[i]} (exact {_ci(checks[i].exact)}, screen {_ci(checks[i].screen)})" for i in wrong)
        text += f"; the screen gets the sign wrong on {len(wrong)}: {named}."
    else:
        text += (f": the screen's sign is the exact one on {'it' if both == 1 else 'each'}." if both
                 else "; no sign is compared.")
    alone = [i for i, c in checks.items() if c.alone == "wrong sign" and c.verdict != "wrong sign"]
    if alone:
        text += (" With each pair's own 95% intervals (not corrected for the other pairs) the sign is also wrong on "
                 + "; ".join(f"{items[i]} (exact {_ci(checks[i].exact_alone)}, screen {_ci(checks[i].screen_alone)})"
                             for i in alone) + ".")
    return text


def error_words(items, errors: dict[int, MeanCI]) -> str:
    """The exact top pairs whose screen error H_ij − INT (paired over prompts) has an interval, simultaneous
    over those pairs, that excludes 0 (rule: `simultaneous_cis`, `excludes_zero`)."""
    off = [i for i, c in errors.items() if excludes_zero(c)]
    if not off:
        return (f"On none of the exact {len(errors)} strongest pairs does the interval of the screen's error "
                "H_ij − INT exclude 0.")
    return (f"The screen's error H_ij − INT excludes 0 on {len(off)} of the exact {len(errors)} strongest pairs: "
            + "; ".join(f"{items[i]} {_ci(errors[i])}" for i in off) + ".")


def _table(items, screen: np.ndarray, exact: np.ndarray, top_e, top_s) -> str:
    """Rank, the exact top k (exact mean ± SE), the screen's top k (its mean, that pair's exact mean, the
    screen's error H − INT, each ± SE), all on the prompts given."""
    s, e, err = screen.mean(0), exact.mean(0), (screen - exact).mean(0)
    se_s, se_e, se_err = standard_error(screen), standard_error(exact), standard_error(screen - exact)
    rows = [(r + 1, items[i], pm(e[i], se_e[i]), items[j], pm(s[j], se_s[j]), pm(e[j], se_e[j]),
             pm(err[j], se_err[j])) for r, (i, j) in enumerate(zip(top_e, top_s))]
    return markdown_table(rows, ("rank", "exact: pair", "INT", "screen: pair", "H_ij", "its exact INT",
                                 "H_ij − INT"))


def _split(analysis: IOIAnalysis, n_prompts: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(selection, measurement) prompt indices, the interactions section's split, and the sentence saying so."""
    o = analysis.options
    if o.studies.heldout and n_prompts >= 2:
        select, score = split_indices(n_prompts, 0.5, o.seed)
        return select, score, (f"Both top-k lists are chosen by |mean| on {len(select)} selection prompts (the "
                               f"split of the interactions section), so recall@k and the missed pairs compare the two "
                               "rankings there; every value, interval and sign of a listed pair is measured on the "
                               f"other {len(score)}.")
    every = np.arange(n_prompts)
    return every, every, (f"Both top-k lists are chosen and measured on the same {n_prompts} prompts (held-out "
                          "split off), so the listed pairs' values lean away from 0.")


def direction_part(items, screen: np.ndarray, exact: np.ndarray, select, score, k: int, seed: int = 0):
    """One direction's sentences and table, and its summary fragment."""
    n_pairs = len(items)
    top_e, top_s = strongest(exact[select], k), strongest(screen[select], k)
    recall = read_recall(len(set(top_e.tolist()) & set(top_s.tolist())), k, n_pairs)
    lost = [items[i] for i in missed(screen[select], exact[select], k)]
    rho, lo, hi = spearman_ci(screen, exact, seed=seed)
    s_top, e_top = screen[score][:, top_e], exact[score][:, top_e]
    checks = dict(zip(top_e.tolist(), sign_checks(s_top, e_top, seed=seed)))
    errors = dict(zip(top_e.tolist(), simultaneous_cis(s_top - e_top, seed=seed)))
    text = " ".join((f"{recall_words(recall)}; missed: {'; '.join(lost) or '—'}.",
                     order_words(rho, lo, hi, n_pairs, len(screen)), sign_words(items, checks),
                     error_words(items, errors)))
    wrong = [items[i] for i, c in checks.items() if c.verdict == "wrong sign"]
    verdict = ("beyond chance" if recall.beyond_chance else "no better than chance" if recall.can_inform
               else "uninformative")
    summary = (f"recall@{k} {recall.recall:.0%} (chance {recall.chance:.0%}, {verdict}), "
               f"Spearman {rho:.2f} [{lo:.2f}, {hi:.2f}]"
               + (f", sign wrong on {', '.join(wrong)}" if wrong else ""))
    return text, _table(items, screen[score], exact[score], top_e, top_s), summary


def section(analysis: IOIAnalysis, out: Path) -> Section:
    """Per direction: recall@k against chance, the missed pairs, Spearman with its CI, the sign failures and
    the two top-k lists with held-out values; a summary line."""
    res = analysis.results
    if "int2_hessian_noising" not in res:  # an analysis saved before the screen was part of it
        return Section()
    n_pairs = len(res["int2_noising"].items)
    k = min(TOP, n_pairs)
    select, score, split_text = _split(analysis, res["int2_noising"].values.shape[0])
    lines = ["## Hessian screen of the pairs against their exact INT", "",
             f"Every pair among the {len(analysis.pair_pool)} heads of the pairwise interactions ({n_pairs} pairs), "
             "screened by the mixed partial H_ij = ∂²f/∂α_i∂α_j at the base run (`intjax patch --order 2 "
             "--estimate hessian`, DESIGN.md §2), next to the exact INT of the same pairs. " + split_text
             + " Values are mean ± SE over prompts. Recall is read against a random ranking of the same "
             "pairs. On the exact top pairs the screen's sign is compared with the exact one only where both "
             "intervals exclude 0; the intervals are 95% for all those pairs at once (bootstrap-t of the maximum "
             "over the prompts, one family each for the screen, the exact values and the screen's error H_ij − INT).",
             ""]
    summary = []
    for d in ("noising", "denoising"):
        exact, screen = res[f"int2_{d}"], res[f"int2_hessian_{d}"]
        assert exact.items == screen.items, "the screen and the exact sweep list different pairs"
        text, table, line = direction_part(exact.items, np.asarray(screen.values, np.float64),
                                           np.asarray(exact.values, np.float64), select, score, k)
        lines += [f"**{d}**: {text}", "", table, ""]
        summary.append(f"{d} {line}")
    return Section("\n".join(lines), (f"- Hessian screen of the {n_pairs} pairs against exact INT: "
                                      + "; ".join(summary) + ".",))
