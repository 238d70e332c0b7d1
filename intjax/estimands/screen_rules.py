"""The rules behind what a report may say of a screen against the exact values: whether its recall@k beats
a random ranking, whether it orders the pairs as the exact values do, and where it gets a pair's sign wrong."""

from __future__ import annotations

from math import comb
from typing import NamedTuple

import numpy as np
from jaxtyping import Float

from intjax.bootstrap import MeanCI, counts, standard_error
from intjax.errors import InputError

LEVEL = 0.05  # a recall is beyond chance when a random ranking reaches it with probability below this


def least_overlap(k: int, n: int) -> int:
    """The fewest items two top-k lists of the same n items can share (pigeonhole: max(0, 2k − n))."""
    return max(0, 2 * k - n)


def overlap_p_value(overlap: int, k: int, n: int) -> float:
    """P(a uniformly random top-k of n items shares ≥ `overlap` items with a fixed top-k): the
    hypergeometric tail Σ_{x ≥ overlap} C(k, x)·C(n − k, k − x) / C(n, k)."""
    if not 0 < k <= n:
        raise InputError(f"recall@k needs 0 < k ≤ n items, got k = {k}, n = {n}")
    return sum(comb(k, x) * comb(n - k, k - x) for x in range(max(overlap, 0), k + 1)) / comb(n, k)


class RecallReading(NamedTuple):
    """A recall@k read against a random ranking of the same items."""

    overlap: int  # items the two top-k lists share
    k: int
    n: int
    chance: float  # expected recall of a random ranking, k/n
    floor: float  # the recall every ranking reaches, least_overlap / k
    p_value: float  # P(random ranking's overlap ≥ overlap)
    can_inform: bool  # even recall 100% would be beyond chance (1/C(n, k) < LEVEL)
    beyond_chance: bool  # p_value < LEVEL

    @property
    def recall(self) -> float:
        """overlap / k."""
        return self.overlap / self.k


def read_recall(overlap: int, k: int, n: int, level: float = LEVEL) -> RecallReading:
    """Whether `overlap` shared items of two top-k lists of n items say more than a random ranking would."""
    p = overlap_p_value(overlap, k, n)
    return RecallReading(overlap, k, n, k / n, least_overlap(k, n) / k, p, 1 / comb(n, k) < level, p < level)


def read_order(low: float, high: float) -> str:
    """From a 95% CI of a rank correlation: 'agrees' (above 0), 'reverses' (below 0) or 'undetermined'."""
    return "agrees" if low > 0 else "reverses" if high < 0 else "undetermined"


class SignCheck(NamedTuple):
    """One pair's screen and exact mean over prompts with their 95% intervals (simultaneous over the pairs
    checked together), and what they say; `alone` is the verdict of the pair's own 95% intervals."""

    screen: MeanCI
    exact: MeanCI
    verdict: str  # 'wrong sign', 'right sign', or 'not compared' (an interval includes 0)
    screen_alone: MeanCI  # the 95% intervals of this pair alone (not corrected for the others)
    exact_alone: MeanCI
    alone: str  # the verdict of those


def excludes_zero(ci: MeanCI) -> bool:
    """The interval lies wholly above or wholly below 0."""
    return ci.low > 0 or ci.high < 0


def simultaneous_cis(x: Float[np.ndarray, "P m"], n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> list[MeanCI]:
    """Each column's mean over prompts with an interval that holds for all m columns at once: mean_j ± b·SE_j,
    b the level-quantile over resamples of max_j |mean*_j − mean_j| / SE*_j (bootstrap-t of the maximum; the
    resample's own SE* gives the t tails that a fixed SE misses with few prompts)."""
    x = np.asarray(x, np.float64)
    P, mean = len(x), x.mean(0)
    if P < 2:
        return [MeanCI(float(m), float("nan"), float("nan")) for m in mean]
    w, centred = counts(P, n_boot, seed) / P, x - mean  # centred: a constant column gives exactly 0, not rounding
    shift = w @ centred  # mean* − mean
    boot_se = np.sqrt(np.maximum(w @ centred ** 2 - shift ** 2, 0) / (P - 1))
    se = standard_error(x)
    # SE* is floored at SE/3: a column of a few distinct values (an INT that is 0 up to rounding) draws
    # resamples with SE* = 0 but mean* ≠ mean, an infinite t (coverage with the floor: DESIGN.md)
    t = np.abs(shift) / np.maximum(boot_se, np.maximum(se / 3, np.finfo(np.float64).tiny))
    b = float(np.quantile(t.max(1), level))
    return [MeanCI(float(m), float(m - b * e), float(m + b * e)) for m, e in zip(mean, se)]


def compare_signs(screen: MeanCI, exact: MeanCI) -> str:
    """'wrong sign' or 'right sign' where both intervals exclude 0, else 'not compared'."""
    if not (excludes_zero(screen) and excludes_zero(exact)):
        return "not compared"
    return "right sign" if np.sign(screen.mean) == np.sign(exact.mean) else "wrong sign"


def sign_checks(screen: Float[np.ndarray, "P m"], exact: Float[np.ndarray, "P m"], n_boot: int = 2000,
                seed: int = 0) -> list[SignCheck]:
    """Per pair (column), compares the signs of the screen's and the exact mean only where both intervals exclude
    0; each family's intervals hold for all m pairs at once (`simultaneous_cis`, the same resamples for both),
    and `alone` repeats the comparison with each pair's own intervals."""
    screen, exact = np.asarray(screen, np.float64), np.asarray(exact, np.float64)
    checks = []
    for j, (s, e) in enumerate(zip(simultaneous_cis(screen, n_boot, seed), simultaneous_cis(exact, n_boot, seed))):
        s1, e1 = simultaneous_cis(screen[:, [j]], n_boot, seed)[0], simultaneous_cis(exact[:, [j]], n_boot, seed)[0]
        checks.append(SignCheck(s, e, compare_signs(s, e), s1, e1, compare_signs(s1, e1)))
    return checks
