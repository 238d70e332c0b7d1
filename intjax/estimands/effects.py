"""Single-component effects read off f: NIE, total effect, context effects."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from intjax.errors import InputError
from intjax.estimands.game import Game


def nie(game: Game) -> np.ndarray:
    """NIE_i = f(e_i) − f(0) for every component and prompt, `[P, n]` float64.

    The direction (noising or denoising) is the game's: effects are always
    f(patched) − f(base).
    """
    n = game.n_components
    vals = game.values(np.concatenate([np.zeros((1, n)), np.eye(n)]))
    return (vals[1:] - vals[:1]).T


def total_effect(metric_clean: np.ndarray, metric_corrupted: np.ndarray) -> np.ndarray:
    """TE = y(x') − y(x), `[P]`."""
    return np.asarray(metric_corrupted, np.float64) - np.asarray(metric_clean, np.float64)


def context_effects(game: Game, context: Iterable[int]) -> np.ndarray:
    """Δ_i(C) = f(1_{C∪i}) − f(1_{C∖i}) for every component i, `[P, n]` float64.

    For i outside C this is the effect of patching i when C is already patched;
    for i in C, the effect of i given the rest of C.
    """
    n = game.n_components
    C = sorted(set(context))
    if any(i < 0 or i >= n for i in C):
        raise InputError(f"context {C} names a component outside 0..{n - 1}")
    base = np.zeros(n)
    base[C] = 1
    with_i = np.repeat(base[None], n, axis=0)
    without_i = with_i.copy()
    with_i[np.arange(n), np.arange(n)] = 1
    without_i[np.arange(n), np.arange(n)] = 0
    vals = game.values(np.concatenate([with_i, without_i]))
    return (vals[:n] - vals[n:]).T
