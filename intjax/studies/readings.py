"""What a pair's NIEs and interaction say about its mechanism: the sentences reports print.

Two components A, B patched in one direction (noising: clean base, corrupted
source; denoising: the reverse), with NIE_A, NIE_B, INT_AB and the joint effect
J = f(1_AB) − f(0) = NIE_A + NIE_B + INT_AB. Each quantity is in one of four
states, from its mean and its 95% CI over prompts (a point value is its own CI):

- `+` / `−`: the CI excludes 0, the mean passes the size floor, and its sign is
  J's (`+`) or the opposite (`−`);
- `0` (small): the whole CI lies inside the size floor;
- `?` (uncertain): neither: the CI includes 0 but reaches past the floor, or it
  excludes 0 while the mean is under the floor and the CI reaches past it.

Size floors: NIE_X against `floor` × |NIE_X + INT| (X's effect once the other
is patched too); INT against the larger of `floor` × min(|NIE_A|, |NIE_B|) and
2% of |J|. J itself must have a CI that excludes 0 for any signed reading.
A reading is given only when every state it rests on is `+`, `−` or `0`; else
the row is "undetermined" and names the quantities that are `?`. Patterns
(DESIGN.md §2, "Reading signs"; X and Y stand for A and B either way round):

| pattern | noising | denoising |
|---|---|---|
| (·, ·, 0) | additive | additive |
| (+, +, −) | overlap: each alone is necessary | overlap: each alone suffices |
| (0, 0, +) | only together: either suffices (OR, a backup) | only together: jointly necessary (AND) |
| (+, +, +) | synergy | synergy |
| (0, +, +) | X matters only once Y is patched too | X matters only once Y is restored too |
| (−, +, +) | X works against J while Y is at its base state (noising: intact; denoising: not restored) | the same |
| (0, +, −) | X dampens Y's effect and has none alone | the same |

Inhibition is split by X's effect once Y is patched too (NIE_X + INT, its own
state): `0` "only while", X's sign "less once", J's sign "and with it once".
An overlap member whose |NIE| is under a quarter of the other's is read as
contained in it. Anything else is "mixed". `read_directions` joins the two
directions by DESIGN's table: overlap in both is a serial chain, overlap
under noising with only-together under denoising an AND, the reverse an OR.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional

import numpy as np

from intjax.bootstrap import mean_ci

DEFAULT_FLOOR = 0.15
NEGLIGIBLE = 0.02  # |INT| below this share of |J| is additive
CONTAINED = 0.25  # an overlap member whose |NIE| is below this share of the other's is contained in it
QUANTITIES = ("nie_a", "nie_b", "int", "joint", "a_given_b", "b_given_a")
SIGN_RULE = ("Signs are read relative to the pair's joint effect J = NIE_A + NIE_B + INT: '+' same sign as J, "
             "'−' opposite, each only when its 95% CI over prompts excludes 0 and its mean passes a size floor; "
             "'0' (small) when the whole CI lies inside the floor ({floor:.0%} of X's effect once the other is "
             "patched too for NIE_X; {floor:.0%} of the smaller |NIE| or 2% of |J| for INT); '?' (uncertain) "
             "otherwise. A reading is printed only when every sign it rests on is '+', '−' or '0'; otherwise the "
             "pair is 'undetermined' and the uncertain quantities are named")


@dataclasses.dataclass(frozen=True)
class PairReading:
    """The mechanism a pair's signs point to, with the sentence a report prints."""

    pattern: tuple[str, str, str]  # states of NIE_A, NIE_B, INT: '+', '−' (relative to J), '0' small, '?' uncertain
    mechanism: str  # additive, overlap, only together, synergy, conditional, inhibition, mixed, undetermined
    sentence: str
    undetermined: tuple[str, ...] = ()  # the quantities whose state is '?' when the reading rests on them
    members: tuple[str, str] = ("A", "B")

    def label(self) -> str:
        """The mechanism for a table cell; an undetermined one names its uncertain quantities."""
        if self.mechanism != "undetermined":
            return self.mechanism
        a, b = self.members
        words = dict(nie_a=f"NIE {a}", nie_b=f"NIE {b}", int="INT", joint="J")
        return "undetermined (" + ", ".join(words[k] for k in self.undetermined) + ")"


def state(mean: float, low: float, high: float, band: float) -> str:
    """'+'/'−' (sign of a supported mean: CI excludes 0, |mean| ≥ band), '0' (CI inside ±band) or '?'."""
    if (low > 0 or high < 0) and abs(mean) >= band:
        return "+" if mean > 0 else "−"
    if -band < low and high < band:
        return "0"
    return "?"


def _relative(s: str, joint_sign: float) -> str:
    """A state's sign relative to J's sign (`+` same, `−` opposite); '0' and '?' unchanged."""
    if s in ("0", "?"):
        return s
    return "+" if (s == "+") == (joint_sign > 0) else "−"


def _ci(cis: Optional[Mapping[str, tuple[float, float]]], key: str, mean: float) -> tuple[float, float]:
    if cis is None or key not in cis:
        return mean, mean
    return cis[key]


_NAMES = {"nie_a": "NIE_{a}", "nie_b": "NIE_{b}", "int": "INT", "joint": "the joint effect J"}


def _undetermined(a: str, b: str, direction: str, pattern, keys: tuple[str, ...]) -> PairReading:
    named = [_NAMES[k].format(a=a, b=b) for k in keys]
    return PairReading(pattern, "undetermined", f"{a} and {b} ({direction}): no reading; {', '.join(named)} "
                       f"{'is' if len(named) == 1 else 'are'} undetermined (95% CI includes 0 and reaches past "
                       "the size floor)", tuple(keys), (a, b))


def read_pair(a: str, b: str, nie_a: float, nie_b: float, interaction: float, direction: str, *,
              floor: float = DEFAULT_FLOOR,
              cis: Optional[Mapping[str, tuple[float, float]]] = None) -> PairReading:
    """The reading of a pair from its mean NIEs and INT in one direction (rules in the module doc).

    `cis[q]` is the 95% CI (low, high) of quantity q in QUANTITIES; a missing one is the point value.
    """
    if direction not in ("noising", "denoising"):
        raise ValueError(f"direction must be noising or denoising, got {direction!r}")
    joint = nie_a + nie_b + interaction
    bands = dict(nie_a=floor * abs(nie_a + interaction), nie_b=floor * abs(nie_b + interaction),
                 int=max(floor * min(abs(nie_a), abs(nie_b)), NEGLIGIBLE * abs(joint)), joint=0.0)
    means = dict(nie_a=nie_a, nie_b=nie_b, int=interaction, joint=joint)
    raw = {k: state(means[k], *_ci(cis, k, means[k]), bands[k]) for k in means}
    js = np.sign(joint)
    pattern = tuple(_relative(raw[k], js) for k in ("nie_a", "nie_b", "int"))
    if raw["int"] == "0":
        return PairReading(pattern, "additive", f"{a} and {b} add up ({direction}): their interaction is "
                           "small against their single effects, each single patch measures its own part")
    if raw["joint"] in ("0", "?"):
        return _undetermined(a, b, direction, pattern, ("joint",))
    unsure = tuple(k for k, s in zip(("nie_a", "nie_b", "int"), pattern) if s == "?")
    if unsure:
        return _undetermined(a, b, direction, pattern, unsure)
    return _signed_reading(a, b, pattern, direction, dict(nie_a=nie_a, nie_b=nie_b, int=interaction),
                           floor, cis)


def _signed_reading(a: str, b: str, pattern: tuple[str, str, str], direction: str, v: dict[str, float],
                    floor: float, cis) -> PairReading:
    """The table's row for a pattern of supported states (module doc)."""
    sa, sb, si = pattern
    noising = direction == "noising"
    patched = "patched" if noising else "restored"
    at_base = "intact" if noising else "not restored"
    if pattern == ("+", "+", "−"):
        big, little = (a, b) if abs(v["nie_a"]) >= abs(v["nie_b"]) else (b, a)
        if min(abs(v["nie_a"]), abs(v["nie_b"])) < CONTAINED * max(abs(v["nie_a"]), abs(v["nie_b"])):
            what = (f"{little}'s effect needs {big} intact" if noising else
                    f"restoring {big} already brings most of what {little} brings")
            return PairReading(pattern, "overlap", f"{a} and {b} overlap ({direction}): {what} (its effect is "
                               f"contained in {big}'s), so their single patches double-count")
        what = ("each alone is necessary (both needed, in parallel or in series)" if noising else
                "each alone suffices (redundant, or in series)")
        return PairReading(pattern, "overlap", f"{a} and {b} overlap ({direction}): {what}, so their single "
                           "patches double-count and the joint effect is smaller than their sum")
    if pattern == ("0", "0", "+"):
        what = ("they are redundant: either one suffices, so patching one alone shows nothing (an OR, a backup)"
                if noising else "they are jointly necessary: restoring one alone shows nothing (an AND)")
        return PairReading(pattern, "only together", f"{a} and {b} matter only together ({direction}): {what}")
    if pattern == ("+", "+", "+"):
        return PairReading(pattern, "synergy", f"{a} and {b} are synergistic ({direction}): together they do "
                           "more than the sum of their single patches")
    for x, y, sx, sy, kx in ((a, b, sa, sb, "a"), (b, a, sb, sa, "b")):
        if (sx, sy, si) == ("0", "+", "+"):
            return PairReading(pattern, "conditional", f"{x} matters only once {y} is {patched} too "
                               f"({direction}): its single patch is small, the interaction carries it")
        if (sx, sy, si) == ("0", "+", "−"):
            return PairReading(pattern, "inhibition", f"{x} dampens {y}'s effect and has none alone "
                               f"({direction}): {x} inhibits {y}")
        if (sx, sy, si) == ("−", "+", "+"):
            nx = v[f"nie_{kx}"]
            given = nx + v["int"]  # X's effect once Y is patched too
            key = f"{kx}_given_{'b' if kx == 'a' else 'a'}"
            after = state(given, *_ci(cis, key, given), floor * abs(nx))
            head = f"{x} works against the pair's joint effect"
            if after == "0":
                words = (f"{head} only while {y} is {at_base} ({direction}): once {y} is {patched} too, {x}'s "
                         "effect vanishes")
            elif after == "?":
                words = (f"{head} while {y} is {at_base} ({direction}); its effect once {y} is {patched} too "
                         "is undetermined")
            elif np.sign(given) == np.sign(nx):
                words = f"{head} while {y} is {at_base}, and less once {y} is {patched} too ({direction})"
            else:
                words = (f"{head} while {y} is {at_base}, and with it once {y} is {patched} too ({direction}): "
                         f"{y} turns {x}'s effect round")
            return PairReading(pattern, "inhibition", words + f"; {x} inhibits {y}")
    return PairReading(pattern, "mixed", f"{a} and {b} ({direction}): signs {''.join(pattern)} fit no single "
                       "planted mechanism")


def read_pair_per_prompt(a: str, b: str, nie_a: np.ndarray, nie_b: np.ndarray, interaction: np.ndarray,
                         direction: str, *, floor: float = DEFAULT_FLOOR,
                         seed: int = 0) -> tuple[PairReading, dict[str, tuple[float, float, float]]]:
    """`read_pair` from per-prompt values `[P]`, with each quantity's bootstrap 95% CI over prompts;
    returns the reading and {quantity: (mean, low, high)} for every name in QUANTITIES."""
    values = dict(nie_a=nie_a, nie_b=nie_b, int=interaction, joint=nie_a + nie_b + interaction,
                  a_given_b=nie_a + interaction, b_given_a=nie_b + interaction)
    stats = {k: mean_ci(values[k], seed=seed) for k in QUANTITIES}
    reading = read_pair(a, b, stats["nie_a"][0], stats["nie_b"][0], stats["int"][0], direction, floor=floor,
                        cis={k: (lo, hi) for k, (_, lo, hi) in stats.items()})
    return reading, stats


JOINT_READINGS = {  # (noising mechanism, denoising mechanism) -> the mechanism DESIGN's table names
    ("overlap", "overlap"): "a serial chain (one reads the other): each is necessary under noising and each "
                            "suffices under denoising",
    ("overlap", "only together"): "an AND: each is necessary, and restoring one alone shows nothing",
    ("only together", "overlap"): "an OR (a backup): either suffices, and patching one alone shows nothing",
}


def read_directions(noising: PairReading, denoising: PairReading) -> str:
    """The mechanism both directions' readings of one pair point to together, or '' when they name none."""
    return JOINT_READINGS.get((noising.mechanism, denoising.mechanism), "")


SIGN_BOX = (
    "**How to read the signs.** The metric is logit(IO) − logit(S); TE = y(corrupted) − y(clean) < 0 when the "
    "model does the task. Every effect is f(patched) − f(base). *Noising* patches corrupted activations into "
    "the clean run: a **negative** noising NIE means the head supports the behaviour (removing it hurts). "
    "*Denoising* patches clean activations into the corrupted run: a **positive** denoising NIE means the head "
    "supports it (restoring it helps). An interaction INT_T is what a set does beyond the sum of its members' "
    "single patches. For a pair, a sign relative to the joint effect J names the mechanism: INT opposite to "
    "both NIEs means overlap (under noising: each is necessary; under denoising: each suffices); INT with J's "
    "sign and small NIEs means they matter only together (noising: a backup, either suffices; denoising: "
    "both needed); overlap in both directions is a serial chain. The direction is named with every reading; "
    "rules in `intjax.studies.readings`."
)


def sign_box(floor: Optional[float] = None) -> str:
    """The report's 'how to read the signs' paragraph, with the sign rule's threshold."""
    return SIGN_BOX + " " + SIGN_RULE.format(floor=DEFAULT_FLOOR if floor is None else floor) + "."
