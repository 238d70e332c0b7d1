"""Invisible and inflated components: a single patch against the same patch in context.

NIE_i = f(e_i) − f(0) measures i alone. The context effect Δ_i(C) = f(1_{C∪i}) −
f(1_{C∖i}) measures i once the strongest components C are already patched
(for i in C: given the rest of C). They differ by exactly the interactions of i
with C (DESIGN.md §2), so comparing them shows where INT hides or inflates a
component:

- invisible: |Δ_i(C)| ≥ ratio · |NIE_i|  (i matters only together with C);
- inflated:  |NIE_i| ≥ ratio · |Δ_i(C)|  (i's single effect overlaps C's: under
  noising i's necessity is shared with C, which removing C already removes; under
  denoising what i brings alone C already brings: redundancy);
- flipped:   NIE_i and Δ_i(C) have opposite signs;

each only when the larger of the two is at least `floor` × `scale` (so noise
around zero is never flagged). One label per component, by precedence:
invisible, then inflated, then flipped (an invisible or inflated component may
also have flipped its sign: reports mark that separately, `sign_flipped`). The
labels use means over prompts; `support` is the share of bootstrap resamples of
the prompts that give the same label and `flip_support` the share whose means
have opposite signs, which reports need before they state either (90%).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from intjax.errors import InputError
from intjax.estimands.effects import context_effects, nie as nie_of
from intjax.estimands.game import Game
from intjax import bootstrap
from intjax.bootstrap import standard_error

DEFAULT_RATIO = 3.0
DEFAULT_FLOOR = 0.05


@dataclasses.dataclass(frozen=True)
class Visibility:
    """Per component: mean NIE, mean context effect, and the label the thresholds give."""

    nie: np.ndarray  # [n] mean over prompts
    context: np.ndarray  # [n] mean over prompts of Δ_i(C)
    context_set: tuple[int, ...]  # C
    labels: tuple[str, ...]  # "invisible", "inflated", "flipped" or ""
    scale: float  # effects below floor·scale are never flagged
    ratio: float
    floor: float
    nie_se: np.ndarray  # [n] standard error over prompts of the mean NIE
    context_se: np.ndarray  # [n] same for the context effect
    support: np.ndarray  # [n] share of bootstrap resamples of the prompts that give the same label
    flip_support: np.ndarray  # [n] share of the same resamples whose mean NIE and context effect differ in sign

    def flagged(self, label: str) -> list[int]:
        """Indices of the components with this label."""
        return [i for i, lab in enumerate(self.labels) if lab == label]

    @property
    def rule(self) -> str:
        """The thresholds in words, for reports."""
        return (f"invisible: |context| ≥ {self.ratio:g}×|NIE|; inflated: |NIE| ≥ {self.ratio:g}×|context|; "
                f"flipped: opposite signs; one label each, in that precedence; only where the larger is "
                f"≥ {self.floor:.0%} of {self.scale:.3g}")

    def sign_flipped(self, i: int) -> bool:
        """Whether component i's NIE and context effect have opposite signs (whatever its label)."""
        return bool(np.sign(self.nie[i]) * np.sign(self.context[i]) < 0)


LABEL_NAMES = ("", "invisible", "inflated", "flipped")


def _label_codes(nie: np.ndarray, context: np.ndarray, scale: float, ratio: float, floor: float) -> np.ndarray:
    """Index into LABEL_NAMES for each pair of means, elementwise over arrays of any shape."""
    a, c = np.abs(nie), np.abs(context)
    return np.select(
        [np.maximum(a, c) < floor * abs(scale), c >= ratio * a, a >= ratio * c, np.sign(nie) != np.sign(context)],
        [0, 1, 2, 3], default=0)


def label_components(nie: Sequence[float] | np.ndarray, context: Sequence[float] | np.ndarray, scale: float,
                     ratio: float = DEFAULT_RATIO, floor: float = DEFAULT_FLOOR) -> tuple[str, ...]:
    """The label of each component from its mean NIE and mean context effect (rules in the module doc)."""
    if ratio <= 1:
        raise InputError(f"ratio must exceed 1, got {ratio}")
    codes = _label_codes(np.asarray(nie, float), np.asarray(context, float), scale, ratio, floor)
    return tuple(LABEL_NAMES[k] for k in codes)


def visibility(
    game: Game,
    n_context: int = 2,
    *,
    context: Optional[Sequence[int]] = None,
    nie: Optional[np.ndarray] = None,
    scale: Optional[float] = None,
    ratio: float = DEFAULT_RATIO,
    floor: float = DEFAULT_FLOOR,
) -> Visibility:
    """NIE against the context effect with the `n_context` strongest components (by |mean
    NIE|) already patched, or the given `context`, and the labels they earn.

    `scale` defaults to the largest |mean NIE| or |mean context effect|.
    """
    nie = nie_of(game) if nie is None else np.asarray(nie)
    nie_mean = nie.mean(axis=0)
    if context is None:
        if not 0 <= n_context <= game.n_components:
            raise InputError(f"n_context={n_context} must be in 0..{game.n_components}")
        context = np.argsort(-np.abs(nie_mean), kind="stable")[:n_context]
    context = tuple(sorted(int(i) for i in context))
    ctx = context_effects(game, context)
    ctx_mean = ctx.mean(axis=0)
    if scale is None:
        scale = float(max(np.abs(nie_mean).max(), np.abs(ctx_mean).max()))
    labels = label_components(nie_mean, ctx_mean, scale, ratio, floor)
    support = label_support(nie, ctx, labels, scale, ratio, floor)
    return Visibility(nie_mean, ctx_mean, context, labels, float(abs(scale)), ratio, floor,
                      standard_error(nie), standard_error(ctx), support, flip_support(nie, ctx))


def flip_support(nie: np.ndarray, context: np.ndarray, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """Per component, the share of bootstrap resamples of the prompts (rows of `[P, n]`) whose mean NIE
    and mean context effect have opposite signs."""
    nie, context = np.asarray(nie, float), np.asarray(context, float)
    flips = np.zeros(nie.shape[1])
    for block in bootstrap.blocks(len(nie), n_boot, seed):
        flips += (np.sign(nie[block].mean(1)) * np.sign(context[block].mean(1)) < 0).sum(0)
    return flips / n_boot


def label_support(nie: np.ndarray, context: np.ndarray, labels: Sequence[str], scale: float,
                  ratio: float = DEFAULT_RATIO, floor: float = DEFAULT_FLOOR, n_boot: int = 1000,
                  seed: int = 0) -> np.ndarray:
    """Per component, the share of bootstrap resamples of the prompts (rows of the `[P, n]`
    arrays) whose means earn the same label: how firmly the prompts back each label."""
    nie, context = np.asarray(nie, float), np.asarray(context, float)
    codes = np.array([LABEL_NAMES.index(lab) for lab in labels])
    same = np.zeros(nie.shape[1])
    for block in bootstrap.blocks(len(nie), n_boot, seed):
        same += (_label_codes(nie[block].mean(1), context[block].mean(1), scale, ratio, floor) == codes).sum(0)
    return same / n_boot
