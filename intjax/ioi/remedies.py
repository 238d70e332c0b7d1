"""The usual remedies for interaction effects, and where each still hides or inflates effects.

Two remedies are common: change the estimator (noising, denoising, mean
ablation) or change the unit (single heads, the circuit's class groups, whole
layers). For every pair this module measures each unit's NIE, its context
effect with the strongest units already patched, the labels of
`studies.visibility`, and how far the sum of single-unit effects is from the
joint effect of patching every unit (the difference is the sum of all INT
terms among the units). Heads, classes and layers partition the same heads, so
within an estimator the joint effect is the same for every unit: a check.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

import numpy as np

from intjax.errors import InputError
from intjax.model.protocol import PatchableModel
from intjax.patching.components import Component, parse_components
from intjax.patching.problem import build_problem
from intjax.patching.prompts import PromptSet
from intjax.ioi.faithfulness import circuit_units
from intjax.ioi.task import MeanSource
from intjax.studies.visibility import DEFAULT_FLOOR, DEFAULT_RATIO, Visibility, visibility
from intjax.sweeps.context import SweepContext

ESTIMATORS = {  # name -> (direction, source)
    "noising": ("noising", "counterfactual"),
    "denoising": ("denoising", "counterfactual"),
    "mean ablation": ("noising", "mean"),
}
UNITS = ("head", "class", "layer")


@dataclasses.dataclass(frozen=True)
class RemedyRow:
    """One estimator × unit: per-unit effects, labels, and the single-versus-joint gap."""

    estimator: str
    unit: str
    names: tuple[str, ...]
    visibility: Visibility
    joint: float  # mean effect of patching every unit at once
    nie: np.ndarray  # [P, n] per prompt (for later use, e.g. search)
    joint_per_prompt: np.ndarray  # [P] effect of patching every unit at once

    @property
    def sum_nie(self) -> float:
        """Σ_i mean NIE_i."""
        return float(self.visibility.nie.sum())

    @property
    def int_total(self) -> float:
        """joint − Σ NIE: every INT term among the units, summed."""
        return self.joint - self.sum_nie

    def named(self, label: str) -> list[str]:
        """Names of the units with this visibility label."""
        return [self.names[i] for i in self.visibility.flagged(label)]

    def flagged_names(self) -> set[str]:
        """Names of the units with any visibility label."""
        return {name for name, label in zip(self.names, self.visibility.labels) if label}


def unit_components(unit: str, model: PatchableModel, circuit: dict[str, Sequence[str]],
                    class_positions: Optional[dict[str, str]] = None) -> list[Component]:
    """The components of a unit kind: every head, the circuit's classes plus `rest` (see
    `circuit_units` for `class_positions`), or every layer."""
    if unit == "head":
        return parse_components("heads", model.config)
    if unit == "class":
        return circuit_units(circuit, model, class_positions)
    if unit == "layer":
        return parse_components("layers", model.config)
    raise InputError(f"unknown unit {unit!r}; choose one of {list(UNITS)}")


def remedy_row(model: PatchableModel, prompts: PromptSet, estimator: str, unit: str, circuit: dict[str, Sequence[str]],
               *, n_context: int = 2, scale: float | None = None, ratio: float = DEFAULT_RATIO,
               floor: float = DEFAULT_FLOOR, mean_source: Optional[MeanSource] = None,
               class_positions: Optional[dict[str, str]] = None,
               sweeps: SweepContext = SweepContext()) -> RemedyRow:
    """Effects of one unit kind under one estimator (see the module doc); with checkpoints in `sweeps`,
    its sweeps are saved there and a rerun resumes them. `mean_source` (build_problem's
    `reference` and `mean_groups`) sets what the mean ablation averages."""
    if estimator not in ESTIMATORS:
        raise InputError(f"unknown estimator {estimator!r}; choose one of {list(ESTIMATORS)}")
    direction, source = ESTIMATORS[estimator]
    units = unit_components(unit, model, circuit, class_positions)
    mean = mean_source if source == "mean" and mean_source is not None else MeanSource()
    problem = build_problem(model, prompts, units, direction=direction, source=source, reference=mean.reference,
                            mean_groups=mean.groups)
    game = sweeps.game(problem, f"{estimator.replace(' ', '_')}_{unit}", bar=False)
    n = len(units)
    vals = game.values(np.concatenate([np.zeros((1, n)), np.eye(n), np.ones((1, n))]))
    nie = (vals[1:-1] - vals[:1]).T
    vis = visibility(game, min(n_context, n - 1), nie=nie, scale=scale, ratio=ratio, floor=floor)
    joint = vals[-1] - vals[0]
    return RemedyRow(estimator, unit, tuple(u.name for u in units), vis, float(joint.mean()), nie, joint)


def remedies_table(model: PatchableModel, prompts: PromptSet, circuit: dict[str, Sequence[str]], *,
                   estimators: Sequence[str] = tuple(ESTIMATORS), units: Sequence[str] = UNITS,
                   n_context: int = 2, scale: float | None = None, ratio: float = DEFAULT_RATIO,
                   floor: float = DEFAULT_FLOOR, mean_source: Optional[MeanSource] = None,
                   class_positions: Optional[dict[str, str]] = None, sweeps: SweepContext = SweepContext(),
                   step: Optional[Callable[[str], None]] = None) -> list[RemedyRow]:
    """Every estimator × unit row (see `remedy_row`), their sweeps in `sweeps`; `step(text)` is called as
    each row starts."""
    rows = []
    for e in estimators:
        for u in units:
            if step is not None:
                step(f"remedies: {e} x {u}")
            rows.append(remedy_row(model, prompts, e, u, circuit, n_context=n_context, scale=scale, ratio=ratio,
                                   floor=floor, mean_source=mean_source, class_positions=class_positions,
                                   sweeps=sweeps))
    return rows
