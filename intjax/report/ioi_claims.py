"""The IOI analysis's claims table: the paper's claims as `ClaimTest` rows, from the analysis's results."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from intjax.report.claims import ClaimTest, claims_lines, not_shown, verdicts
from intjax.report.labels import label_claims, label_verdict
from intjax.studies.faithfulness_variance import MIN_RESAMPLES, faithfulness_variance
from intjax.report.faithfulness_variance import expansion_dependent

CLAIMS = ("NIE contains INT", "INT grows with distance", "INT ≈ 0 where locally affine",
          "pairwise + higher-order decomposition", "invisible components", "inflated components",
          "INT variance explains faithfulness instability", "greedy NIE ranking misses combinatorial mechanisms")


def _split_rows(splits: Mapping[str, Any]) -> list[ClaimTest]:
    """NIE contains INT (the gap joint − Σ NIE) and the higher-order part of it, per direction."""
    rows = []
    if "noising" in splits:
        s = splits["noising"]
        rows.append(ClaimTest(CLAIMS[0], "all heads at once, noising: joint − Σ NIE = Σ of every INT (≠ 0)",
                              s.gap, tuple(s.gap_ci), direction=0, fmt="+.2f"))
    for d in ("noising", "denoising"):
        if d in splits:
            s = splits[d]
            rows.append(ClaimTest(f"{CLAIMS[3]} ({d})", f"{d}: the part of joint − Σ NIE beyond pairs (≠ 0)", s.higher,
                                  tuple(s.higher_ci), direction=0, fmt="+.2f",
                                  note=f"pairwise {s.pairwise:+.2f} [{s.pairwise_ci[0]:+.2f}, "
                                       f"{s.pairwise_ci[1]:+.2f}]"))
    return rows


def _distance_rows(distance: Any) -> list[ClaimTest]:
    """INT grows with distance (natural corruptions) and vanishes faster than the patch as t → 0."""
    if distance is None or "natural" not in distance.by_regime:
        return [ClaimTest(CLAIMS[1], "distance study skipped", None, None, note="distance_heads = 0"),
                ClaimTest(CLAIMS[2], "distance study skipped", None, None, note="distance_heads = 0")]
    nat = distance.by_regime["natural"]["within"]
    top = int(max(distance.order)) if len(distance.order) else 0
    outside = (f"; its CI lies above every Taylor order (|T| ≤ {top}): these patches are outside the local regime"
               if nat.ci[0] > top else "")
    rows = [ClaimTest(CLAIMS[1], "natural corruptions: slope of log|INT| on log distance, within set and prompt "
                      "(> 0)", nat.slope, tuple(nat.ci), fmt=".2f", note=f"{nat.n_points} points{outside}")]
    scaled = distance.by_regime.get("scaled", {})
    k = min((int(name.rsplit(" ", 1)[1]) for name in scaled if name.startswith("within order ")), default=None)
    if k is None:
        rows.append(ClaimTest(CLAIMS[2], "no t-scaled family in the run", None, None))
    else:
        f = scaled[f"within order {k}"]
        rows.append(ClaimTest(CLAIMS[2], f"sources scaled toward the base by t: slope of |INT| on t for |T| = {k} "
                              "(> 1: INT vanishes faster than the patch as t → 0)", f.slope, tuple(f.ci), null=1.0,
                              fmt=".2f"))
    return rows


def label_claims_of(row: Any, suffix: str = "") -> list:
    """The label claims of a remedies row's visibility study (each name followed by `suffix`)."""
    v = row.visibility
    return label_claims([n + suffix for n in row.names], v.labels, v.support, v.flip_support,
                        [v.sign_flipped(i) for i in range(len(row.names))])


def _label_rows(studies: Any) -> list[ClaimTest]:
    """Invisible and inflated heads, either direction, by the label rule (≥ 90% bootstrap support)."""
    claims = [c for e in ("noising", "denoising") for c in label_claims_of(studies.remedy(e, "head"), f" ({e[0]})")]
    rows = []
    for claim, label in ((CLAIMS[4], "invisible"), (CLAIMS[5], "inflated")):
        verdict, text = label_verdict(claims, label)
        rows.append(ClaimTest(claim, f"single patch against context effect; a head counts when ≥ 90% of bootstrap "
                              f"resamples label it {label} (n: noising, d: denoising)", None, None,
                              fixed=verdict, text=text))
    return rows


def _faithfulness_row(studies: Any) -> ClaimTest:
    """The INT share of the faithfulness variance (knock-in, first ablation), inconclusive if expansion-dependent."""
    f = studies.faithfulness
    test = f"knock-in INT share of Var(faithfulness) across resamples, {f.ablations[0]} ablation (> 0)"
    if f.faithfulness.shape[1] < MIN_RESAMPLES:
        return ClaimTest(CLAIMS[6], test, None, None, note=f"{f.faithfulness.shape[1]} resamples, fewer than "
                         f"{MIN_RESAMPLES}")
    tables = faithfulness_variance(f, f.ablations[0])
    tin, tout = tables["knock-in"], tables["knock-out"]
    depends, why = expansion_dependent(tin, tout)
    if depends:
        return ClaimTest(CLAIMS[6], test, None, None, fixed="inconclusive",
                         text=f"{tin.share['INT']:+.0%} knock-in vs {tout.share['INT']:+.0%} knock-out ({why}: "
                              "no expansion-free share)")
    return ClaimTest(CLAIMS[6], test, tin.share["INT"], tuple(tin.share_ci["INT"]), fmt="+.0%",
                     note=f"knock-out {tout.share['INT']:+.0%}")


def _search_row(search: Sequence[Any]) -> ClaimTest:
    """The held-out difference best k-set − top-k by |NIE| at the budget where it is largest (Bonferroni over k)."""
    test = "best k-set against top-k by |NIE|, chosen on half the prompts, scored on the other half (> 0)"
    rows = [r for r in search if r.difference_ci[1] > r.difference_ci[0]]
    if not rows:
        return ClaimTest(CLAIMS[7], test, None, None, note="no budget with a CI")
    r = max(rows, key=lambda r: r.difference / (r.difference_ci[1] - r.difference_ci[0]))
    return ClaimTest(CLAIMS[7], test, r.difference, tuple(r.difference_ci), fmt="+.3f", multiplier=len(rows),
                     note=f"k = {r.k}, the largest of {len(rows)} budgets, Bonferroni ×{len(rows)}")


def ioi_claim_tests(splits: Mapping[str, Any], distance: Any, studies: Optional[Any]) -> list[ClaimTest]:
    """One row per claim of the paper (CLAIMS), from the analysis's order splits, distance study and studies."""
    rows = _split_rows(splits) + _distance_rows(distance)
    if studies is not None:
        rows += _label_rows(studies) + [_faithfulness_row(studies), _search_row(studies.search)]
    return rows


def model_lines(model_name: str, n_layers: int, gpt2_small: bool, ordered: bool,
                tests: Sequence[ClaimTest]) -> list[str]:
    """What the model is and which claims it does not show (for any model but GPT-2 small)."""
    if gpt2_small:
        return []
    what = (f"{model_name} is a {n_layers}-layer model trained on IOI, not GPT-2 small" if model_name == "ioi-small"
            else f"{model_name} is not GPT-2 small")
    order = ("its circuit is in Wang et al.'s layer order" if ordered else
             "its discovered circuit is not in Wang et al.'s layer order, so its class names are not Wang et al.'s "
             "classes")
    missing = not_shown(tests)
    return [f"**Model.** {what}; {order}. It does not show: " + ("; ".join(missing) if missing else "nothing "
            "(every claim is supported)") + ".", ""]


def multiplicity_line(tests: Sequence[ClaimTest], n_readings: int, n_labels: int) -> str:
    """How many inferences the report makes and at what error level each family is controlled."""
    n = sum(t.testable for t in tests)
    return (f"**Multiplicity.** The claims table holds {n} tested rows, controlled together by Holm at 5% "
            f"family-wise error. The report also reads {n_readings} pair readings (each sign on its own 95% CI, "
            f"not corrected across pairs: about {0.05 * n_readings:.1f} false signs expected if none were "
            f"real) and {n_labels} head labels (stated at ≥ 90% bootstrap support, the rest listed as "
            "unsettled); read those as screening, not as confirmed findings.")


def claims_section(model_name: str, n_layers: int, gpt2_small: bool, ordered: bool,
                   tests: Sequence[ClaimTest], n_readings: int = 0, n_labels: int = 0) -> list[str]:
    """The report's first section: the claims table, what the model does not show, and the multiplicity."""
    counts = {v: sum(1 for x, _ in verdicts(tests) if x == v) for v in ("supported", "not supported",
                                                                         "inconclusive", "not testable")}
    return ["## Claims of the paper on this model", "",
            *model_lines(model_name, n_layers, gpt2_small, ordered, tests),
            *claims_lines(tests),
            "Verdicts: " + ", ".join(f"{n} {v}" for v, n in counts.items()) + ".", "",
            multiplicity_line(tests, n_readings, n_labels), ""]
