"""Which of several per-prompt quantities is smallest in magnitude, said only where paired CIs support it."""

from __future__ import annotations

import numpy as np

from intjax.bootstrap import paired_abs_mean_gaps


def smallest_abs_mean(values: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[int, bool, np.ndarray]:
    """(column with the smallest |mean|, whether every other column's paired 95% CI of the gap lies above 0,
    the gap CIs `[K, 2]`)."""
    values = np.asarray(values, np.float64)
    best = int(np.argmin(np.abs(values.mean(0))))
    cis = paired_abs_mean_gaps(values, best, n_boot, seed)
    others = [k for k in range(values.shape[1]) if k != best]
    return best, bool(all(cis[k, 0] > 0 for k in others)), cis
