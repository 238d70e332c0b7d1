"""The strongest exact pairwise and third-order interactions, each pair read from its signs in both
directions (chosen on one half of the prompts, read on the other), and the split of joint − Σ NIE."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from intjax.report.numbers import pm
from intjax.report.section import Section
from intjax.report import figures
from intjax.studies.heldout_search import split_indices
from intjax.report.markdown import markdown_table
from intjax.studies.readings import read_directions, read_pair_per_prompt
from intjax.bootstrap import standard_error as se
from intjax.ioi.saved import IOIAnalysis


def _pair_readings(res, direction: str, rows, prompts: np.ndarray) -> list:
    """Reading of each pair index in `rows` (studies.readings), from per-prompt NIEs and INTs on `prompts`."""
    index = {n: i for i, n in enumerate(res[f"nie_{direction}"].items)}
    nie = res[f"nie_{direction}"].values[prompts]
    ints = res[f"int2_{direction}"].values[prompts]
    out = []
    for r in rows:
        a, b = res[f"int2_{direction}"].items[r].split(",")
        out.append(read_pair_per_prompt(a, b, nie[:, index[a]], nie[:, index[b]], ints[:, r], direction)[0])
    return out


def _figures(res, top: int, out: Path) -> dict[str, Path]:
    """Bars of the strongest interactions of orders 2 and 3 (the sets are listed alike in both directions)."""
    figs = {}
    for order in (2, 3):
        n, d = res[f"int{order}_noising"].values, res[f"int{order}_denoising"].values
        rows = np.argsort(-np.abs(n.mean(0)))[:top]

        def ci(a):  # normal 95% interval of the mean over prompts, [K, 2]
            return np.stack([a.mean(0) - 1.96 * se(a), a.mean(0) + 1.96 * se(a)], axis=1)[rows]

        figs[f"int{order}"] = figures.interaction_bars(
            [res[f"int{order}_noising"].items[i] for i in rows], n.mean(0)[rows], d.mean(0)[rows],
            out / f"interactions_order{order}.png",
            f"strongest order-{order} interactions (ranked by |noising INT|; bars: means; whiskers: normal 95% CI)",
            noising_ci=ci(n), denoising_ci=ci(d))
    return figs


def section(analysis: IOIAnalysis, out: Path) -> Section:
    """The interactions section, the strongest pair's reading and the order split in the summary, the bars."""
    res, o = analysis.results, analysis.options
    heldout = o.studies.heldout
    n_prompts = res["metric_clean"].values.shape[0]
    select, score = split_indices(n_prompts, 0.5, o.seed) if heldout else (np.arange(n_prompts),) * 2
    top_pairs = np.argsort(-np.abs(res["int2_noising"].values[select].mean(0)))[:o.top]
    readings = {d: _pair_readings(res, d, top_pairs, score) for d in ("noising", "denoising")}
    rn, rd = readings["noising"][0], readings["denoising"][0]
    both = read_directions(rn, rd)
    summary = (
        f"- Strongest pair {res['int2_noising'].items[top_pairs[0]]}: {rn.sentence}; {rd.sentence}"
        + (f"; together: {both}." if both else "."),
        "- All heads at once, the gap joint − Σ NIE and its pairwise and higher-order parts [95% CI]: "
        + "; ".join(f"{d} {sp.gap:+.2f}, pairwise {sp.pairwise:+.2f} [{sp.pairwise_ci[0]:+.2f}, "
                    f"{sp.pairwise_ci[1]:+.2f}], higher orders {sp.higher:+.2f} [{sp.higher_ci[0]:+.2f}, "
                    f"{sp.higher_ci[1]:+.2f}]" for d, sp in analysis.splits.items()) + ".",
    )
    lines = _lines(res, top_pairs, readings, score, len(select) if heldout else None, o.top)
    return Section("\n".join(lines), summary, _figures(res, o.top, out))


def _lines(res, top_pairs, readings, score, n_select, top: int) -> list[str]:
    """The section's lines: the pairs with their readings, the strongest triples."""
    pair_n, pair_d = res["int2_noising"].values[score], res["int2_denoising"].values[score]
    trip_n, trip_d = res["int3_noising"].values, res["int3_denoising"].values
    top_trips = np.argsort(-np.abs(trip_n.mean(0)))[:top]
    pool_size = len(set(",".join(res["int2_noising"].items).split(",")))
    return [
        f"## Strongest interactions (exact, among the {pool_size} strongest heads)",
        "",
        "![pairwise](interactions_order2.png) ![third order](interactions_order3.png)",
        "",
        (f"The pairs are the strongest by |mean noising INT| on {n_select} prompts; every number and reading "
         f"in this table comes from the other {len(score)} prompts. " if n_select is not None else "")
        + "Each pair's reading comes from the signs of its NIEs and INT relative to its joint effect, in each "
        "direction (rules in the sign box above). A quantity whose 95% CI includes 0 but reaches past its size "
        "floor is uncertain, not small: a reading that rests on it is 'undetermined' and names it. The last "
        "column joins the two directions where DESIGN's table names a mechanism (serial chain, AND, OR).",
        "",
        markdown_table([(res["int2_noising"].items[i], pm(pair_n[:, i].mean(), se(pair_n)[i]), rn.label(),
                         pm(pair_d[:, i].mean(), se(pair_d)[i]), rd.label(),
                         read_directions(rn, rd).split(":")[0] or "—")
                        for i, rn, rd in zip(top_pairs, readings["noising"], readings["denoising"])],
                       ("pair", "INT noising", "reading (noising)", "INT denoising", "reading (denoising)",
                        "both directions")),
        "",
        markdown_table([(res["int3_noising"].items[i], pm(trip_n[:, i].mean(), se(trip_n)[i]),
                         pm(trip_d[:, i].mean(), se(trip_d)[i])) for i in top_trips],
                       ("triple", "INT noising", "INT denoising")),
        "",
    ]
