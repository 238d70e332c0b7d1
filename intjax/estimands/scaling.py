"""Distance scaling: INT_T(t) as every source moves toward the base, s_i(t) = o_i + t(s_i − o_i).

Under frozen semantics INT_T(t) = t^{|T|} D_T(0) + O(t^{|T|+1}), so the log-log
slope is |T|; under recompute semantics a patched downstream component blocks
an upstream one's path, which adds an O(t) term (slope ≈ 1).
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


def loglog_slope(ts: Sequence[float], ints: np.ndarray) -> float:
    """Least-squares slope of log(mean |INT|) against log t (mean over every other axis)."""
    y = np.abs(ints).reshape(len(ts), -1).mean(axis=1)
    if np.any(y <= 0):
        return float("nan")
    return float(np.polyfit(np.log(ts), np.log(y), 1)[0])


def slopes_by_order(ts: Sequence[float], sets: Sequence[Subset], ints: np.ndarray) -> dict[int, float]:
    """{order: log-log slope} over the sets of each order (ints `[len(ts), P, len(sets)]`)."""
    orders = sorted({len(T) for T in sets})
    return {k: loglog_slope(ts, ints[:, :, [i for i, T in enumerate(sets) if len(T) == k]])
            for k in orders}
