"""What a pair's NIEs and interaction say about its mechanism: the sentences reports print.

Two components A, B patched in one direction (noising: clean base, corrupted
source; denoising: the reverse), with NIE_A, NIE_B, INT_AB and the joint effect
J = f(1_AB) − f(0) = NIE_A + NIE_B + INT_AB. Each quantity is read by its sign
relative to J: `+` (same sign as J), `−` (opposite), or `0` when it is small
for what it is compared with, or its CI over prompts includes 0:
NIE_X is small when |NIE_X| < `floor` × |NIE_X + INT| (X's single effect is
small against its effect once the other is patched too); INT is small when
|INT| < `floor` × min(|NIE_A|, |NIE_B|) (it changes neither member's effect by
more than `floor` of it). The pattern (A, B, INT) gives the reading (DESIGN.md
§2, "Reading signs"):

| pattern | noising | denoising |
|---|---|---|
| (·, ·, 0) | additive | additive |
| (+, +, −) | overlap: each alone is necessary (both needed, in parallel or in series), so single patches double-count | overlap: each alone suffices (redundant, or in series), so single patches double-count |
| (0, 0, +) | only together: redundant, either suffices (OR, a backup) | only together: jointly necessary (AND) |
| (+, +, +) | synergy: together more than the sum | synergy |
| (+, 0, +) | B matters only once A is patched too | B matters only once A is restored too |
| (−, +, +) | A works against the pair's joint effect, only (or less) while B is intact (inhibition) | the same, with B restored |
| (0, +, −) | A dampens B's effect and has none alone (inhibition) | the same |

(and the same with A and B swapped). Anything else is "mixed". An overlap of a
member whose NIE is under a quarter of the other's is read as containment (its
effect needs the other intact, or is already brought by restoring the other);
INT below 2% of |J| is additive whatever the NIEs. The planted games of
tests/test_readings.py (AND, OR, serial chain, inhibition, a head that only
matters given another, compounding losses; each in both directions) check the
rows they produce; the table says which.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from intjax.studies.stats import mean_ci

DEFAULT_FLOOR = 0.15
NEGLIGIBLE = 0.02  # |INT| below this share of |J| is additive
CONTAINED = 0.25  # an overlap member whose |NIE| is below this share of the other's is contained in it
SIGN_RULE = ("Signs are read relative to the pair's joint effect J = NIE_A + NIE_B + INT: '+' same sign as J, "
             "'−' opposite, '0' when a 95% CI over prompts includes 0, or for NIE_X when it is below {floor:.0%} "
             "of X's effect once the other is patched too (NIE_X + INT), or for INT when it is below {floor:.0%} "
             "of the smaller |NIE| or 2% of |J|")


@dataclasses.dataclass(frozen=True)
class PairReading:
    """The mechanism a pair's signs point to, with the sentence a report prints."""

    pattern: tuple[str, str, str]  # signs of NIE_A, NIE_B, INT relative to J
    mechanism: str  # additive, overlap, only together, synergy, conditional, inhibition, mixed
    sentence: str


def _sign(x: float, joint: float, small: bool | np.bool_) -> str:
    if small:
        return "0"
    return "+" if np.sign(x) == np.sign(joint) else "−"


def read_pair(a: str, b: str, nie_a: float, nie_b: float, interaction: float, direction: str, *,
              floor: float = DEFAULT_FLOOR, uncertain: tuple[bool, bool, bool] = (False, False, False)) -> PairReading:
    """The reading of a pair from its mean NIEs and INT in one direction (rules in the module doc).

    `uncertain[k]` marks a quantity whose CI includes 0 (read as '0').
    """
    if direction not in ("noising", "denoising"):
        raise ValueError(f"direction must be noising or denoising, got {direction!r}")
    joint = nie_a + nie_b + interaction
    small = (abs(nie_a) < floor * abs(nie_a + interaction), abs(nie_b) < floor * abs(nie_b + interaction),
             abs(interaction) < floor * min(abs(nie_a), abs(nie_b)) or abs(interaction) < NEGLIGIBLE * abs(joint))
    vals = (nie_a, nie_b, interaction)
    pattern = tuple(_sign(v, joint, s or u) for v, s, u in zip(vals, small, uncertain))
    sa, sb, si = pattern
    noising = direction == "noising"
    patched = "patched" if noising else "restored"
    if si == "0":
        return PairReading(pattern, "additive", f"{a} and {b} add up ({direction}): their interaction is "
                           "negligible, each single patch measures its own part")
    if (sa, sb, si) == ("+", "+", "−"):
        big, small_one = (a, b) if abs(nie_a) >= abs(nie_b) else (b, a)
        if min(abs(nie_a), abs(nie_b)) < CONTAINED * max(abs(nie_a), abs(nie_b)):
            what = (f"{small_one}'s effect needs {big} intact" if noising else
                    f"restoring {big} already brings most of what {small_one} brings")
            return PairReading(pattern, "overlap", f"{a} and {b} overlap ({direction}): {what} (its effect is "
                               f"contained in {big}'s), so their single patches double-count")
        what = ("each alone is necessary (both needed, in parallel or in series)" if noising else
                "each alone suffices (redundant, or in series)")
        return PairReading(pattern, "overlap", f"{a} and {b} overlap ({direction}): {what}, so their single "
                           "patches double-count and the joint effect is smaller than their sum")
    if (sa, sb, si) == ("0", "0", "+"):
        what = ("they are redundant: either one suffices, so patching one alone shows nothing (an OR, a backup)"
                if noising else "they are jointly necessary: restoring one alone shows nothing (an AND)")
        return PairReading(pattern, "only together", f"{a} and {b} matter only together ({direction}): {what}")
    if (sa, sb, si) == ("+", "+", "+"):
        return PairReading(pattern, "synergy", f"{a} and {b} are synergistic ({direction}): together they do "
                           "more than the sum of their single patches")
    for x, y, sx, sy in ((a, b, sa, sb), (b, a, sb, sa)):
        if (sx, sy, si) == ("0", "+", "+"):
            return PairReading(pattern, "conditional", f"{x} matters only once {y} is {patched} too "
                               f"({direction}): its single patch shows little, the interaction carries it")
        if (sx, sy, si) == ("−", "+", "+"):
            nx = nie_a if x == a else nie_b
            when = "only while" if abs(nx + interaction) < floor * abs(nx) else "less once it is not, yet still"
            state = "intact" if noising else "restored"
            return PairReading(pattern, "inhibition", f"{x} works against the pair's joint effect {when} {y} is "
                               f"{state} ({direction}): {x} inhibits {y}")
        if (sx, sy, si) == ("0", "+", "−"):
            return PairReading(pattern, "inhibition", f"{x} dampens {y}'s effect and has none alone "
                               f"({direction}): {x} inhibits {y}")
    return PairReading(pattern, "mixed", f"{a} and {b} ({direction}): signs {''.join(pattern)} fit no single "
                       "planted mechanism")


def read_pair_per_prompt(a: str, b: str, nie_a: np.ndarray, nie_b: np.ndarray, interaction: np.ndarray,
                         direction: str, *, floor: float = DEFAULT_FLOOR,
                         seed: int = 0) -> tuple[PairReading, dict[str, tuple[float, float, float]]]:
    """`read_pair` from per-prompt values `[P]`, with each mean's bootstrap 95% CI (a CI that
    includes 0 reads as '0'); returns the reading and {quantity: (mean, low, high)}."""
    stats = {k: mean_ci(v, seed=seed) for k, v in (("nie_a", nie_a), ("nie_b", nie_b), ("int", interaction))}
    uncertain = tuple(bool(lo <= 0 <= hi) for _, lo, hi in stats.values())
    reading = read_pair(a, b, stats["nie_a"][0], stats["nie_b"][0], stats["int"][0], direction,
                        floor=floor, uncertain=uncertain)
    return reading, stats


SIGN_BOX = (
    "**How to read the signs.** The metric is logit(IO) − logit(S); TE = y(corrupted) − y(clean) < 0 when the "
    "model does the task. Every effect is f(patched) − f(base). *Noising* patches corrupted activations into "
    "the clean run: a **negative** noising NIE means the head supports the behaviour (removing it hurts). "
    "*Denoising* patches clean activations into the corrupted run: a **positive** denoising NIE means the head "
    "supports it (restoring it helps). An interaction INT_T is what a set does beyond the sum of its members' "
    "single patches. For a pair, a sign relative to the joint effect J names the mechanism: INT opposite to "
    "both NIEs means overlap (under noising: each is necessary; under denoising: each suffices); INT with J's "
    "sign and small NIEs means they matter only together (noising: a backup, either suffices; denoising: "
    "both needed). The direction is named with every reading; rules in `intjax.studies.readings`."
)


def sign_box(floor: Optional[float] = None) -> str:
    """The report's 'how to read the signs' paragraph, with the sign rule's threshold."""
    return SIGN_BOX + " " + SIGN_RULE.format(floor=DEFAULT_FLOOR if floor is None else floor) + "."
