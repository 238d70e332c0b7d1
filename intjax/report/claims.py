"""The claims table: one row per claim of the paper, its test, estimate with CI and a verdict by one rule.

Each claim is a statement that a quantity lies on one side of a null value
(`direction` +1: above, −1: below; 0: either side, two-sided: the p-value is
doubled and the side is the estimate's). `multiplier` > 1 is a Bonferroni
factor for a row whose estimate was picked among that many. Rows that are not a
quantity with a CI (the label claims) carry their verdict in `fixed`, from
their own tested rule, and stay out of the Holm family. From the estimate and
its 95% CI:

- not testable: no estimate (the run did not measure it, or the model cannot);
- supported: the CI lies on the claimed side of the null *and* the claim
  survives Holm's correction over every testable row of the table (family-wise
  error `ALPHA`), with each p-value from the normal approximation the CI
  implies (SE = CI width / (2·1.96), one-sided toward the claim);
- not supported: the CI lies on the other side of the null, or inside the
  row's `negligible` band around it (shown to be no effect);
- inconclusive: anything else (a CI across the null, or one that fails Holm).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

from intjax.report.markdown import markdown_table

ALPHA = 0.05
Z95 = 1.959963984540054
VERDICTS = ("supported", "not supported", "inconclusive", "not testable")


@dataclasses.dataclass(frozen=True)
class ClaimTest:
    """One claim, the test run for it and its estimate with a 95% CI (None: not testable)."""

    claim: str
    test: str
    estimate: Optional[float]
    ci: Optional[tuple[float, float]]
    direction: int = 1  # +1: the claim says the quantity exceeds `null`; −1: below it
    null: float = 0.0
    negligible: float = 0.0  # half-width of the band around `null` that counts as no effect
    fmt: str = "+.3f"
    note: str = ""  # why not testable, or what the estimate is
    multiplier: int = 1  # Bonferroni factor when the estimate was picked among this many
    fixed: str = ""  # a verdict from the row's own rule (not in the Holm family), with `text` as its estimate
    text: str = ""

    @property
    def testable(self) -> bool:
        """Whether the row has a finite estimate and CI."""
        return (not self.fixed and self.estimate is not None and self.ci is not None
                and all(math.isfinite(v) for v in (self.estimate, *self.ci)))

    @property
    def side(self) -> int:
        """The claimed side of the null: `direction`, or the estimate's side for a two-sided claim."""
        return self.direction or (1 if self.estimate >= self.null else -1)


def p_value(t: ClaimTest) -> float:
    """One-sided p of 'the quantity is not on the claimed side', from the normal approximation of the CI."""
    lo, hi = t.ci
    se = (hi - lo) / (2 * Z95)
    factor = t.multiplier * (2 if t.direction == 0 else 1)
    if se <= 0:
        return 0.0 if t.side * (t.estimate - t.null) > 0 else 1.0
    z = t.side * (t.estimate - t.null) / se
    return min(1.0, factor * 0.5 * math.erfc(z / math.sqrt(2)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the order given."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def verdicts(tests: Sequence[ClaimTest], alpha: float = ALPHA) -> list[tuple[str, float]]:
    """(verdict, Holm-adjusted p or nan) per row, by the rule of the module doc."""
    testable = [i for i, t in enumerate(tests) if t.testable]
    adjusted = dict(zip(testable, holm([p_value(tests[i]) for i in testable])))
    out = []
    for i, t in enumerate(tests):
        if i not in adjusted:
            out.append((t.fixed or "not testable", float("nan")))
            continue
        lo, hi = (t.ci[0] - t.null) * t.side, (t.ci[1] - t.null) * t.side
        lo, hi = min(lo, hi), max(lo, hi)  # the CI on the claim's axis: > 0 is the claimed side
        if lo > 0 and adjusted[i] < alpha:
            out.append(("supported", adjusted[i]))
        elif hi < 0 or (t.negligible > 0 and -t.negligible < lo and hi < t.negligible):
            out.append(("not supported", adjusted[i]))
        else:
            out.append(("inconclusive", adjusted[i]))
    return out


def claims_lines(tests: Sequence[ClaimTest], alpha: float = ALPHA) -> list[str]:
    """Markdown: the table (claim, test, estimate [95% CI], Holm p, verdict) and a line on the rule."""
    rows = []
    for t, (v, p) in zip(tests, verdicts(tests, alpha)):
        est = (f"{format(t.estimate, t.fmt)} [{format(t.ci[0], t.fmt)}, {format(t.ci[1], t.fmt)}]"
               if t.testable else t.text or "—")
        rows.append((t.claim, t.test + (f" ({t.note})" if t.note else ""), est,
                     "—" if math.isnan(p) else f"{p:.2g}", v))
    n = sum(t.testable for t in tests)
    return [markdown_table(rows, ("claim", "test", "estimate [95% CI]", "Holm p", "verdict")), "",
            f"Verdicts by one rule (`intjax.report.claims`): supported when the 95% CI lies on the claimed side "
            f"and the claim survives Holm's correction over the {n} testable rows (family-wise error "
            f"{alpha:.0%}; p from the normal approximation of each CI, doubled where two-sided); not supported "
            "when the CI lies on the other side or inside the row's no-effect band; inconclusive otherwise. "
            "Label rows follow the label rule (`intjax.report.labels`) and are not in the Holm family.", ""]


def not_shown(tests: Sequence[ClaimTest], alpha: float = ALPHA) -> list[str]:
    """The claims whose verdict is not 'supported', as 'claim (verdict)'."""
    return [f"{t.claim} ({v})" for t, (v, _) in zip(tests, verdicts(tests, alpha)) if v != "supported"]
