"""`intjax theorems` as a library call: the theorem table of DESIGN.md §2 for a set of components."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import jax.numpy as jnp

from intjax.estimands.mobius import set_name
from intjax.estimands.theorems import duality_check, theorem_table
from intjax.model.protocol import PatchableModel
from intjax.patching.components import Component
from intjax.patching.problem import SEMANTICS, build_problem
from intjax.patching.prompts import PromptSet
from intjax.patching.structure import predicted_slopes, prompt_roles, reads_matrix

NAN = float("nan")


@dataclasses.dataclass(frozen=True)
class TheoremTable:
    """The theorem table of DESIGN.md §2 for one set of components (`theorem_table`'s numbers, sets named).

    The per-set rows (`bound_by_set`, `slopes_by_set`) and the duality keep their dict rows, as theorems.json
    does; `extra` holds any key `theorem_table` adds that this type does not name yet."""

    order: int = 0
    n_components: int = 0
    n_interactions: int = 0
    patched_runs: int = 0
    identity_max_residual: float = NAN  # max |f(1_S) − f(0) − Σ INT_T| over the sets checked
    context_identity_max_residual: float = NAN
    effect_scale: float = NAN  # the scale every tolerance is relative to
    integral_max_z: float = NAN  # the integral identity, in standard errors of the estimate
    integral_max_rel_error: float = NAN
    integral_resolution: float = NAN  # 3 SE as a share of the effect scale
    bound_holds_fraction: float = NAN
    bound_by_set: list[dict] = dataclasses.field(default_factory=list)
    bound_points: int = 0
    bound_batches: int = 0
    bound_looseness_median: float = NAN
    affinity_vs_interaction: dict = dataclasses.field(default_factory=dict)
    slope_frozen: dict = dataclasses.field(default_factory=dict)  # order -> log-log slope
    slope_recompute: dict = dataclasses.field(default_factory=dict)
    slopes_by_set: list[dict] = dataclasses.field(default_factory=list)
    checked_sets: list = dataclasses.field(default_factory=list)  # set names ("L0H1,L1H0")
    checked_exact_mean: list[float] = dataclasses.field(default_factory=list)
    checked_integral_mean: list[float] = dataclasses.field(default_factory=list)
    checked_integral_se_max: list[float] = dataclasses.field(default_factory=list)
    ts: list[float] = dataclasses.field(default_factory=list)
    integral_points: dict = dataclasses.field(default_factory=dict)
    dtype: str = ""  # the dtype f was computed in
    derivative_dtype: Optional[str] = None
    duality: dict = dataclasses.field(default_factory=dict)  # cut, direction, per semantics (or skipped)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_dict(cls, table: dict[str, Any]) -> "TheoremTable":
        """The typed table of a `theorem_table` dict (unknown keys kept in `extra`)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in table.items() if k in names},
                   extra={k: v for k, v in table.items() if k not in names})

    def as_dict(self) -> dict[str, Any]:
        """theorems.json's dict: every field in order, then the extra keys."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**out, **self.extra}


def run_theorems(
    model: PatchableModel, prompts: PromptSet, components: Sequence[Component], *, order: int = 2,
    direction: str = "noising", source: str = "counterfactual", metric: str = "logit_diff",
    n_check: int = 6, cut: Sequence[Component] | None = None, step=None, tick=None,
    bound_order: Optional[int] = None,
    bound_polish_starts: int = 1, bound_max_points: int = 5000,
) -> TheoremTable:
    """The theorem table (DESIGN.md §2) for these components; use a float64 model for it.

    `cut`: the components the noising/denoising duality is checked over, under
    both semantics (default: `components`). The duality holds only under frozen
    semantics for a complete cut, e.g. every head and MLP (`heads,mlps`) when
    clean and corrupted prompts share their last token; it needs the
    counterfactual source (skipped otherwise). `step(name)` is called as each part
    starts and `tick(text)` within parts (progress lines). `bound_order`, `bound_polish_starts` and `bound_max_points` go to
    `theorem_table` (the sampled-sup bound's sets and effort).
    """
    problems = {s: build_problem(model, prompts, components, direction=direction, source=source,
                                 semantics=s, metric=metric) for s in SEMANTICS}
    names = [c.name for c in components]
    lengths = prompts.lengths
    per_prompt = prompt_roles(prompts)

    def structure(T: tuple[int, ...]) -> dict:
        return predicted_slopes(reads_matrix([components[i] for i in T], per_prompt, lengths))

    table = theorem_table(lambda s, t: problems[s].with_source_scale(t), order=order, n_check=n_check,
                          structure=structure, derivative_game=problems["recompute"].with_dtype(jnp.float32),
                          step=step, tick=tick, bound_order=bound_order, bound_polish_starts=bound_polish_starts,
                          bound_max_points=bound_max_points)
    table["checked_sets"] = [set_name(tuple(T), names) for T in table["checked_sets"]]
    for row in table["slopes_by_set"]:
        row["set"] = [names[i] for i in row["set"]]
        if "chain" in row:
            row["chain"] = [names[i] for i in row["chain"]]
            row["cover"] = [[names[i] for i in block] for block in row["cover"]]
    cut = list(components if cut is None else cut)
    if source != "counterfactual":
        table["duality"] = dict(skipped=f"the duality compares the two directions of a counterfactual patch; "
                                        f"source {source!r} has no reverse game")
        return TheoremTable.from_dict(table)
    reverse = "denoising" if direction == "noising" else "noising"
    table["duality"] = dict(cut=[c.name for c in cut], direction=direction)
    if step is not None:
        step(f"noising/denoising duality over {len(cut)} components")
    for semantics in SEMANTICS:
        game, back = (build_problem(model, prompts, cut, direction=d, source=source, semantics=semantics,
                                    metric=metric) for d in (direction, reverse))
        table["duality"][semantics] = duality_check(game, back)
    return TheoremTable.from_dict(table)
