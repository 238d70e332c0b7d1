"""Circuit faithfulness, and its exact decomposition into main effects and interactions.

Faithfulness = F(C) / F(M): the mean metric with every head outside the circuit
ablated, over the mean metric of the intact model. Take the circuit's classes
(name movers, S-inhibition, …) as units 0..k−1 and everything outside the
circuit as unit k. Keeping a set S of classes (ablating the others and the
rest) gives g(S), and F(C) = g(all classes). Its Möbius expansion over kept
classes is exact:

    F(C) = g(∅) + Σ_i INT_{i} + Σ_{i<j} INT_{ij} + Σ_{|T|≥3} INT_T

g(∅) is the fully ablated model, INT_{i} what class i does alone on top of it
(main effect), and INT_T, |T| ≥ 2, what classes do only together. Dividing by
F(M) splits each resample's faithfulness into the same four parts, and
Var(faithfulness) = Σ_part Cov(faithfulness, part) splits its variance across
resamples exactly: the share the INT parts carry is how much of the
instability interactions explain.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np

from intjax.errors import InputError
from intjax.estimands.game import Game
from intjax.estimands.mobius import Subset, fast_mobius, lattice_masks
from intjax.model.protocol import HasConfig, PatchableModel
from intjax.patching.components import Component, group, parse_components
from intjax.patching.problem import build_problem
from intjax.sweeps.context import SweepContext
from intjax.options import ABLATIONS
from intjax.ioi.task import MeanSource, PromptBank, mean_source

PARTS = ("ablated", "main", "pairwise", "higher")


@dataclasses.dataclass(frozen=True)
class Decomposition:
    """g(S) for every kept set of classes, and its Möbius terms, per prompt."""

    model: np.ndarray  # [P] F(M): nothing ablated
    kept: np.ndarray  # [P, 2^k] g(S), S bit-indexed (bit i: class i kept); g(all) = F(C)
    terms: np.ndarray  # [P, 2^k] INT over kept classes, same indexing; terms[:, 0] = g(∅)

    @property
    def n_classes(self) -> int:
        """k, the number of class units."""
        return self.kept.shape[1].bit_length() - 1

    @property
    def circuit(self) -> np.ndarray:
        """F(C) per prompt: only the circuit kept."""
        return self.kept[:, -1]

    def order_sums(self) -> dict[str, np.ndarray]:
        """The Möbius terms summed by order, per prompt: ablated (g(∅)), main, pairwise, higher."""
        sizes = np.array([bin(b).count("1") for b in range(self.terms.shape[1])])
        return {"ablated": self.terms[:, 0], "main": self.terms[:, sizes == 1].sum(1),
                "pairwise": self.terms[:, sizes == 2].sum(1), "higher": self.terms[:, sizes >= 3].sum(1)}

    def term(self, T: Subset) -> np.ndarray:
        """INT_T over kept classes, per prompt."""
        return self.terms[:, sum(1 << i for i in T)]

    @property
    def faithfulness(self) -> float:
        """mean F(C) / mean F(M)."""
        return float(self.circuit.mean() / self.model.mean())


def decompose(game: Game, n_classes: int) -> Decomposition:
    """Evaluate a game whose components are k classes then one `rest` unit (k + 1 in
    all) at α = 0 and at every 'keep S, ablate the rest' vertex; Möbius over S."""
    if game.n_components != n_classes + 1:
        raise InputError(f"the game has {game.n_components} components; expected {n_classes} classes + 1 rest unit")
    if n_classes > 16:
        raise InputError(f"{n_classes} classes need 2^{n_classes} runs; merge classes (at most 16)")
    keep = lattice_masks(n_classes)  # [2^k, k]: 1 = class kept
    ablate = np.concatenate([1.0 - keep, np.ones((len(keep), 1))], axis=1)
    vals = game.values(np.concatenate([np.zeros((1, n_classes + 1)), ablate]))
    kept = vals[1:].T
    return Decomposition(vals[0], kept, fast_mobius(kept))


def variance_shares(total: np.ndarray, parts: dict[str, np.ndarray]) -> dict[str, float]:
    """Cov(total, part) / Var(total) for each part; the shares sum to 1 when the parts sum to total."""
    total = np.asarray(total, np.float64)
    if not np.allclose(sum(parts.values()), total, rtol=1e-9, atol=1e-9 * (np.abs(total).max() + 1)):
        raise InputError("the parts do not sum to the total; the variance split would not be exact")
    var = float(np.var(total))
    if var == 0:
        return {k: float("nan") for k in parts}
    return {k: float(np.mean((total - total.mean()) * (p - np.mean(p))) / var) for k, p in parts.items()}


def circuit_units(circuit: dict[str, Sequence[str]], model: HasConfig,
                  positions: Optional[dict[str, str]] = None) -> list[Component]:
    """One group per circuit class, then `rest`: every head outside the circuit.

    With `positions` ({class: role}, e.g. tasks.ioi.CLASS_POSITIONS), a class
    keeps its heads only at its role position (`L9H6@END`) and `rest` also holds
    those heads at every other position (`L9H6@~END`), as Wang et al. do.
    """
    heads = parse_components("heads", model.config)
    inside = [h for members in circuit.values() for h in members]
    unknown = sorted(set(inside) - {h.name for h in heads})
    if unknown:
        raise InputError(f"circuit heads {unknown} are not heads of this model "
                         f"({model.config.n_layers} layers × {model.config.n_heads} heads)")
    if len(set(inside)) != len(inside):
        raise InputError("a head is listed in two circuit classes; each head belongs to one class")
    positions = positions or {}
    rest = [h.name for h in heads if h.name not in set(inside)]
    rest += [f"{h}@~{positions[cls]}" for cls, members in circuit.items() if cls in positions for h in members]
    if not rest:
        raise InputError("the circuit holds every head: nothing is left to ablate")

    def atoms(names):
        return parse_components(names, model.config)
    units = [group(cls, atoms([f"{h}@{positions[cls]}" if cls in positions else h for h in members]))
             for cls, members in circuit.items() if members]
    return units + [group("rest", atoms(rest))]


@dataclasses.dataclass(frozen=True)
class FaithfulnessStudy:
    """Faithfulness over resamples × ablations, with its decomposition (means over prompts)."""

    classes: tuple[str, ...]
    ablations: tuple[str, ...]
    model_metric: np.ndarray  # [R] F(M)
    circuit_metric: np.ndarray  # [A, R] F(C)
    faithfulness: np.ndarray  # [A, R]
    parts: dict[str, np.ndarray]  # part -> [A, R], divided by F(M): they sum to faithfulness
    terms: np.ndarray  # [A, R, 2^k] mean INT over kept classes (bit-indexed), divided by F(M)
    n_prompts: int
    reference_per_template: int  # fresh ABC prompts per template behind the mean ablation
    class_positions: Optional[dict[str, str]]  # class -> the role position it is kept at (None: everywhere)
    seed: int  # resample r used prompt seed `seed + r`
    seconds: float

    def shares(self, ablation: str | None = None) -> dict[str, float]:
        """Variance shares of the parts across resamples (one ablation) or across everything (None)."""
        if ablation is None:
            return variance_shares(self.faithfulness.ravel(), {k: v.ravel() for k, v in self.parts.items()})
        a = self.ablations.index(ablation)
        return variance_shares(self.faithfulness[a], {k: v[a] for k, v in self.parts.items()})

    def int_share(self, ablation: str | None = None) -> float:
        """The share of the faithfulness variance that pairwise and higher-order INT carry."""
        s = self.shares(ablation)
        return s["pairwise"] + s["higher"]


def faithfulness_study(
    model: PatchableModel,
    tokenizer: Any,
    circuit: dict[str, Sequence[str]],
    *,
    n_resamples: int = 20,
    n_prompts: int = 32,
    seed: int = 0,
    ablations: Sequence[str] = tuple(ABLATIONS),
    reference_per_template: int = 8,
    class_positions: Optional[dict[str, str]] = None,
    on_resample: Callable[[int], None] | None = None,
    sweeps: SweepContext = SweepContext(),
    prompts: Optional[PromptBank] = None,
) -> FaithfulnessStudy:
    """Faithfulness of `circuit` on `n_resamples` fresh IOI prompt sets (seeds seed, seed+1, …).

    Ablations: "mean" (per position over `reference_per_template` fresh ABC
    prompts of each prompt's own template, so positions align, as Wang et al.
    do), "resample" (each prompt's own ABC counterfactual: same template, three
    fresh names), "zero". `class_positions` keeps each class only at its role
    position (see `circuit_units`). Each resample is decomposed exactly (see the module doc). With
    checkpoints in `sweeps`, every resample × ablation is saved there as it finishes and a
    rerun picks them up. `prompts`: the run's prompt sets (a resample equal to one the run already has
    reuses it; made here when None).
    """
    unknown = [a for a in ablations if a not in ABLATIONS]
    if unknown or not ablations:
        raise InputError(f"unknown ablations {unknown}; choose from {list(ABLATIONS)}")
    if n_resamples < 2:
        raise InputError(f"n_resamples={n_resamples}: a spread needs at least 2 resamples")
    t0 = time.perf_counter()
    bank = PromptBank(tokenizer) if prompts is None else prompts
    units = circuit_units(circuit, model, class_positions)
    k = len(units) - 1
    A, R = len(ablations), n_resamples
    model_metric, circuit_metric = np.zeros(R), np.zeros((A, R))
    terms = np.zeros((A, R, 1 << k))
    parts = {p: np.zeros((A, R)) for p in PARTS}
    for r in range(R):
        data = bank.get(n_prompts, seed + r, "abc")
        for a, name in enumerate(ablations):
            mean = (mean_source(tokenizer, data, reference_per_template, seed=seed + r) if name == "mean"
                    else MeanSource())
            problem = build_problem(model, data.prompts, units, direction="noising", source=ABLATIONS[name],
                                    reference=mean.reference, mean_groups=mean.groups)
            dec = decompose(sweeps.game(problem, f"resample{r}_{name}", bar=False), k)
            fm = dec.model.mean()
            model_metric[r] = fm
            circuit_metric[a, r] = dec.circuit.mean()
            terms[a, r] = dec.terms.mean(0) / fm
            for p, v in dec.order_sums().items():
                parts[p][a, r] = v.mean() / fm
        if on_resample is not None:
            on_resample(r)
    return FaithfulnessStudy(tuple(u.name for u in units[:-1]), tuple(ablations), model_metric, circuit_metric,
                             circuit_metric / model_metric[None], parts, terms, n_prompts,
                             reference_per_template, class_positions, seed,
                             time.perf_counter() - t0)
