"""The empirical side of the distance-scaling claim: |INT_T| against the distance of the patch.

DESIGN.md §2 states the law for one set and sources moved toward the base,
s(t) = b + t(s − b): under frozen semantics INT_T(t) = t^{|T|} D_T(0) + O(t^{|T|+1}).
The paper's claim is broader: across sets, prompts and kinds of patch (a
counterfactual, mean or zero ablation, a scaled source), |INT_T| grows with the
distance between the clean and the patched activations. This study puts every
(set, prompt, corruption) on one log-log plane and fits the slope:

    problems = ioi_distance_problems(model, tokenizer,  # intjax.ioi.distance ["L1H0", "L2H3", ...], n_prompts=16)
    study = distance_scaling_study(problems)           # all pairs and triples of the components
    study.fit.slope, study.fit.ci                      # log|INT| on log distance, cluster-bootstrap CI
    plot_distance_scaling(study, "distance_scaling.png")

Distance of a set T for prompt p (`set_distances`):

    d_T = sqrt( Σ_{i∈T} ‖s_i − b_i‖² ),   the norms over every site member i owns

with b the cached base activation and s the source (`data.base_sites`,
`data.source`), at the positions 0..last of the prompt (padding cannot reach the
metric and is left out). It is the Euclidean length of the joint displacement
of the patched members: at α = 1_T each member's activation is replaced by its
source exactly (recompute and frozen semantics alike), so d_T is exactly how
far the patch moves the activations it writes, measured from the clean run.
It is the quantity the Taylor argument bounds INT_T by: with δ_i = s_i − b_i,
under frozen semantics INT_T = ∫ D_T ≈ ∂^{|T|} y[δ_1, …, δ_|T|] and
Π_i ‖δ_i‖ ≤ (d_T/√|T|)^{|T|} (AM–GM), so |INT_T| ≤ C·d_T^{|T|} near the base
(under recompute semantics a term of order d_T adds, DESIGN.md §2); scaling
every source by t scales d_T by t exactly, so the slope against d_T equals the
slope against t of DESIGN.md §2. Downstream components also move under
recompute semantics, but that is the model's response to the patch, not its
size, and is not counted. Every owned site counts, also those whose change
cannot reach the metric much (a last-layer head away from the last position):
d_T measures the patch, not its relevance. `normalize=True` divides by the base norm over the same sites,
sqrt(Σ_{i∈T} ‖b_i‖²): a dimensionless relative distance, comparable across
layers whose activation scales differ (it is 1 for every zero ablation). The
default is the absolute distance, since the law is about activation units and
a rescaling common to a set only shifts its intercept.

Fits (`fit_loglog`): least squares of log|INT_T| on log d_T, pooled over the
points (`fit`), per order (`by_order`), per corruption (`by_corruption`), and
"within": with one intercept per (set, prompt), so only the corruptions of one
set on one prompt are compared (`within`, `within_by_order`) — the pooled fit
also mixes in that sets and prompts differ in D_T. The 95% CI is a cluster
bootstrap over prompts (prompt index p of every problem resampled together,
seeded): the points of one prompt share its base run and are not independent.
Problems built on the same prompts (`ioi_distance_problems`: abc, mean, zero
and the scaled ones; s2_flip and random_token) share index p exactly; where
they do not, resampling the unrelated prompts of one index together is still
a valid cluster bootstrap.
Points with distance 0 or |INT| = 0 have no logarithm: they are dropped and
counted (`n_zero_distance`, then `n_zero_int` among the rest).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from intjax import bootstrap
from intjax.errors import InputError
from intjax.estimands.mobius import interactions, set_name
from intjax.patching.problem import PatchProblem
from intjax.runtime import x64

SCALES = (0.05, 0.1, 0.2, 0.4, 0.7)  # scaled ABC sources; t = 1 is the "abc" problem itself


# ---------------------------------------------------------------------------
# Distances


def _indicators(problem: PatchProblem) -> tuple[dict, bool]:
    """kind -> indicator as float64 numpy, and whether it is per prompt ([P, n, ...]; the empty
    component slots past n left out)."""
    per_prompt = bool(problem.data.indicator)
    ind = problem.data.indicator if per_prompt else problem.indicator
    n = problem.n_components
    return {k: np.asarray(v, np.float64)[:, :n] if per_prompt else np.asarray(v, np.float64)[:n]
            for k, v in ind.items()}, per_prompt


def _owned_sums(problem: PatchProblem, per_site: Mapping[str, np.ndarray]) -> np.ndarray:
    """Σ over the sites each component owns (positions 0..last only) of a per-site value, [P, n].

    `per_site[kind]` is `[P, L, T]` (resid_pre, mlp_out) or `[P, L, T, H]` (z).
    """
    inds, per_prompt = _indicators(problem)
    last = np.asarray(problem.data.last)
    out = np.zeros((problem.n_prompts, problem.n_components))
    for kind, ind in inds.items():
        v = np.asarray(per_site[kind], np.float64)
        T = v.shape[2]
        live = (np.arange(T)[None] <= last[:, None]).astype(np.float64)  # [P, T]
        v = v * live.reshape(*live.shape[:1], 1, T, *([1] * (v.ndim - 3)))
        flat_v = v.reshape(v.shape[0], -1)
        if per_prompt:
            out += np.einsum("pnk,pk->pn", ind.reshape(*ind.shape[:2], -1), flat_v)
        else:
            out += flat_v @ ind.reshape(ind.shape[0], -1).T
    return out


def component_sq_distances(problem: PatchProblem) -> np.ndarray:
    """‖s_i − b_i‖² over the sites component i owns, per prompt, `[P, n]` float64."""
    d = problem.data
    per_site = {k: (np.square(np.asarray(d.source[k], np.float64) - np.asarray(d.base_sites[k], np.float64))
                    .sum(-1)) for k in d.source}
    return _owned_sums(problem, per_site)


def component_sq_norms(problem: PatchProblem) -> np.ndarray:
    """‖b_i‖² over the sites component i owns, per prompt, `[P, n]` float64."""
    d = problem.data
    return _owned_sums(problem, {k: np.square(np.asarray(v, np.float64)).sum(-1) for k, v in d.base_sites.items()})


def set_distances(problem: PatchProblem, sets: Sequence[Sequence[int]], *, normalize: bool = False) -> np.ndarray:
    """d_T = sqrt(Σ_{i∈T} ‖s_i − b_i‖²) per prompt and set, `[P, n_sets]` (module docstring);
    `normalize=True` divides by sqrt(Σ_{i∈T} ‖b_i‖²)."""
    sq = component_sq_distances(problem)
    sel = np.zeros((problem.n_components, len(sets)))
    for j, T in enumerate(sets):
        sel[list(T), j] = 1
    dist = np.sqrt(sq @ sel)
    if normalize:
        base = np.sqrt(component_sq_norms(problem) @ sel)
        dist = np.divide(dist, base, out=np.full_like(dist, np.nan), where=base > 0)
    return dist


# ---------------------------------------------------------------------------
# Fits


@dataclasses.dataclass(frozen=True)
class LogLogFit:
    """Least-squares slope of log|INT| on log distance, with a cluster-bootstrap CI."""

    slope: float
    intercept: float  # nan for a within fit (one intercept per group)
    ci: tuple[float, float]  # percentile interval, `level` coverage
    se: float  # bootstrap standard error
    n_points: int
    n_clusters: int  # prompts that contribute a point
    within: bool = False  # one intercept per (set, prompt)
    level: float = 0.95
    r2: float = float("nan")  # share of the variance of log|INT| the line explains (within: after the intercepts)

    def label(self) -> str:
        """'slope 1.53 [1.44, 1.63]' as the reports print it."""
        return f"slope {self.slope:.2f} [{self.ci[0]:.2f}, {self.ci[1]:.2f}]"


_NAN_FIT = dict(slope=float("nan"), intercept=float("nan"), ci=(float("nan"), float("nan")), se=float("nan"))


def fit_loglog(distance: np.ndarray, abs_int: np.ndarray, clusters: np.ndarray, *,
               groups: Optional[np.ndarray] = None, n_boot: int = 2000, seed: int = 0,
               level: float = 0.95) -> LogLogFit:
    """Slope of log(abs_int) on log(distance) (all > 0), CI by resampling whole clusters.

    `groups` (optional, each nested in one cluster, e.g. (set, prompt)) gives
    every group its own intercept: the slope then comes only from variation
    inside groups. The bootstrap draws the clusters with replacement (`n_boot`
    times, seeded) and refits; the CI is the percentile interval.
    """
    x, y = np.log(np.asarray(distance, np.float64)), np.log(np.asarray(abs_int, np.float64))
    clusters = np.asarray(clusters)
    if x.shape != y.shape or x.shape != clusters.shape or (groups is not None and np.shape(groups) != x.shape):
        raise InputError("distance, abs_int, clusters (and groups) need one entry per point")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError("fit_loglog needs positive, finite distances and |INT| (drop the zeros first)")
    cl_ids, cl = np.unique(clusters, return_inverse=True)
    C = len(cl_ids)
    if groups is not None:
        g_ids, g = np.unique(np.asarray(groups), return_inverse=True)
        owner = np.full(len(g_ids), -1)
        owner[g] = cl
        if (owner[g] != cl).any():
            raise InputError("every group must lie inside one cluster")
        counts = np.bincount(g, minlength=len(g_ids))
        x = x - np.bincount(g, x, len(g_ids))[g] / counts[g]
        y = y - np.bincount(g, y, len(g_ids))[g] / counts[g]
        stats = np.stack([np.bincount(cl, x * x, C), np.bincount(cl, x * y, C)], 1)  # [C, 2]

        def slope_of(s):
            return np.divide(s[..., 1], s[..., 0], out=np.full(s.shape[:-1], np.nan), where=s[..., 0] > 1e-12)

        slope, intercept = float(slope_of(stats.sum(0))), float("nan")
    else:
        stats = np.stack([np.bincount(cl, minlength=C).astype(float), np.bincount(cl, x, C), np.bincount(cl, y, C),
                          np.bincount(cl, x * x, C), np.bincount(cl, x * y, C)], 1)  # [C, 5]

        def slope_of(s):
            n, sx, sy, sxx, sxy = np.moveaxis(s, -1, 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                den = sxx - sx * sx / n
                return np.where(den > 1e-12 * np.maximum(sxx, 1), (sxy - sx * sy / n) / den, np.nan)

        tot = stats.sum(0)
        slope = float(slope_of(tot))
        intercept = float((tot[2] - slope * tot[1]) / tot[0]) if len(x) else float("nan")
    r2 = _r2(x, y) if groups is not None else _r2(x - x.mean(), y - y.mean()) if len(x) else float("nan")
    if len(x) < 2 or not np.isfinite(slope):
        return LogLogFit(**{**_NAN_FIT, "slope": slope}, n_points=len(x), n_clusters=C, within=groups is not None,
                         level=level, r2=r2)
    draws = bootstrap.cluster_weights(C, n_boot, seed)  # [B, C]
    boot = slope_of(draws @ stats)
    boot = boot[np.isfinite(boot)]
    a = (1 - level) / 2
    ci = (float(np.quantile(boot, a)), float(np.quantile(boot, 1 - a))) if len(boot) else _NAN_FIT["ci"]
    return LogLogFit(slope=slope, intercept=intercept, ci=ci, se=float(boot.std(ddof=1)) if len(boot) > 1 else
                     float("nan"), n_points=len(x), n_clusters=C, within=groups is not None, level=level, r2=r2)


def _r2(x: np.ndarray, y: np.ndarray) -> float:
    """R² of the line through the origin of centred `y` `[N]` on centred `x` `[N]`: (Σxy)² / (Σxx Σyy)."""
    sxx, syy = float(x @ x), float(y @ y)
    return float((x @ y) ** 2 / (sxx * syy)) if sxx > 1e-12 and syy > 1e-12 else float("nan")


# ---------------------------------------------------------------------------
# The study


@dataclasses.dataclass(frozen=True)
class DistanceScaling:
    """One row per (set, prompt, corruption) — the column arrays below, all of one length — and the fits.

    Fits use only the kept rows (distance > 0 and |INT| > 0, `kept`)."""

    set_name: np.ndarray  # [N] str, members joined by commas
    order: np.ndarray  # [N] int, |T|
    prompt: np.ndarray  # [N] int, prompt index inside its problem (the bootstrap cluster)
    corruption: np.ndarray  # [N] str, the key of the problem in the dict given
    distance: np.ndarray  # [N] float64, d_T (module docstring)
    interaction: np.ndarray  # [N] float64, signed exact INT_T
    fit: Optional[LogLogFit]  # pooled (None when no order has a fit)
    by_order: dict[int, LogLogFit]
    by_corruption: dict[str, LogLogFit]
    within: Optional[LogLogFit]  # one intercept per (set, prompt); None when too few points
    within_by_order: dict[int, LogLogFit]
    by_regime: dict[str, dict[str, LogLogFit]]  # "natural" / "scaled" -> "pooled", "within", "within order k"
    n_zero_distance: int  # rows dropped: distance 0
    n_zero_int: int  # rows dropped: |INT| = 0 (distance > 0)
    normalized: bool
    semantics: dict[str, str]  # corruption -> semantics of its problem
    n_boot: int
    seed: int
    seconds: float

    @property
    def abs_int(self) -> np.ndarray:
        """|INT_T| per row."""
        return np.abs(self.interaction)

    @property
    def kept(self) -> np.ndarray:
        """Rows with a logarithm on both axes (the fitted ones), [N] bool."""
        return (self.distance > 0) & (self.abs_int > 0) & np.isfinite(self.distance)

    @property
    def corruptions(self) -> list[str]:
        """Corruption labels in the order of the problems given."""
        return list(dict.fromkeys(self.corruption.tolist()))

    def __len__(self) -> int:
        return len(self.distance)

    def rows(self) -> list[dict[str, Any]]:
        """The rows as dicts (set, order, prompt, corruption, distance, int, abs_int)."""
        return [dict(set=str(s), order=int(k), prompt=int(p), corruption=str(c), distance=float(d),
                     int=float(v), abs_int=abs(float(v)))
                for s, k, p, c, d, v in zip(self.set_name, self.order, self.prompt, self.corruption,
                                            self.distance, self.interaction)]

    def fit_subset(self, *, orders: Optional[Iterable[int]] = None, corruptions: Optional[Iterable[str]] = None,
                   within: bool = False) -> LogLogFit:
        """The fit over the kept rows of the given orders and corruptions (all if None)."""
        keep = self.kept
        if orders is not None:
            keep &= np.isin(self.order, list(orders))
        if corruptions is not None:
            keep &= np.isin(self.corruption, list(corruptions))
        groups = np.char.add(np.char.add(self.set_name[keep], "|"), self.prompt[keep].astype(str)) if within else None
        return fit_loglog(self.distance[keep], self.abs_int[keep], self.prompt[keep], groups=groups,
                          n_boot=self.n_boot, seed=self.seed)

    def summary(self) -> dict[str, Any]:
        """JSON-ready fits and counts."""

        def f(fit: LogLogFit) -> dict:
            return dict(slope=fit.slope, ci=list(fit.ci), se=fit.se, intercept=fit.intercept, r2=fit.r2,
                        n_points=fit.n_points, n_prompts=fit.n_clusters)

        return dict(n_rows=len(self), n_zero_distance=self.n_zero_distance, n_zero_int=self.n_zero_int,
                    normalized=self.normalized, fit=f(self.fit),
                    by_order={str(k): f(v) for k, v in self.by_order.items()},
                    by_corruption={k: f(v) for k, v in self.by_corruption.items()},
                    within=f(self.within), within_by_order={str(k): f(v) for k, v in self.within_by_order.items()},
                    by_regime={r: dict(corruptions=regimes(self.corruptions)[r], **{k: f(v) for k, v in fits.items()})
                               for r, fits in self.by_regime.items()},
                    semantics=self.semantics, n_boot=self.n_boot, seed=self.seed, seconds=self.seconds)


def regimes(labels: Sequence[str]) -> dict[str, list[str]]:
    """Patch kinds by regime: "scaled" is every "X t=…" kind with its base X (t = 1), "natural" every
    kind that is not a scaled copy (the base X belongs to both); a regime with no kind is left out."""
    scaled = [c for c in labels if _SCALED.match(c)]
    bases = {_SCALED.match(c)["base"] for c in scaled}
    out = dict(natural=[c for c in labels if not _SCALED.match(c)],
               scaled=[c for c in labels if c in bases or _SCALED.match(c)])
    return {k: v for k, v in out.items() if v and (k == "natural" or scaled)}


def regime_fits(study: DistanceScaling) -> dict[str, dict[str, LogLogFit]]:
    """Per regime (`regimes`): the pooled and within fits, and within the scaled family one within fit per
    order (the slope against t, which DESIGN.md §2 predicts: |T| frozen, the longest chain recompute)."""
    out = {}
    orders = sorted(set(study.order.tolist()))
    for name, kinds in regimes(study.corruptions).items():
        fits = dict(pooled=study.fit_subset(corruptions=kinds), within=study.fit_subset(corruptions=kinds, within=True))
        if name == "scaled":
            fits.update({f"within order {k}": study.fit_subset(corruptions=kinds, orders=[k], within=True)
                         for k in orders})
        out[name] = fits
    return out


def all_sets(n: int, orders: Sequence[int] = (2, 3)) -> list[tuple[int, ...]]:
    """Every set of the given orders among n components (pairs and triples by default)."""
    return [T for k in orders for T in itertools.combinations(range(n), k)]


def _resolve_sets(sets, names: list[str]) -> list[tuple[int, ...]]:
    """Sets as sorted index tuples, from index tuples, name tuples or "A,B" strings."""
    index = {n: i for i, n in enumerate(names)}
    out = []
    for T in sets:
        members = T.split(",") if isinstance(T, str) else list(T)
        idx = []
        for m in members:
            if isinstance(m, str):
                if m.strip() not in index:
                    raise InputError(f"set {T!r} names {m!r}, not one of the components {names}")
                idx.append(index[m.strip()])
            else:
                if not 0 <= int(m) < len(names):
                    raise InputError(f"set {T!r} names component {m}, outside 0..{len(names) - 1}")
                idx.append(int(m))
        if len(set(idx)) != len(idx) or len(idx) < 2:
            raise InputError(f"set {T!r} needs at least two distinct components")
        out.append(tuple(sorted(idx)))
    return out


def _is_float64(problem: PatchProblem) -> bool:
    return problem.data.resid_start.dtype == np.float64



def distance_scaling_study(
    problems: Mapping[str, PatchProblem],
    sets: Optional[Sequence] = None,
    *,
    orders: Sequence[int] = (2, 3),
    normalize: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
) -> DistanceScaling:
    """|INT_T| against the distance d_T for every set, prompt and problem (module docstring).

    `problems`: corruption label -> PatchProblem, all over the same components
    (in the same order). `sets`: index tuples, name tuples or "A,B" strings;
    default all sets of `orders` (pairs and triples) among the components.
    Problems built in float64 (`ioi_distance_problems(float64=True)`) are
    evaluated with jax_enable_x64 on for the call.
    """
    t0 = time.perf_counter()
    if not problems:
        raise InputError("no problems to study")
    names = next(iter(problems.values())).names
    for label, p in problems.items():
        if p.names != names:
            raise InputError(f"problem {label!r} patches {p.names}, the first one {names}: give every problem "
                             "the same components")
    sets = all_sets(len(names), orders) if sets is None else _resolve_sets(sets, names)
    if not sets:
        raise InputError("no sets to study")
    labels = [set_name(T, names) for T in sets]
    cols: dict[str, list] = {k: [] for k in ("set_name", "order", "prompt", "corruption", "distance", "interaction")}
    for label, problem in problems.items():
        with x64(_is_float64(problem)):
            _, ints, _ = interactions(problem, sets=sets)  # [P, S]
        dist = set_distances(problem, sets, normalize=normalize)
        P, S = ints.shape
        cols["set_name"].append(np.tile(labels, P))
        cols["order"].append(np.tile([len(T) for T in sets], P))
        cols["prompt"].append(np.repeat(np.arange(P), S))
        cols["corruption"].append(np.full(P * S, label, dtype=object))
        cols["distance"].append(dist.reshape(-1))
        cols["interaction"].append(ints.reshape(-1))
    arr = {k: np.concatenate(v) for k, v in cols.items()}
    arr["set_name"], arr["corruption"] = arr["set_name"].astype(str), arr["corruption"].astype(str)
    arr["distance"] = np.nan_to_num(arr["distance"], nan=0.0)  # a 0/0 relative distance: nothing moved
    zero_d = ~(arr["distance"] > 0)
    zero_i = ~zero_d & ~(np.abs(arr["interaction"]) > 0)
    draft = DistanceScaling(**arr, fit=None, by_order={}, by_corruption={}, within=None, within_by_order={},
                            by_regime={},
                            n_zero_distance=int(zero_d.sum()), n_zero_int=int(zero_i.sum()), normalized=normalize,
                            semantics={k: p.semantics for k, p in problems.items()}, n_boot=n_boot, seed=seed,
                            seconds=0.0)
    present = sorted(set(arr["order"].tolist()))
    return dataclasses.replace(
        draft,
        fit=draft.fit_subset(),
        by_order={k: draft.fit_subset(orders=[k]) for k in present},
        by_corruption={c: draft.fit_subset(corruptions=[c]) for c in problems},
        within=draft.fit_subset(within=True),
        within_by_order={k: draft.fit_subset(orders=[k], within=True) for k in present},
        by_regime=regime_fits(draft),
        seconds=time.perf_counter() - t0,
    )


# ---------------------------------------------------------------------------
# Figure

_SCALED = re.compile(r"^(?P<base>.+) t=(?P<t>[0-9.eE+-]+)$")
_MARKERS = {2: "o", 3: "^", 4: "s", 5: "D"}


def _colors(labels: Sequence[str]) -> dict[str, Any]:
    """tab10 for the plain corruptions; a scaled one ("abc t=0.1") gets a paler shade of its base's
    colour the smaller its t."""
    import matplotlib

    plain = [c for c in labels if not _SCALED.match(c)]
    bases = list(dict.fromkeys([c for c in plain] + [_SCALED.match(c)["base"] for c in labels if _SCALED.match(c)]))
    tab = matplotlib.colormaps["tab10"]
    out = {c: np.array(tab(i % 10)) for i, c in enumerate(bases)}
    for c in labels:
        m = _SCALED.match(c)
        if m:
            t = min(max(float(m["t"]), 0.0), 1.0)
            w = 0.2 + 0.75 * t ** 0.5  # weight of the base colour against white
            out[c] = np.append(1 - w * (1 - out[m["base"]][:3]), 1.0)
    return {c: tuple(out[c]) for c in labels}


def plot_distance_scaling(study: DistanceScaling, path: str | Path, *, title: Optional[str] = None) -> Path:
    """Log-log scatter of |INT_T| against d_T: colour = corruption, marker = order, with the pooled
    and per-order fitted lines (slopes and 95% CIs in the legend). Matplotlib, Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    path = Path(path)
    keep = study.kept
    colors = _colors(study.corruptions)
    fig, ax = plt.subplots(figsize=(7.5, 5.5), constrained_layout=True)
    for c in study.corruptions:
        for k in sorted(set(study.order.tolist())):
            m = keep & (study.corruption == c) & (study.order == k)
            if m.any():
                ax.scatter(study.distance[m], study.abs_int[m], s=12, alpha=0.6, color=colors[c],
                           marker=_MARKERS.get(k, "x"), linewidths=0)
    handles = [Line2D([], [], ls="", marker="o", color=colors[c], label=c) for c in study.corruptions]
    handles += [Line2D([], [], ls="", marker=_MARKERS.get(k, "x"), color="0.3", label=f"|T| = {k}")
                for k in sorted(study.by_order)]
    if keep.any():
        xs = np.geomspace(study.distance[keep].min(), study.distance[keep].max(), 50)
        lines = [(study.fit, "k", "-", "all")] + [(f, "0.45", ls, f"|T| = {k}")
                                                  for (k, f), ls in zip(sorted(study.by_order.items()),
                                                                        ("--", ":", "-.", (0, (1, 3))))]
        for fit, color, ls, what in lines:
            if np.isfinite(fit.slope) and np.isfinite(fit.intercept):
                ax.plot(xs, np.exp(fit.intercept) * xs ** fit.slope, color=color, ls=ls, lw=1.4)
                handles.append(Line2D([], [], color=color, ls=ls, label=f"fit {what}: {fit.label()}"))
    ax.set_xscale("log")
    ax.set_yscale("log")
    dropped = study.n_zero_distance + study.n_zero_int
    semantics = sorted(set(study.semantics.values()))
    ax.set(xlabel=("relative distance d_T / ‖b_T‖" if study.normalized else "distance d_T = ‖s_T − b_T‖")
           + " over the members' sites", ylabel="|INT_T|",
           title=title or f"|INT_T| against patch distance, {'/'.join(semantics)} ({int(keep.sum())} points"
                          + (f", {dropped} at zero dropped" if dropped else "") + ")")
    ax.legend(handles=handles, fontsize=7, loc="best", ncol=2)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
