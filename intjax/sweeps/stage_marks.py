"""Which stages of a multi-stage run an earlier run into the same folder finished.

Each finished stage leaves a mark beside the run's checkpoints, saved with the
run's inputs (model, prompts, options, code). A resumed run with equal inputs
finds the marks before it starts, so its plan estimates those stages as read
back (`intjax.progress.Stages(saved=...)`) instead of as computed: the ETA of a
resumed run stays true. A mark only promises that every part of its stage is
saved (each stage checkpoints its sweeps and `SweepContext.saved` its other parts).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from intjax.sweeps.context import SweepContext

FOLDER = "stages"


@dataclasses.dataclass(frozen=True)
class StageMarks:
    """The marks of the stages `names` of one run, in `sweeps`' folder `stages/`, for `inputs`."""

    sweeps: SweepContext
    names: tuple[str, ...]
    inputs: dict[str, Any]

    def _name(self, stage: str) -> str:
        return f"{FOLDER}/{self.names.index(stage) + 1}"

    def finished(self, all_names: Sequence[str]) -> list[bool]:
        """For each of `all_names`: whether an earlier run with these inputs finished it (unmarked names: no)."""
        return [n in self.names and self.sweeps.is_saved(self._name(n), self.inputs) for n in all_names]

    def mark(self, stage: str) -> None:
        """Record that `stage` finished (a name outside `names` is not marked: its stage is always redone)."""
        if stage in self.names:
            self.sweeps.saved(self._name(stage), self.inputs, lambda: stage)
