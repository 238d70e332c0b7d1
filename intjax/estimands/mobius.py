"""Exact interactions: Möbius (Harsanyi) coefficients of f on the vertices of [0,1]^n.

    INT_T = Σ_{U ⊆ T} (−1)^{|T|−|U|} f(1_U)       (INT_{i} = NIE_i, INT_∅ = f(0))

Every needed f(1_U) is evaluated once and shared by all supersets (Σ_{j≤k} C(n,j)
patched runs for all orders ≤ k), and the alternating sums are accumulated in
float64.
"""

from __future__ import annotations

import itertools
from typing import Iterable, Sequence

import numpy as np

from intjax.errors import InputError
from intjax.estimands.game import Game

Subset = tuple[int, ...]


def subsets_up_to(n: int, k: int) -> list[Subset]:
    """All subsets of range(n) with at most k members, by size then lexicographically."""
    return [s for j in range(min(k, n) + 1) for s in itertools.combinations(range(n), j)]


def n_subsets_up_to(n: int, k: int) -> int:
    """Σ_{j≤k} C(n, j): the patched runs exact interactions up to order k need."""
    from math import comb

    return sum(comb(n, j) for j in range(min(k, n) + 1))


def downward_closure(sets: Iterable[Iterable[int]]) -> list[Subset]:
    """Every subset of every given set (the empty set included), sorted by size."""
    out: set[Subset] = set()
    for s in sets:
        s = tuple(sorted(set(s)))
        for j in range(len(s) + 1):
            out.update(itertools.combinations(s, j))
    return sorted(out, key=lambda u: (len(u), u))


def subset_masks(subsets: Sequence[Subset], n: int) -> np.ndarray:
    """0/1 masks `[S, n]` of the given subsets."""
    masks = np.zeros((len(subsets), n))
    for row, s in enumerate(subsets):
        masks[row, list(s)] = 1
    return masks


def vertex_values(game: Game, subsets: Sequence[Subset]) -> dict[Subset, np.ndarray]:
    """f(1_U) for each subset U, each evaluated once: {U: [P] float64}."""
    for s in subsets:
        if s and (min(s) < 0 or max(s) >= game.n_components):
            raise InputError(f"set {s} names a component outside 0..{game.n_components - 1}")
    vals = game.values(subset_masks(subsets, game.n_components))
    return {s: vals[i] for i, s in enumerate(subsets)}


def mobius(values: dict[Subset, np.ndarray], T: Subset) -> np.ndarray:
    """INT_T from f(1_U) for every U ⊆ T (float64 accumulation), `[P]`."""
    total = np.zeros_like(np.asarray(values[()], np.float64))
    for j in range(len(T) + 1):
        sign = -1.0 if (len(T) - j) % 2 else 1.0
        for U in itertools.combinations(T, j):
            total += sign * values[U]
    return total


def interactions(
    game: Game, order: int = 2, sets: Iterable[Iterable[int]] | None = None
) -> tuple[list[Subset], np.ndarray, dict[Subset, np.ndarray]]:
    """Exact INT_T for all T with 2 ≤ |T| ≤ order (or for the given `sets`).

    Returns (the sets T, INT values `[P, n_sets]` float64, the vertex values used).
    """
    if sets is None:
        if order < 2:
            raise InputError(f"interaction order must be at least 2, got {order}")
        needed = subsets_up_to(game.n_components, order)
        targets = [s for s in needed if len(s) >= 2]
    else:
        targets = [tuple(sorted(set(s))) for s in sets]
        needed = downward_closure(targets)
    values = vertex_values(game, needed)
    ints = np.stack([mobius(values, T) for T in targets], axis=1) if targets else np.zeros((0, 0))
    return targets, ints, values


def fast_mobius(f: np.ndarray) -> np.ndarray:
    """Möbius transform of f over the full lattice in O(n·2^n).

    `f[..., b]` is f(1_U) where bit i of b says whether i ∈ U (last axis 2^n);
    returns INT with the same indexing, in float64.
    """
    f = np.array(f, np.float64)
    size = f.shape[-1]
    n = size.bit_length() - 1
    if 1 << n != size:
        raise InputError(f"the last axis must have 2^n entries, got {size}")
    lead = f.shape[:-1]
    for i in range(n):  # subtract the value without i from the value with i
        g = f.reshape(*lead, size >> (i + 1), 2, 1 << i)
        g[..., 1, :] -= g[..., 0, :]
    return f


def lattice_masks(n: int) -> np.ndarray:
    """All 2^n vertex masks `[2^n, n]`, row b holding the bits of b."""
    b = np.arange(1 << n)
    return ((b[:, None] >> np.arange(n)[None]) & 1).astype(np.float64)


def full_lattice_interactions(game: Game) -> np.ndarray:
    """INT over all 2^n subsets `[P, 2^n]` (bit-indexed; n up to about 20)."""
    n = game.n_components
    if n > 24:
        raise InputError(f"the full lattice of {n} components has 2^{n} vertices; use order= instead")
    return fast_mobius(game.values(lattice_masks(n)).T)


def set_name(T: Subset, names: Sequence[str]) -> str:
    """Item name of an interaction: its members' names joined with commas."""
    return ",".join(names[i] for i in T)
