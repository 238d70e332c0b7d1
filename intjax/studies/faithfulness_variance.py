"""How much of faithfulness's spread do interactions explain? Shares, R² and two expansions.

Setup (as in `intjax.ioi.faithfulness`): classes N = {0..k−1}; g(S) is the
metric keeping the classes in S (everything else ablated), bit-indexed
(bit i of the index: class i kept); F(C) = g(N). Both expansions below are exact
identities on any g; they split the same difference g(N) − g(∅) differently.

Knock-in (around the empty circuit; `fast_mobius`, what `FaithfulnessStudy.terms` holds)::

    m(T)  = Σ_{U⊆T} (−1)^{|T|−|U|} g(U)              (Möbius of g over kept classes)
    g(S)  = Σ_{T⊆S} m(T)
    F(C)  = g(∅) + Σ_i m(i) + Σ_{i<j} m(ij) + Σ_{|T|≥3} m(T)
    m(i)  = g({i}) − g(∅)                             class i added alone to the ablated model
    m(ij) = g(ij) − g(i) − g(j) + g(∅)

Knock-out (around the full circuit; `knockout_terms`, the dual / co-Möbius expansion)::

    L(U)   = g(N) − g(N∖U)                            the loss from knocking U out of the circuit
    KO(T)  = Σ_{U⊆T} (−1)^{|T|−|U|} L(U),  T ≠ ∅      (Möbius of L over removed classes)
           = (−1)^{|T|+1} Σ_{S⊇T} m(S)                 (the same, in knock-in terms)
    KO(∅) := g(∅)                                      (so that, as for m, Σ_T KO(T) = F(C))
    L(U)   = Σ_{∅≠T⊆U} KO(T)
    F(C)  = g(∅) + Σ_i KO(i) + Σ_{i<j} KO(ij) + Σ_{|T|≥3} KO(T)
    KO(i)  = g(N) − g(N∖i)                            what class i adds on top of all the others
    KO(ij) = L(ij) − L(i) − L(j)                      removing both costs more (+) or less (−)
           = g(N∖i) + g(N∖j) − g(N∖ij) − g(N)         than removing each alone

Parts, in both expansions: ablated = g(∅) (the same in both), main = Σ over
|T| = 1, pairwise = Σ over |T| = 2, higher = Σ over |T| ≥ 3; they sum to F(C)
exactly, and main + pairwise + higher = g(N) − g(∅) in both. The split between
main effects and interactions depends on the expansion point: a pure pairwise
synergy g(S) = d·[i∈S][j∈S] is INT = +d knock-in (m(ij) = d, mains 0) and INT = −d
knock-out (KO(ij) = −d, KO(i) = KO(j) = d). So there is no expansion-free
"share of the variance due to interactions".

Variance split (`variance_table`): across resamples r, with F_r = Σ_part p_r,
Var(F) = Σ_part Cov(p, F) exactly, so share(p) = Cov(p, F)/Var(F) sums to 1.
A share is not an R²: share(p) = corr(p, F)·SD(p)/SD(F), and when parts with SDs
several times the total's cancel, shares are large (above 1 or negative) while
corr(p, F)² — the R² of F on p alone — is small. Every moment uses ddof = 0
(population); shares and correlations do not depend on it. CIs are bootstrap
percentile intervals: resamples (or whole clusters, e.g. a resample across every
ablation) drawn with replacement, `n_boot` times, seeded.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from intjax import bootstrap
from intjax.errors import InputError
from intjax.estimands.mobius import fast_mobius

SHARE_TOL = 1e-9  # shares within this of 0 are rounding (e.g. a constant INT's alternating sums)
ROUNDING_SD = 1e-10  # × the largest |value|: an SD at or below this is rounding (the part is constant)
MIN_RESAMPLES = 8  # below this many resamples (clusters) the shares are declared unreadable
BASE_PARTS = ("ablated", "main", "pairwise", "higher")
COMBINED = {"INT": ("pairwise", "higher")}  # rows of sums of base parts (not in the covariance matrix)
EXPANSIONS = ("knock-in", "knock-out")


# ---------------------------------------------------------------------------
# The two expansions


def _check_lattice(x: np.ndarray) -> int:
    size = x.shape[-1]
    k = size.bit_length() - 1
    if x.ndim == 0 or 1 << k != size:
        raise InputError(f"the last axis must hold g(S) for all 2^k kept sets, got {size} entries")
    return k


def fast_zeta(terms: np.ndarray) -> np.ndarray:
    """Sum over subsets (the inverse of `fast_mobius`): g(S) = Σ_{T⊆S} m(T), bit-indexed, float64."""
    f = np.array(terms, np.float64)
    k = _check_lattice(f)
    size, lead = f.shape[-1], f.shape[:-1]
    for i in range(k):
        g = f.reshape(*lead, size >> (i + 1), 2, 1 << i)
        g[..., 1, :] += g[..., 0, :]
    return f


def knockin_terms(kept: np.ndarray) -> np.ndarray:
    """m(T) over kept classes, `[..., 2^k]` (= `fast_mobius`; m(∅) = g(∅))."""
    _check_lattice(np.asarray(kept))
    return fast_mobius(kept)


def knockout_terms(kept: np.ndarray) -> np.ndarray:
    """KO(T) over removed classes, `[..., 2^k]` from g(S) `[..., 2^k]` (see the module doc).

    Bit i of the index says class i is in T (here: removed from the full
    circuit). KO(∅) = g(∅), KO(T) for T ≠ ∅ is the Möbius coefficient of the
    knock-out loss L(U) = g(N) − g(N∖U); Σ_T KO(T) = g(N) = F(C).
    """
    kept = np.asarray(kept, np.float64)
    _check_lattice(kept)
    loss = kept[..., -1:] - kept[..., ::-1]  # L(U) = g(N) − g(N∖U): index of N∖U is (2^k − 1) − U
    out = fast_mobius(loss)
    out[..., 0] = kept[..., 0]
    return out


def order_parts(terms: np.ndarray) -> dict[str, np.ndarray]:
    """The terms `[..., 2^k]` of either expansion summed by order: ablated (entry ∅), main, pairwise, higher."""
    terms = np.asarray(terms, np.float64)
    _check_lattice(terms)
    sizes = np.array([bin(b).count("1") for b in range(terms.shape[-1])])
    return {"ablated": terms[..., 0], "main": terms[..., sizes == 1].sum(-1),
            "pairwise": terms[..., sizes == 2].sum(-1), "higher": terms[..., sizes >= 3].sum(-1)}


# ---------------------------------------------------------------------------
# Variance table


@dataclasses.dataclass(frozen=True)
class VarianceTable:
    """Per part: Var, SD, Cov with the total, share = Cov/Var(total), corr, R² alone, bootstrap CIs.

    `parts` lists the base parts (which sum to the total; the covariance matrix
    is over them) then the combined rows (e.g. INT = pairwise + higher).
    """

    parts: tuple[str, ...]
    base: tuple[str, ...]
    n: int  # observations
    n_resamples: int  # independent units the bootstrap draws (resamples, or clusters)
    var_total: float
    sd_total: float
    var: dict[str, float]
    sd: dict[str, float]
    cov: dict[str, float]  # Cov(part, total)
    share: dict[str, float]  # Cov(part, total) / Var(total); base shares sum to 1
    corr: dict[str, float]  # corr(part, total); nan for a constant part (SD at the rounding floor)
    r2: dict[str, float]  # R² of total on this part alone = corr²
    cov_matrix: np.ndarray  # [m, m] covariance of the base parts (ddof 0); row sums = cov
    share_ci: dict[str, tuple[float, float]]
    r2_ci: dict[str, tuple[float, float]]
    boot_share: dict[str, np.ndarray]  # [n_boot] bootstrap draws of each share (for paired comparisons)
    level: float
    n_boot: int
    seed: int
    too_few_resamples: bool  # n_resamples < MIN_RESAMPLES: the shares are too noisy to read
    rounding_sd: float  # SDs at or below this are rounding: the part (or total) is constant

    def constant(self, part: str) -> bool:
        """Whether the part does not vary across resamples beyond rounding (share 0, no corr or R²)."""
        return self.sd[part] <= self.rounding_sd

    def readable(self, part: str) -> bool:
        """Whether the share's CI excludes 0, by more than rounding (never with too few resamples)."""
        lo, hi = self.share_ci[part]
        return (not self.too_few_resamples) and bool(lo > SHARE_TOL or hi < -SHARE_TOL)

    def sd_ratio(self, part: str) -> float:
        """SD(part) / SD(total)."""
        return self.sd[part] / self.sd_total if self.sd_total > 0 else float("nan")

    def verdict(self, part: str) -> str:
        """A clause on the part's share: its CI and whether it excludes 0."""
        if self.too_few_resamples:
            return (f"{self.n_resamples} resamples are too few (fewer than {MIN_RESAMPLES}) to read a variance "
                    "share")
        lo, hi = self.share_ci[part]
        pct = f"{self.level:.0%}"
        if self.readable(part):
            return f"its {pct} CI [{lo:+.0%}, {hi:+.0%}] excludes 0"
        return f"its {pct} CI [{lo:+.0%}, {hi:+.0%}] includes 0: it cannot be told apart from 0"


def _moments(total: np.ndarray, parts: np.ndarray):
    """total [..., n], parts [m, ..., n] -> var_total [...], cov [m, ...], var [m, ...] (ddof 0)."""
    tc = total - total.mean(-1, keepdims=True)
    pc = parts - parts.mean(-1, keepdims=True)
    return (tc * tc).mean(-1), (pc * tc).mean(-1), (pc * pc).mean(-1)


def _ratios(var_total, cov, var, floor):
    """share and corr. A variance at or below floor² is rounding: such a part is constant (share 0, corr
    nan); a constant total has no variance to split (share nan)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(var_total > floor**2, np.where(var > floor**2, cov / var_total, 0.0), np.nan)
        corr = np.where((var > floor**2) & (var_total > floor**2), cov / np.sqrt(var * var_total), np.nan)
    return share, np.clip(corr, -1, 1)


def variance_table(total: np.ndarray, parts: dict[str, np.ndarray], n_boot: int = 2000, seed: int = 0,
                   level: float = 0.95, *, combine: Optional[dict[str, Sequence[str]]] = None,
                   clusters: Optional[np.ndarray] = None) -> VarianceTable:
    """The variance of `total` [R] split over `parts` (which must sum to it), with bootstrap CIs.

    `combine` adds rows that are sums of base parts (default: INT = pairwise +
    higher, where both exist). `clusters` [R] (optional) makes the bootstrap
    draw whole clusters (e.g. one resample under every ablation) instead of rows;
    `too_few_resamples` then counts clusters.
    """
    total = np.asarray(total, np.float64).ravel()
    base = tuple(parts)
    if not base:
        raise InputError("no parts to split the variance over")
    P = np.stack([np.asarray(parts[p], np.float64).ravel() for p in base])
    if P.shape[1] != total.shape[0]:
        raise InputError(f"parts have {P.shape[1]} entries, the total {total.shape[0]}; one entry per resample")
    if clusters is not None and np.shape(clusters) != total.shape:
        raise InputError(f"clusters has shape {np.shape(clusters)}; it needs one label per entry {total.shape}")
    if total.shape[0] < 2:
        raise InputError("a variance needs at least 2 resamples")
    magnitude = np.abs(total).max() + np.abs(P).max()
    if not np.allclose(P.sum(0), total, rtol=1e-9, atol=1e-9 * (magnitude + 1)):
        raise InputError("the parts do not sum to the total; the variance split would not be exact")
    if not 0 < level < 1:
        raise InputError(f"level={level}: a CI level lies strictly between 0 and 1")
    if combine is None:
        combine = {k: v for k, v in COMBINED.items() if all(p in base for p in v)}
    for name, members in combine.items():
        if name in base or not members or any(p not in base for p in members):
            raise InputError(f"combined part {name!r} must be a new name summing base parts {base}")
    names = base + tuple(combine)
    sums = [P[[base.index(p) for p in m]].sum(0) for m in combine.values()]
    rows = np.concatenate([P, np.stack(sums)]) if sums else P

    floor = ROUNDING_SD * magnitude  # SDs at or below this are rounding: such a part is constant
    var_total, cov, var = _moments(total, rows)
    share, corr = _ratios(var_total, cov, var, floor)
    pc = P - P.mean(1, keepdims=True)
    cov_matrix = pc @ pc.T / P.shape[1]

    idx, n_units = ((bootstrap.draws(total.shape[0], n_boot, seed), total.shape[0]) if clusters is None else
                    bootstrap.cluster_draws(clusters, n_boot, seed))
    b_var_total, b_cov, b_var = _moments(total[idx], rows[:, idx])  # [B], [m, B], [m, B]
    b_share, b_corr = _ratios(b_var_total, b_cov, b_var, floor)
    q = [(1 - level) / 2, (1 + level) / 2]

    def ci(draws):
        draws = draws[np.isfinite(draws)]
        return tuple(float(x) for x in np.quantile(draws, q)) if len(draws) else (float("nan"), float("nan"))

    sd_total = float(np.sqrt(var_total)) if var_total > floor**2 else 0.0
    return VarianceTable(
        parts=names, base=base, n=int(total.shape[0]), n_resamples=int(n_units), var_total=float(var_total),
        sd_total=sd_total,
        var={p: float(var[i]) for i, p in enumerate(names)},
        sd={p: float(np.sqrt(var[i])) for i, p in enumerate(names)},
        cov={p: float(cov[i]) for i, p in enumerate(names)},
        share={p: float(share[i]) for i, p in enumerate(names)},
        corr={p: float(corr[i]) for i, p in enumerate(names)},
        r2={p: float(corr[i] ** 2) for i, p in enumerate(names)},
        cov_matrix=cov_matrix,
        share_ci={p: ci(b_share[i]) for i, p in enumerate(names)},
        r2_ci={p: ci(b_corr[i] ** 2) for i, p in enumerate(names)},
        boot_share={p: b_share[i] for i, p in enumerate(names)},
        level=level, n_boot=n_boot, seed=seed, too_few_resamples=n_units < MIN_RESAMPLES,
        rounding_sd=float(floor))


def paired_difference_ci(a: VarianceTable, b: VarianceTable, part: str) -> tuple[float, float, float]:
    """share_a − share_b of `part`, with a percentile CI from the same bootstrap draws.

    Valid only when both tables were bootstrapped over the same resamples with
    the same seed (as `faithfulness_variance` does for its two expansions).
    """
    if (a.n, a.n_resamples, a.n_boot, a.seed, a.level) != (b.n, b.n_resamples, b.n_boot, b.seed, b.level):
        raise InputError("the two tables were not bootstrapped on the same draws; a paired CI needs them to be")
    d = a.boot_share[part] - b.boot_share[part]
    d = d[np.isfinite(d)]
    q = [(1 - a.level) / 2, (1 + a.level) / 2]
    lo, hi = np.quantile(d, q) if len(d) else (float("nan"), float("nan"))
    return a.share[part] - b.share[part], float(lo), float(hi)


# ---------------------------------------------------------------------------
# On a FaithfulnessStudy


def study_kept(study) -> np.ndarray:
    """g(S)/F(M) per ablation and resample `[A, R, 2^k]`, recovered from the study's knock-in terms.

    The study stores the prompt-mean Möbius terms over the prompt-mean F(M);
    both operations are linear, so summing over subsets gives mean g(S) / mean F(M).
    """
    return fast_zeta(study.terms)


def faithfulness_variance(study, ablation: str | None = None, n_boot: int = 2000, seed: int = 0,
                          level: float = 0.95) -> dict[str, VarianceTable]:
    """{"knock-in": …, "knock-out": …}: the faithfulness variance across resamples split over
    ablated, main, pairwise, higher (and INT = pairwise + higher) in each expansion.

    `ablation` None pools every ablation and resample; its bootstrap then draws
    whole resamples (every ablation of a resample together). Both tables use the
    same draws, so `paired_difference_ci` compares them.
    """
    kept = study_kept(study)  # [A, R, 2^k]
    if ablation is None:
        A, R = study.faithfulness.shape
        sel, reported = kept.reshape(A * R, -1), study.faithfulness.ravel()
        clusters = np.tile(np.arange(R), A)
    else:
        if ablation not in study.ablations:
            raise InputError(f"ablation {ablation!r} is not in this study ({', '.join(study.ablations)})")
        a = study.ablations.index(ablation)
        sel, reported, clusters = kept[a], study.faithfulness[a], None
    # F from the terms themselves, so the parts sum to it exactly; the study's own F divides by one F(M) per
    # resample, the terms by each ablation's run of it (equal up to float32 rounding)
    total = sel[:, -1]
    if not np.allclose(total, reported, rtol=1e-5, atol=1e-8):
        raise InputError("the study's terms do not sum to its faithfulness; the decomposition is not exact")
    out = {}
    for name, terms in (("knock-in", knockin_terms(sel)), ("knock-out", knockout_terms(sel))):
        out[name] = variance_table(total, order_parts(terms), n_boot=n_boot, seed=seed, level=level,
                                   clusters=clusters)
    return out
