"""Witness importance: which components respond when a suspect is patched.

NIE_i(W) is the suspect i's NIE with the witnesses W held at their base-run
values while everything else recomputes (`build_problem(..., pin=W)`). The
importance of one candidate w is |NIE_i({w})| − |NIE_i(∅)|, from means over
prompts: large and positive for a component that compensates when i is
knocked out (a backup: pinning it unmasks i), negative for one that carries or
amplifies i's effect (a mediator: pinning it blocks that path). A candidate that does not read i (an earlier layer, or an earlier
position with no attention between) keeps its base value whether or not i is
patched, so pinning it changes nothing: such candidates are skipped, exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from intjax import bootstrap
from intjax.errors import InputError
from intjax.model.protocol import PatchableModel
from intjax.patching.components import Component
from intjax.sweeps.context import SweepContext
from intjax.patching.problem import build_problem
from intjax.patching.prompts import PromptSet
from intjax.patching.structure import prompt_roles, reads


@dataclasses.dataclass(frozen=True)
class WitnessImportance:
    """A suspect's NIE unpinned and with each candidate witness pinned, per prompt."""

    suspect: str
    witnesses: tuple[str, ...]  # the candidates that read the suspect, in the given order
    skipped: tuple[str, ...]  # candidates that do not read the suspect (importance exactly 0)
    direction: str
    nie: np.ndarray  # [P] NIE of the suspect, nothing pinned
    pinned: np.ndarray  # [P, m] NIE of the suspect with witness j pinned

    @property
    def importance(self) -> np.ndarray:
        """|mean NIE_i({w})| − |mean NIE_i(∅)| per witness, `[m]`."""
        return np.abs(self.pinned.mean(0)) - abs(self.nie.mean())

    def ci(self, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
        """Bootstrap `level` intervals of the importance over prompts, `[m, 2]`."""
        idx = bootstrap.draws(len(self.nie), n_boot, seed)
        boot = np.abs(self.pinned[idx].mean(1)) - np.abs(self.nie[idx].mean(1))[:, None]  # [B, m]
        return bootstrap.percentile_ci(boot, level, axis=0).T

    def ranked(self) -> list[int]:
        """Witness indices by decreasing importance."""
        return [int(i) for i in np.argsort(-self.importance, kind="stable")]


def witness_importance(
    model: PatchableModel,
    prompts: PromptSet,
    suspect: Component,
    candidates: Sequence[Component],
    *,
    direction: str = "noising",
    source: str = "counterfactual",
    metric: str = "logit_diff",
    sweeps: SweepContext = SweepContext(),
) -> WitnessImportance:
    """The suspect's NIE with each candidate pinned in turn (one problem per candidate that reads it),
    evaluated under `sweeps`'s memory budget and vertex cache."""
    per_prompt = list(zip(prompt_roles(prompts), prompts.lengths.tolist()))
    candidates = [c for c in candidates if c.name != suspect.name]
    downstream = [c for c in candidates if any(reads(suspect, c, r, t) for r, t in per_prompt)]
    if not downstream:
        raise InputError(f"no candidate witness reads {suspect.name}: pinning a component upstream of it "
                         "changes nothing; give components in later layers")
    kw = dict(direction=direction, source=source, metric=metric)
    base, patched = sweeps.evaluate(build_problem(model, prompts, [suspect], **kw), np.array([[0.0], [1.0]]))
    # Pinning at base values leaves the unpatched run as it is, so f(0) is shared. One build holds the
    # base runs with every witness's site kinds; each witness is then swapped in without rerunning them.
    carriers = list({s.kind: w for w in downstream for s in w.sites}.values())  # one witness per site kind
    holder = build_problem(model, prompts, [suspect], pin=list(dict.fromkeys(carriers)), **kw)
    pinned = [sweeps.evaluate(holder.with_pin(prompts, [w]), np.ones((1, 1)))[0] for w in downstream]
    return WitnessImportance(
        suspect.name, tuple(c.name for c in downstream),
        tuple(c.name for c in candidates if c not in downstream), direction,
        patched - base, np.stack(pinned, axis=1) - base[:, None],
    )
