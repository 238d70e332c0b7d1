"""How much of the gap between the single-patch sum and the joint effect is pairwise.

Over all n components, joint − Σ_i NIE_i = Σ_{|T|≥2} INT_T (Möbius inversion of
f(1_N) − f(0)). The pairwise part Σ_{|T|=2} INT_T needs every pair's vertex;
the rest, higher = gap − pairwise, needs nothing more. With more pairs than
`max_pairs` (GPT-2 small's 144 heads have 10,296), a uniform sample of pairs
without replacement estimates the pairwise sum as C(n, 2) × the sample mean;
its CI then resamples both the sampled pairs and the prompts (two-level
bootstrap), so it covers the sampling of pairs as well as of prompts.
"""

from __future__ import annotations

import dataclasses
import itertools
from math import comb

import numpy as np

from intjax import bootstrap
from intjax.errors import InputError
from intjax.estimands.game import Game

CI = tuple[float, float]


@dataclasses.dataclass(frozen=True)
class OrderSplit:
    """joint − Σ NIE over all components, split into its pairwise and higher-order parts (means over prompts)."""

    sum_nie: float
    joint: float
    gap: float  # joint − Σ NIE = every INT of order ≥ 2
    pairwise: float  # Σ over pairs of INT (exact, or estimated from sampled pairs)
    higher: float  # gap − pairwise
    gap_ci: CI
    pairwise_ci: CI
    higher_ci: CI
    n_pairs: int  # C(n, 2)
    n_pairs_evaluated: int  # all of them when exact
    level: float = 0.95  # coverage of the CIs

    @property
    def exact(self) -> bool:
        """Whether every pair was evaluated."""
        return self.n_pairs_evaluated == self.n_pairs


def order_split(game: Game, *, max_pairs: int = 2000, n_boot: int = 2000, seed: int = 0,
                level: float = 0.95) -> OrderSplit:
    """The split of joint − Σ NIE into pairwise and higher orders, with bootstrap CIs (module doc)."""
    n = game.n_components
    if n < 2:
        raise InputError(f"the pairwise split needs at least 2 components, got {n}")
    all_pairs = comb(n, 2)
    rng = np.random.default_rng(seed)
    pairs = list(itertools.combinations(range(n), 2))
    if all_pairs > max_pairs:
        pairs = [pairs[i] for i in np.sort(rng.choice(all_pairs, size=max_pairs, replace=False))]
    masks = np.zeros((2 + n + len(pairs), n))
    masks[1] = 1
    masks[2: 2 + n] = np.eye(n)
    for row, (i, j) in enumerate(pairs):
        masks[2 + n + row, [i, j]] = 1
    f = np.asarray(game.values(masks), np.float64)  # [M, P]
    base, everything, singles, pair_vals = f[0], f[1], f[2: 2 + n], f[2 + n:]
    nie = singles - base  # [n, P]
    p_idx = np.array(pairs)
    ints = pair_vals - singles[p_idx[:, 0]] - singles[p_idx[:, 1]] + base  # [S, P]
    gap_p = (everything - base) - nie.sum(0)  # [P]
    scale = all_pairs / len(pairs)
    pairwise_p = scale * ints.sum(0)
    P, S = gap_p.shape[0], len(pairs)
    boot_prompts = bootstrap.draws(P, n_boot, rng)
    exact = S == all_pairs
    boot_pairs = None if exact else bootstrap.draws(S, n_boot, rng)  # pairs resampled too when sampled
    gap_b = gap_p[boot_prompts].mean(1)
    if exact:
        pair_b = pairwise_p[boot_prompts].mean(1)
    else:
        pair_b = np.array([scale * ints[bp][:, bt].sum(0).mean() for bp, bt in zip(boot_pairs, boot_prompts)])
    higher_b = gap_b - pair_b

    def ci(x):
        lo, hi = bootstrap.percentile_ci(x, level)
        return float(lo), float(hi)

    return OrderSplit(
        sum_nie=float(nie.sum(0).mean()), joint=float((everything - base).mean()), gap=float(gap_p.mean()),
        pairwise=float(pairwise_p.mean()), higher=float((gap_p - pairwise_p).mean()),
        gap_ci=ci(gap_b), pairwise_ci=ci(pair_b), higher_ci=ci(higher_b), n_pairs=all_pairs,
        n_pairs_evaluated=S, level=level,
    )


def order_split_sentence(split: OrderSplit, direction: str, what: str = "heads") -> str:
    """The split in words: each part with its CI, and whether it can be told apart from 0."""
    def part(name, x, ci):
        zero = ci[0] <= 0 <= ci[1]
        return f"{name} {x:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]" + (" (cannot be told apart from 0)" if zero else "")

    how = (f"exact over all {split.n_pairs} pairs" if split.exact else
           f"estimated from {split.n_pairs_evaluated} of the {split.n_pairs} pairs, sampled uniformly; the CI "
           "covers the sampling of pairs and of prompts")
    return (f"{direction}: joint effect of all {what} {split.joint:+.3f} against Σ NIE {split.sum_nie:+.3f}; of the "
            f"gap {split.gap:+.3f} [{split.gap_ci[0]:+.3f}, {split.gap_ci[1]:+.3f}], "
            f"{part('pairwise interactions carry', split.pairwise, split.pairwise_ci)} and "
            f"{part('higher orders', split.higher, split.higher_ci)} ({how}; {split.level:.0%} bootstrap CIs).")
