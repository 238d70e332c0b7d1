"""Wang et al.'s completeness and minimality of a circuit, computed exactly through interactions.

F(X) is the mean metric with every head outside X ablated (faithfulness.py's
ablations). M = every head, C = the circuit, O = everything outside C. Take the
circuit heads (or classes) as units 0..n−1 and the outside heads as units
n..n+m−1, and let h(A) be the metric with the units of A ablated: F(M∖K) = h(K),
F(C∖K) = h(K ∪ O). With I_T the Möbius terms of h (h(A) = Σ_{T⊆A} I_T), the
incompleteness d(K) = F(C∖K) − F(M∖K) of K ⊆ C is exactly

    d(K) = d(∅) + Σ_{o∈O} Δ_o(K) + R(K),
    Δ_o(K) = Σ_{∅≠J⊆K} I_{J∪{o}} = [h(K∪{o}) − h(K)] − [h({o}) − h(∅)],
    R(K)   = Σ_{∅≠J⊆K} Σ_{Q⊆O, |Q|≥2} I_{J∪Q},

d(∅) = F(C) − F(M) being the circuit's own gap: everything K adds to it is an
interaction between K and the heads outside the circuit, Δ_o(K) the part outside
head o carries alone (how much o's ablation effect changes once K is ablated)
and R(K) the part outside heads carry only jointly. Over the subsets of C,
d(K) − d(∅) = Σ_{∅≠J⊆K} D_J with D the Möbius transform of d over circuit units:
the single terms D_v are what a search adding one head at a time sees first, the
terms |J| ≥ 2 are what only a joint removal shows. Wang et al.'s greedy K adds,
one at a time, the head that maximises |d|; with at most `max_exhaustive` units
every K is evaluated once (h(K) and h(K ∪ O) in one sweep), so the worst K is exact.

Minimality of v ∈ C: max over K ⊆ C∖{v} of |F(C∖(K∪{v})) − F(C∖K)| as a share of
|F(C)|; the exhaustive lattice h(K ∪ O) above holds every candidate at no extra cost.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from typing import Any, Optional, Sequence

import numpy as np

from intjax.errors import InputError
from intjax.estimands.game import Game
from intjax.estimands.mobius import fast_mobius
from intjax.model.protocol import PatchableModel
from intjax.patching.components import parse_components
from intjax.patching.problem import build_problem
from intjax.sweeps.context import SweepContext
from intjax.ioi.faithfulness import ABLATIONS, circuit_units
from intjax.ioi.task import IOIPrompts, MeanSource, mean_source
from intjax import bootstrap
from intjax.bootstrap import MeanCI, abs_mean_ci, max_abs_mean_ci, mean_ci, simultaneous_bound

MAX_EXHAUSTIVE = 16  # circuit units up to which every K ⊆ C is evaluated (2^(n+1) vertices)
MINIMALITY_THRESHOLD = 0.05  # heads whose best minimality share lies below this are flagged
N_BOOT = 1000


class CircuitGame:
    """A game over n circuit units then m outside units (mask 1 = ablated), with each vertex
    h(A) evaluated once (memoised by its bit set) and its per-prompt values kept."""

    def __init__(self, game: Game, circuit_names: Sequence[str], outside_names: Sequence[str],
                 classes: Optional[dict[str, str]] = None, ablation: str = "", unit: str = "head"):
        n, m = len(circuit_names), len(outside_names)
        if n == 0:
            raise InputError("the circuit is empty: give at least one circuit head")
        if m == 0:
            raise InputError("nothing lies outside the circuit, so completeness is trivially exact; "
                             "give a circuit smaller than the whole model")
        if game.n_components != n + m:
            raise InputError(f"the game has {game.n_components} components; expected {n} circuit units + "
                             f"{m} outside units")
        self.game, self.n, self.m = game, n, m
        self.circuit_names, self.outside_names = tuple(circuit_names), tuple(outside_names)
        self.classes = dict(classes or {})  # unit name -> class name
        self.ablation, self.unit = ablation, unit
        self._memo: dict[int, np.ndarray] = {}
        self.outside_bits = ((1 << m) - 1) << n

    def h(self, bits: Sequence[int]) -> np.ndarray:
        """h(A) per prompt for each bit set A, `[len(bits), P]`; vertices not yet known are swept together."""
        missing = list(dict.fromkeys(b for b in bits if b not in self._memo))
        if missing:
            idx = np.arange(self.n + self.m)
            masks = ((np.asarray(missing, dtype=object)[:, None] >> idx[None]) & 1).astype(np.float64)
            for b, v in zip(missing, self.game.values(masks)):
                self._memo[b] = np.asarray(v, np.float64)
        return np.stack([self._memo[b] for b in bits])

    @property
    def n_vertices(self) -> int:
        """Distinct vertices evaluated so far."""
        return len(self._memo)

    def index(self, names: Sequence[str]) -> tuple[int, ...]:
        """The unit indices of circuit units `names`, refusing names outside the circuit."""
        unknown = [x for x in names if x not in self.circuit_names]
        if unknown:
            raise InputError(f"{unknown} are not units of the circuit ({', '.join(self.circuit_names)}); "
                             "K must be a subset of the circuit")
        return tuple(sorted(self.circuit_names.index(x) for x in names))

    def sides(self, K: Sequence[tuple[int, ...]]) -> tuple[np.ndarray, np.ndarray]:
        """(F(C∖K), F(M∖K)) per prompt for each K, `[P, len(K)]` each."""
        kb = [_bits(k) for k in K]
        vals = self.h([b | self.outside_bits for b in kb] + kb)
        return vals[: len(kb)].T, vals[len(kb):].T

    def name(self, K: Sequence[int]) -> str:
        """K in words: its members joined with '+', or ∅."""
        return "+".join(self.circuit_names[i] for i in K) or "∅"


def _bits(K: Sequence[int]) -> int:
    return sum(1 << i for i in K)


def _members(b: int, n: int) -> tuple[int, ...]:
    return tuple(i for i in range(n) if b >> i & 1)


@dataclasses.dataclass(frozen=True)
class OutsideSplit:
    """d(K) = d(∅) + Σ_o Δ_o(K) + R(K) for one K, per prompt (see the module doc)."""

    K: tuple[int, ...]
    name: str
    total: np.ndarray  # [P] d(K) = F(C∖K) − F(M∖K)
    empty: np.ndarray  # [P] d(∅) = F(C) − F(M)
    outside: np.ndarray  # [P, m] Δ_o(K): the interactions between K and outside unit o alone
    joint: np.ndarray  # [P] R(K): the interactions between K and two or more outside units together
    outside_names: tuple[str, ...]

    def ranked(self) -> list[int]:
        """Outside units by |mean Δ_o(K)|, largest first."""
        return [int(i) for i in np.argsort(-np.abs(self.outside.mean(0)), kind="stable")]


@dataclasses.dataclass(frozen=True)
class SizeRow:
    """Greedy against the exhaustive worst K of one size (means over prompts)."""

    k: int
    greedy: tuple[int, ...]
    greedy_value: tuple[float, float, float]  # mean d (signed), 95% bootstrap CI over prompts
    worst: Optional[tuple[int, ...]]  # None when the search is not exhaustive
    worst_value: Optional[tuple[float, float, float]]
    random_max: float  # the largest |mean d| among the random K of this size
    n_random: int

    @property
    def greedy_short(self) -> bool:
        """Whether the exhaustive worst K of this size beats greedy's K with the CIs of |d| apart."""
        return bool(self.worst_value is not None
                    and abs_bounds(self.greedy_value)[1] < abs_bounds(self.worst_value)[0])


def abs_bounds(value: tuple[float, float, float]) -> tuple[float, float]:
    """The range of |d| a signed (mean, low, high) allows: from 0 (if the CI holds 0) to max(|low|, |high|)."""
    _, lo, hi = value
    return (0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))), max(abs(lo), abs(hi))


@dataclasses.dataclass(frozen=True)
class Completeness:
    """Completeness of a circuit: F(C∖K) against F(M∖K) over many K, greedy against exhaustive worst K,
    and the interactions that carry the incompleteness."""

    circuit_names: tuple[str, ...]  # the n circuit units (heads, or classes when there are many heads)
    outside_names: tuple[str, ...]  # the m outside units
    unit: str  # "head" or "class"
    ablation: str
    sets: tuple[tuple[int, ...], ...]  # every K evaluated (unit indices), ∅ first
    origins: tuple[str, ...]  # per K: "empty", "greedy", "random", "exhaustive" (first that found it)
    circuit_side: np.ndarray  # [P, S] F(C∖K) per prompt
    model_side: np.ndarray  # [P, S] F(M∖K) per prompt
    greedy: tuple[tuple[int, ...], ...]  # greedy's K after 1, 2, … steps
    sizes: tuple[SizeRow, ...]
    lattice: Optional[np.ndarray]  # [P, 2^n] d(K) for every K (bit-indexed) when exhaustive
    lattice_terms: Optional[np.ndarray]  # [P, 2^n] Möbius of d over circuit units: D_J (D_∅ = d(∅))
    worst: tuple[int, ...]  # the K of largest |mean d| found (exhaustive when possible)
    worst_ci_reselected: Optional[tuple[float, float]]  # CI of max_K |mean d|, K re-chosen per resample
    simultaneous: float  # 95% bound on max_K |mean d(K) − true d(K)| over every K evaluated (max-type bootstrap)
    splits: tuple[OutsideSplit, ...]  # outside decomposition: the worst K; where greedy falls furthest behind,
    # that size's worst K and greedy's K
    n_vertices: int
    seconds: float
    n_boot: int = N_BOOT  # the bootstrap draws of every CI of d(K), so one K has one CI everywhere
    seed: int = 0

    @property
    def exhaustive(self) -> bool:
        """Whether every K ⊆ C was evaluated."""
        return self.lattice is not None

    @property
    def incomplete(self) -> bool:
        """Whether the worst |mean d| exceeds the simultaneous bound: some K is incomplete, selection included."""
        return bool(abs(self.incompleteness[:, self.sets.index(self.worst)].mean()) > self.simultaneous)

    @property
    def incompleteness(self) -> np.ndarray:
        """d(K) = F(C∖K) − F(M∖K) per prompt, `[P, S]`."""
        return self.circuit_side - self.model_side

    def value(self, K: Sequence[int]) -> MeanCI:
        """mean d(K) (signed) with its 95% bootstrap CI over prompts: `.mean`, `.low`, `.high`."""
        return mean_ci(self.incompleteness[:, self.sets.index(tuple(sorted(K)))], self.n_boot, self.seed)

    def name(self, K: Sequence[int]) -> str:
        """K in words: its members joined with '+', or ∅."""
        return "+".join(self.circuit_names[i] for i in K) or "∅"

    def single_and_joint(self, K: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """d(K) − d(∅) split into the single-unit terms Σ_{v∈K} D_v and the interaction terms Σ_{|J|≥2} D_J,
        per prompt (exhaustive only)."""
        if self.lattice_terms is None:
            raise InputError("the split over circuit units needs the exhaustive lattice (at most "
                             f"{MAX_EXHAUSTIVE} units); pass fewer units")
        b = _bits(K)
        sub = [s for s in range(1, 1 << len(self.circuit_names)) if s & b == s]
        single = sum(self.lattice_terms[:, s] for s in sub if bin(s).count("1") == 1)
        joint = sum((self.lattice_terms[:, s] for s in sub if bin(s).count("1") >= 2),
                    np.zeros(len(self.lattice_terms)))
        return np.asarray(single), joint

    def top_terms(self, K: Sequence[int], limit: int = 3) -> list[tuple[tuple[int, ...], float]]:
        """The largest interaction terms D_J (|J| ≥ 2, J ⊆ K) by |mean|, with their means."""
        if self.lattice_terms is None:
            return []
        b = _bits(K)
        n = len(self.circuit_names)
        terms = [(_members(s, n), float(self.lattice_terms[:, s].mean())) for s in range(1, 1 << n)
                 if s & b == s and bin(s).count("1") >= 2]
        return sorted(terms, key=lambda t: -abs(t[1]))[:limit]


def completeness(cg: CircuitGame, *, n_random: int = 8, greedy_steps: Optional[int] = None,
                 max_exhaustive: int = MAX_EXHAUSTIVE, seed: int = 0, n_boot: int = N_BOOT) -> Completeness:
    """Completeness of the circuit of `cg`: random K of each size, Wang et al.'s greedy K, the exhaustive worst
    K (n ≤ max_exhaustive), and the outside heads that carry the worst K's incompleteness."""
    t0 = time.perf_counter()
    n = cg.n
    steps = n if greedy_steps is None else min(greedy_steps, n)
    found: dict[tuple[int, ...], str] = {(): "empty"}
    lattice = terms = None
    if n <= max_exhaustive:
        all_k = [_members(b, n) for b in range(1 << n)]
        cs, ms = cg.sides(all_k)
        lattice = cs - ms
        terms = fast_mobius(lattice)
    greedy: list[tuple[int, ...]] = []
    K: tuple[int, ...] = ()
    for _ in range(steps):  # add the unit that makes |mean d| largest
        cands = [tuple(sorted(K + (v,))) for v in range(n) if v not in K]
        cs, ms = cg.sides(cands)
        K = cands[int(np.argmax(np.abs((cs - ms).mean(0))))]
        greedy.append(K)
        found.setdefault(K, "greedy")
    rng = np.random.default_rng(seed)
    random_sets: dict[int, list[tuple[int, ...]]] = {}
    for k in range(1, n + 1):
        if math.comb(n, k) <= n_random:
            picks = list(itertools.combinations(range(n), k))
        else:  # n_random distinct K of size k, uniformly
            drawn: dict[tuple[int, ...], None] = {}
            while len(drawn) < n_random:
                drawn[tuple(sorted(rng.choice(n, k, replace=False).tolist()))] = None
            picks = list(drawn)
        random_sets[k] = picks
        for s in picks:
            found.setdefault(s, "random")
    worst_by_size: dict[int, tuple[int, ...]] = {}
    if lattice is not None:
        means = np.abs(lattice.mean(0))
        for k in range(1, n + 1):
            cands = [b for b in range(1 << n) if bin(b).count("1") == k]
            worst_by_size[k] = _members(max(cands, key=lambda b: means[b]), n)
            found.setdefault(worst_by_size[k], "exhaustive")
    sets = tuple(found)
    cs, ms = cg.sides(sets)
    d = cs - ms
    counts = bootstrap.counts(d.shape[0], n_boot, seed)
    col = {s: j for j, s in enumerate(sets)}

    def val(s):
        return mean_ci(d[:, col[s]], n_boot, seed)

    rows = []
    for k in range(1, n + 1):
        g = greedy[k - 1] if k <= len(greedy) else None
        w = worst_by_size.get(k)
        rows.append(SizeRow(k, g or (), val(g) if g else (np.nan, np.nan, np.nan), w, val(w) if w else None,
                            float(max(abs(d[:, col[s]].mean()) for s in random_sets[k])), len(random_sets[k])))
    worst = max(sets[1:], key=lambda s: abs(d[:, col[s]].mean()))
    reselected = max_abs_mean_ci(lattice[:, 1:], counts) if lattice is not None else None
    bound = simultaneous_bound(lattice if lattice is not None else d, counts)
    # split the worst K, and at the size where greedy falls furthest behind, that size's worst and greedy K
    split_sets = [worst]
    behind = [r for r in rows if r.worst_value is not None and r.greedy]
    if behind:
        r = max(behind, key=lambda r: abs(r.worst_value[0]) - abs(r.greedy_value[0]))
        if abs(r.worst_value[0]) > abs(r.greedy_value[0]):
            split_sets += [r.worst, r.greedy]
    splits = tuple(outside_split(cg, s) for s in dict.fromkeys(split_sets))
    return Completeness(cg.circuit_names, cg.outside_names, cg.unit, cg.ablation, sets,
                        tuple(found[s] for s in sets), cs, ms, tuple(greedy), tuple(rows), lattice, terms, worst,
                        reselected, bound, splits, cg.n_vertices, time.perf_counter() - t0, n_boot, seed)


def outside_split(cg: CircuitGame, K: Sequence[int]) -> OutsideSplit:
    """d(K) = d(∅) + Σ_o Δ_o(K) + R(K) with Δ_o(K) = [h(K∪o) − h(K)] − [h(o) − h(∅)] (module doc)."""
    K = tuple(sorted(K))
    kb, n, m = _bits(K), cg.n, cg.m
    ob = [1 << (n + j) for j in range(m)]
    v = cg.h([kb, 0, kb | cg.outside_bits, cg.outside_bits] + [kb | o for o in ob] + ob)
    hK, h0, hKO, hO = v[:4]
    with_K, alone = v[4:4 + m], v[4 + m:]
    total, empty = hKO - hK, hO - h0
    outside = ((with_K - hK) - (alone - h0)).T
    return OutsideSplit(K, cg.name(K), total, empty, outside, total - empty - outside.sum(1), cg.outside_names)


@dataclasses.dataclass(frozen=True)
class Minimality:
    """Per circuit unit v: the K ⊆ C∖{v} for which removing v changes F(C∖K) most, as a share of F(C)."""

    names: tuple[str, ...]
    best: tuple[tuple[int, ...], ...]  # per unit: the K found
    change: np.ndarray  # [P, n] F(C∖(K∪{v})) − F(C∖K) at the best K
    circuit: np.ndarray  # [P] F(C)
    share: np.ndarray  # [n] |mean change| / |mean F(C)|
    share_ci: np.ndarray  # [n, 2] bootstrap 95% CI over prompts (K re-chosen per resample when exhaustive)
    at_empty: np.ndarray  # [n] the share at K = ∅ (v's own removal from the full circuit)
    threshold: float
    exhaustive: bool
    n_candidates: int  # K examined per unit
    seconds: float

    @property
    def flagged(self) -> list[int]:
        """Units whose best share lies below the threshold."""
        return [i for i, s in enumerate(self.share) if s < self.threshold]

    def confidently_flagged(self) -> list[int]:
        """Flagged units whose CI lies wholly below the threshold too."""
        return [i for i in self.flagged if self.share_ci[i, 1] < self.threshold]

    def unsettled(self) -> list[int]:
        """Units above the threshold whose CI reaches below it: the prompts do not settle whether they matter."""
        return [i for i in range(len(self.names)) if i not in self.flagged and self.share_ci[i, 0] < self.threshold]


def minimality(cg: CircuitGame, *, threshold: float = MINIMALITY_THRESHOLD, max_exhaustive: int = MAX_EXHAUSTIVE,
               greedy_steps: int = 3, seed: int = 0, n_boot: int = N_BOOT) -> Minimality:
    """Minimality of every circuit unit: max over K ⊆ C∖{v} of |F(C∖(K∪v)) − F(C∖K)| / |F(C)|, over every K
    (n ≤ max_exhaustive; the lattice is completeness's) or over ∅, C∖{v} and a greedy search."""
    if not 0 < threshold < 1:
        raise InputError(f"threshold={threshold}: give a share of F(C) between 0 and 1, e.g. 0.05")
    t0 = time.perf_counter()
    n, O = cg.n, cg.outside_bits
    exhaustive = n <= max_exhaustive
    circuit = cg.h([O])[0]
    if circuit.mean() == 0:
        raise InputError("F(C) is 0 on these prompts, so minimality (a share of F(C)) is undefined; use another "
                         "ablation or more prompts")
    counts = bootstrap.counts(len(circuit), n_boot, seed)
    best, change, share, ci, empty = [], [], [], [], []
    n_cand = 0
    for v in range(n):
        others = [i for i in range(n) if i != v]

        def diffs(Ks):
            vals = cg.h([_bits(K) | O for K in Ks] + [_bits(K) | (1 << v) | O for K in Ks])
            return (vals[len(Ks):] - vals[: len(Ks)]).T  # [P, len(Ks)]

        if exhaustive:
            Ks = [tuple(others[j] for j in _members(b, n - 1)) for b in range(1 << (n - 1))]
        else:
            Ks, K = [(), tuple(others)], ()
            for _ in range(min(greedy_steps, n - 1)):
                cands = [tuple(sorted(K + (u,))) for u in others if u not in K]
                K = cands[int(np.argmax(np.abs(diffs(cands).mean(0))))]
                Ks += cands
        Ks = list(dict.fromkeys(Ks))
        n_cand = max(n_cand, len(Ks))
        x = diffs(Ks)
        j = int(np.argmax(np.abs(x.mean(0))))
        best.append(Ks[j])
        change.append(x[:, j])
        point, lo, hi = abs_mean_ci(x[:, j], counts, scale=circuit)
        if exhaustive:
            lo, hi = max_abs_mean_ci(x, counts, scale=circuit)
        share.append(point)
        ci.append((lo, hi))
        empty.append(abs(x[:, Ks.index(())].mean()) / abs(circuit.mean()))
    return Minimality(cg.circuit_names, tuple(best), np.stack(change, 1), circuit, np.array(share), np.array(ci),
                      np.array(empty), threshold, exhaustive, n_cand, time.perf_counter() - t0)


def circuit_game(model: PatchableModel, tokenizer: Any, data: IOIPrompts, circuit: dict[str, Sequence[str]], *,
                 ablation: str = "mean", class_positions: Optional[dict[str, str]] = None,
                 reference_per_template: int = 8, seed: int = 0, unit: str = "auto",
                 max_exhaustive: int = MAX_EXHAUSTIVE, mean: Optional[MeanSource] = None,
                 sweeps: SweepContext = SweepContext(), desc: str = "completeness",
                 options: Optional[dict[str, Any]] = None) -> CircuitGame:
    """The completeness game of `circuit` on `data`: circuit heads (or classes, `unit="class"`, or with `auto`
    when there are more than max_exhaustive heads) then every outside head, ablated by `ablation`.

    With `class_positions`, circuit heads are units only at their class's position and the outside units
    include each circuit head's other positions (as circuit_units does). `mean`: the mean ablation's source
    when the run has built it (else built here from `tokenizer`); the sweeps run in `sweeps`, folder `ablation`,
    `options` joining their fingerprints.
    """
    if ablation not in ABLATIONS:
        raise InputError(f"unknown ablation {ablation!r}; choose from {list(ABLATIONS)}")
    if unit not in ("auto", "head", "class"):
        raise InputError(f"unknown unit {unit!r}; choose auto, head or class")
    if not any(circuit.values()):
        raise InputError("the circuit is empty: give at least one circuit head")
    units = circuit_units(circuit, model, class_positions)
    classes, rest = units[:-1], units[-1]
    n_heads = sum(len(c.members) for c in classes)
    if unit == "auto":
        unit = "head" if n_heads <= max_exhaustive else "class"
    if unit == "head":
        inner = [parse_components(m, model.config)[0] for c in classes for m in c.members]
        class_of = {x.name: c.name for c in classes for x in inner if x.name in c.members}
    else:
        inner, class_of = list(classes), {c.name: c.name for c in classes}
    outside = [parse_components(m, model.config)[0] for m in rest.members]
    if ablation != "mean":
        mean = MeanSource()
    elif mean is None:
        mean = mean_source(tokenizer, data, reference_per_template, seed=seed)
    problem = build_problem(model, data.prompts, [*inner, *outside], direction="noising",
                            source=ABLATIONS[ablation], reference=mean.reference, mean_groups=mean.groups)
    game = sweeps.game(problem, ablation, desc=desc, options=options)
    return CircuitGame(game, [u.name for u in inner], [u.name for u in outside], class_of, ablation, unit)


@dataclasses.dataclass(frozen=True)
class GreedyGap:
    """One size where the exhaustive worst K beats greedy's K, and what carries the worst K."""

    k: int
    greedy: tuple[int, ...]
    worst: tuple[int, ...]
    greedy_value: tuple[float, float, float]
    worst_value: tuple[float, float, float]
    empty: float  # mean d(∅) = F(C) − F(M)
    single: float  # mean Σ_{v∈K} D_v over the worst K: what one-at-a-time removal sees
    joint: float  # mean Σ_{J⊆K, |J|≥2} D_J: what only a joint removal shows
    top_terms: tuple[tuple[tuple[int, ...], float], ...]  # the largest D_J, |J| ≥ 2

    @property
    def cause(self) -> str:
        """Why greedy misses the worst K, first rule that applies: 'interaction' when the interaction terms
        among K's members outweigh its single terms (greedy ranks one unit at a time and cannot see them);
        'offset' when d(K) has the sign opposite to d(∅) (its members' own terms work against the circuit's own
        gap, so each alone shrinks |d| and greedy, maximising |d|, does not start there); else 'path' (greedy's
        earlier picks, each best on its own, lead it to another set)."""
        if abs(self.joint) > abs(self.single):
            return "interaction"
        if self.empty * (self.empty + self.single + self.joint) < 0:
            return "offset"
        return "path"

    @property
    def significant(self) -> bool:
        """Whether the 95% CIs of |d| are apart (greedy's upper end below the worst's lower end)."""
        return bool(abs_bounds(self.greedy_value)[1] < abs_bounds(self.worst_value)[0])


def greedy_gaps(c: Completeness, rel_tol: float = 1e-6) -> list[GreedyGap]:
    """Every size at which the exhaustive worst K's |mean d| exceeds greedy's by more than rel_tol (relative),
    with the split of the worst K's d(K) − d(∅) into single-unit and interaction terms (exhaustive only)."""
    if not c.exhaustive:
        return []
    out = []
    for row in c.sizes:
        if not row.greedy or row.worst_value is None:
            continue
        if abs(row.worst_value[0]) <= abs(row.greedy_value[0]) * (1 + rel_tol) + 1e-12:
            continue
        single, joint = c.single_and_joint(row.worst)
        out.append(GreedyGap(row.k, row.greedy, row.worst, row.greedy_value, row.worst_value,
                             float(c.lattice[:, 0].mean()), float(single.mean()), float(joint.mean()),
                             tuple(c.top_terms(row.worst))))
    return out


__all__ = ["CircuitGame", "Completeness", "GreedyGap", "Minimality", "OutsideSplit", "SizeRow", "circuit_game",
           "completeness", "greedy_gaps", "minimality", "outside_split", "MINIMALITY_THRESHOLD", "MAX_EXHAUSTIVE"]
