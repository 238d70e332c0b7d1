"""Distance scaling: INT_T(t) as every source moves toward the base, s_i(t) = o_i + t(s_i − o_i).

Under frozen semantics INT_T(t) = t^{|T|} D_T(0) + O(t^{|T|+1}), so the log-log
slope is |T|. Under recompute semantics a patched downstream member blocks the
paths of an upstream member through it, which lowers the order: the slope is
the fewest chains of members (each reading every earlier one) that cover T
(`intjax.patching.structure.predicted_slopes`), so it belongs to each set, not
to its order.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from intjax.estimands.game import Game
from intjax.estimands.mobius import Subset, interactions

DEFAULT_TS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def scaled_interactions(
    game_at: Callable[[float], Game], sets: Sequence[Subset], ts: Sequence[float] = DEFAULT_TS
) -> np.ndarray:
    """INT_T(t) for each t and set, `[len(ts), P, len(sets)]` float64.

    `game_at(t)` returns the game with sources scaled by t (for a PatchProblem:
    `lambda t: problem.with_source_scale(t)`).
    """
    return np.stack([interactions(game_at(t), sets=sets)[1] for t in ts])


def loglog_slope(ts: Sequence[float], ints: np.ndarray, floor: float = 0.0) -> float:
    """Least-squares slope of log(mean |INT|) against log t (mean over every other axis).

    Only the t whose mean |INT| exceeds `floor` (the rounding noise of the
    alternating sums) enter the fit; nan if fewer than two do.
    """
    y = np.abs(ints).reshape(len(ts), -1).mean(axis=1)
    keep = y > max(floor, 0.0)
    if keep.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(np.asarray(ts)[keep]), np.log(y[keep]), 1)[0])


def rounding_floor(order: int, magnitude: float, eps: float) -> float:
    """|INT| below which an order-`order` Möbius sum of values of size `magnitude` is rounding noise
    (2^order terms, each off by ~eps·magnitude; a factor 1000 of margin)."""
    return 1e3 * eps * (1 << order) * max(magnitude, 1e-30)


def slopes_by_order(ts: Sequence[float], sets: Sequence[Subset], ints: np.ndarray,
                    floor: Callable[[int], float] = lambda k: 0.0) -> dict[int, float]:
    """{order: log-log slope} pooled over the sets of each order (ints `[len(ts), P, len(sets)]`).

    Pooling mixes sets of different causal structure under recompute semantics;
    `slopes_by_set` keeps them apart.
    """
    orders = sorted({len(T) for T in sets})
    return {k: loglog_slope(ts, ints[:, :, [i for i, T in enumerate(sets) if len(T) == k]], floor(k))
            for k in orders}


def slopes_by_set(ts: Sequence[float], sets: Sequence[Subset], ints: np.ndarray,
                  floor: Callable[[int], float] = lambda k: 0.0) -> list[float]:
    """The log-log slope of each set's mean |INT_T(t)| (ints `[len(ts), P, len(sets)]`)."""
    return [loglog_slope(ts, ints[:, :, j], floor(len(T))) for j, T in enumerate(sets)]
