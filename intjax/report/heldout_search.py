"""The report section of the held-out search (`studies.heldout_search`): a table and sentences
computed from its numbers by the rules stated in the section itself."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from intjax.errors import InputError
from intjax.studies.heldout_search import HeldoutRow
from intjax.report.markdown import markdown_table


def _pct(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{x:.0%}"


def _pct_ci(x: float, ci: tuple[float, float]) -> str:
    return f"{_pct(x)} [{_pct(ci[0])}, {_pct(ci[1])}]" if math.isfinite(x) else "—"


def _points(gap: float) -> str:
    n = round(abs(gap) * 100)
    return f"{n} percentage point{'' if n == 1 else 's'}"


def _effect_ci(x: float, ci: tuple[float, float]) -> str:
    return f"{x:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]"


def significance(row: HeldoutRow) -> str:
    """The `significant` cell: whether the paired difference's CI excludes 0, and which way."""
    if row.greedy_worse:
        return "yes: best set ahead"
    if row.greedy_better:
        return "yes: top-k ahead (overfit)"
    return "no (same set)" if row.same_set else "no"


def row_sentence(row: HeldoutRow, names: Sequence[str]) -> str:
    """One budget's reading (rules in `heldout_search_section`)."""
    k = row.k
    lvl = f"{row.level:.0%}"
    if row.same_set:
        return (f"At k = {k} the top-{k} by |NIE| is the best {k}-set on the selection prompts, so greedy "
                f"loses nothing (shortfall 0, held out and in-sample).")
    head = (f"At k = {k} greedy's held-out shortfall is {_pct_ci(row.shortfall, row.shortfall_ci)} "
            f"(in-sample {_pct(row.in_shortfall)})")
    diff = f"{row.difference:+.3f} [{row.difference_ci[0]:+.3f}, {row.difference_ci[1]:+.3f}]"
    best = ", ".join(names[i] for i in row.best)
    if row.greedy_worse:
        text = (f"{head}: significant — the best {k}-set ({best}) beats the top-{k} by |NIE| on prompts it "
                f"was not chosen on by {diff} (paired difference, {lvl} CI above 0).")
    elif row.greedy_better:
        text = (f"{head}: significant the other way — the top-{k} by |NIE| beats the set the search chose "
                f"({best}) on held-out prompts (paired difference {diff}, {lvl} CI below 0), so the search "
                "fitted noise in the selection prompts.")
    else:
        text = (f"{head}; the paired difference {diff} has a {lvl} CI that includes 0: greedy cannot be told "
                "apart from the best set on held-out prompts.")
    if not row.sign_holds:
        text += (f" The best set's held-out joint effect ({row.best_effect:+.3f}) does not have the sign it "
                 f"had on the selection prompts ({row.in_best_effect:+.3f}).")
    return text


def optimism_sentence(rows: Sequence[HeldoutRow]) -> str:
    """How the in-sample numbers compare with the held-out ones (rules in `heldout_search_section`)."""
    differ = [r for r in rows if not r.same_set]
    if not differ:
        return ("At every k the top-k by |NIE| is the best set on the selection prompts: there is no shortfall "
                "to overstate, in-sample or held out.")
    ks = ", ".join(str(r.k) for r in differ)
    in_mean = float(np.mean([r.in_shortfall for r in differ]))
    finite = [r.shortfall for r in differ if math.isfinite(r.shortfall)]
    lines = []
    if finite:
        out_mean = float(np.mean(finite))
        gap = in_mean - out_mean
        verb = "overstates" if gap > 0 else "understates" if gap < 0 else "matches"
        lines.append(f"Where the two sets differ (k = {ks}), scoring on the selection prompts gives greedy a mean "
                     f"shortfall of {_pct(in_mean)}, held out it is {_pct(out_mean)}: selecting and scoring on the "
                     f"same prompts {verb} it by {_points(gap)}.")
    keep_best = [abs(r.best_effect) / abs(r.in_best_effect) for r in differ if r.in_best_effect]
    keep_top = [abs(r.top_effect) / abs(r.in_top_effect) for r in differ if r.in_top_effect]
    if keep_best and keep_top:
        b, t = float(np.mean(keep_best)), float(np.mean(keep_top))
        reading = ("the best sets carry over less of their in-sample effect than the top-k sets, as picking the "
                   "largest of many noisy means predicts" if b < t else
                   "the best sets carry over at least as much of their in-sample effect as the top-k sets")
        lines.append(f"On held-out prompts the best sets keep {_pct(b)} of their in-sample |joint| and the top-k "
                     f"sets {_pct(t)} (means over k = {ks}): {reading}.")
    return " ".join(lines)


def heldout_search_section(rows: Sequence[HeldoutRow], names: Sequence[str], pool_names: Sequence[str],
                           pool_rule: str) -> str:
    """Markdown: the held-out search table, the in-sample comparison and sentences read off the numbers.

    `names` names every component by index; `pool_names` the pool's members;
    `pool_rule` says how the pool was chosen (`heldout_search.pool_rule`).
    """
    if not rows:
        raise InputError("no held-out search rows to report; run heldout_greedy_vs_best first")
    r0 = rows[0]
    lvl = f"{r0.level:.0%}"

    def fmt(s):
        return ", ".join(names[i] for i in s) or "—"

    table = [(r.k, fmt(r.top_by_nie), _effect_ci(r.top_effect, r.top_ci), fmt(r.best),
              _effect_ci(r.best_effect, r.best_ci), fmt(r.missed), _pct_ci(r.shortfall, r.shortfall_ci),
              significance(r)) for r in rows]
    in_sample = [(r.k, f"{r.in_top_effect:+.3f}", f"{r.in_best_effect:+.3f}", _pct(r.in_shortfall),
                  f"{r.top_effect:+.3f}", f"{r.best_effect:+.3f}", _pct(r.shortfall),
                  "—" if not math.isfinite(r.optimism) else f"{r.optimism * 100:+.0f} pp") for r in rows]
    worse = [r for r in rows if r.greedy_worse]
    if worse:
        w = max(worse, key=lambda r: r.shortfall)
        summary = (f"Greedy falls significantly short on held-out prompts at {len(worse)} of {len(rows)} budgets "
                   f"(k = {', '.join(str(r.k) for r in worse)}); the largest is at k = {w.k}: the top-{w.k} by "
                   f"|NIE| reaches {_pct(1 - w.shortfall)} of the best {w.k}-set's held-out effect.")
    else:
        summary = (f"At no budget does the best set beat the top-k by |NIE| on held-out prompts with a {lvl} CI "
                   "that excludes 0.")
    return "\n".join([
        "## Greedy versus combinatorial search, on held-out prompts",
        "",
        f"Candidate pool ({len(pool_names)}): {pool_rule}: {', '.join(pool_names)}. For each budget k the top-k "
        f"by |mean NIE| and the best k-set by |mean joint| are chosen on {r0.n_select} selection prompts "
        f"({r0.method}, {r0.n_evaluated} sets evaluated) and scored on {r0.n_score} held-out prompts (same "
        "components, other prompts). Joint = mean over prompts of f(1_S) − f(0). Shortfall = 1 − |top-k's "
        "held-out joint| / |best set's held-out joint|. Paired difference = mean over held-out prompts of "
        "σ·(best set's joint − top-k's joint), σ = the sign of the best set's joint on the selection prompts "
        "(= |best| − |top| when both keep that sign). "
        f"{lvl} CIs: percentile bootstrap, {r0.n_boot} resamples of the held-out prompts, the two sets resampled "
        "together (paired).",
        "",
        markdown_table(table, ("k", "top-k by |NIE|", f"held-out joint [{lvl} CI]", "best k-set",
                               f"held-out joint [{lvl} CI]", "greedy misses", f"shortfall [{lvl} CI]",
                               "significant")),
        "",
        "In-sample (chosen and scored on the selection prompts) against held out:",
        "",
        markdown_table(in_sample, ("k", "in-sample top-k joint", "in-sample best joint", "in-sample shortfall",
                                   "held-out top-k joint", "held-out best joint", "held-out shortfall",
                                   "optimism (in − out)")),
        "",
        f"Reading rule: a budget is significant when the {lvl} CI of the paired difference excludes 0 — above 0 "
        "the best set beats greedy on prompts it was not chosen on, below 0 the top-k beats it (the search "
        "fitted noise); where it includes 0 the two cannot be told apart. Optimism = in-sample shortfall − "
        "held-out shortfall; carry-over = |held-out joint| / |in-sample joint| of a chosen set, averaged over "
        "the budgets where the two sets differ (descriptive, no CI).",
        "",
        summary,
        "",
        *[f"- {row_sentence(r, names)}" for r in rows],
        "",
        optimism_sentence(rows),
        "",
    ])
