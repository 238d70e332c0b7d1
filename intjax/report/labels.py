"""Which invisible / inflated / sign-flip labels a summary may state: those the bootstrap backs."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

SUPPORT = 0.90  # a label is stated when at least this share of bootstrap resamples of the prompts gives it


@dataclasses.dataclass(frozen=True)
class LabelClaim:
    """One component's label (or sign flip) with the share of resamples that give it."""

    name: str
    label: str  # invisible, inflated, flipped or "sign flip"
    support: float

    def words(self) -> str:
        """'L1H0 (97%)' as a summary prints it."""
        return f"{self.name} ({self.support:.0%})"


def label_claims(names: Sequence[str], labels: Sequence[str], support: np.ndarray, flip_support: np.ndarray,
                 mean_flipped: Sequence[bool]) -> list[LabelClaim]:
    """Every label the means give, plus a 'sign flip' for a component whose means differ in sign under
    another label; each with its bootstrap support `[n]`."""
    claims = [LabelClaim(names[i], lab, float(support[i])) for i, lab in enumerate(labels) if lab]
    claims += [LabelClaim(names[i], "sign flip", float(flip_support[i])) for i, lab in enumerate(labels)
               if mean_flipped[i] and lab != "flipped"]
    return claims


def split_by_support(claims: Sequence[LabelClaim], level: float = SUPPORT) -> tuple[list[LabelClaim], list[LabelClaim]]:
    """(settled, unsettled): claims at or above `level` support, and the rest."""
    return [c for c in claims if c.support >= level], [c for c in claims if c.support < level]


def label_summary(direction: str, claims: Sequence[LabelClaim], level: float = SUPPORT) -> str:
    """One summary clause: the settled labels by kind, then the unsettled ones with their support."""
    settled, unsettled = split_by_support(claims, level)
    kinds = list(dict.fromkeys(c.label for c in claims))
    said = ", ".join(f"{k} " + ", ".join(c.words() for c in settled if c.label == k)
                     for k in kinds if any(c.label == k for c in settled)) or "none settled"
    text = f"{direction}: {said}"
    if unsettled:
        text += "; unsettled (support < " + f"{level:.0%}): " + ", ".join(
            f"{c.label} {c.words()}" for c in unsettled)
    return text


def label_verdict(claims: Sequence[LabelClaim], label: str, level: float = SUPPORT) -> tuple[str, str]:
    """(verdict, estimate text) of the claim 'some component is `label`': supported when one is settled,
    inconclusive when the means give some but none is settled, not supported when the means give none."""
    mine = [c for c in claims if c.label == label]
    settled, unsettled = split_by_support(mine, level)
    text = ", ".join(c.words() for c in settled + unsettled) or "none"
    if settled:
        return "supported", text
    return ("inconclusive" if unsettled else "not supported"), text
