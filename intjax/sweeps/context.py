"""How a run's sweeps run: one frozen value that every study takes instead of loose keyword arguments.

A `SweepContext` holds the memory budget per chunk, the masks per chunk, the
checkpoint folder, the run's vertex cache, whether progress bars show and whether
saved sweeps are discarded. `child(name)` is the same context one checkpoint
folder down; `game(problem, name)` is the checkpointed game of a problem in the
folder `name` (the pattern every study used to write by hand). Devices are not
a setting: `intjax.patching.evaluate` spreads each chunk over this process's
devices (`local_mesh`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import numpy as np
from jaxtyping import ArrayLike, Float

from intjax import codec
from intjax.errors import InputError
from intjax.patching.evaluate import DEFAULT_MEMORY_BYTES, evaluate
from intjax.patching.problem import PatchProblem
from intjax.sweeps.runner import CheckpointedGame
from intjax.sweeps.vertex_cache import VertexCache


Result = TypeVar("Result")


@dataclasses.dataclass(frozen=True)
class SweepContext:
    """The settings every sweep of a run shares (see the module doc)."""

    memory_bytes: int = DEFAULT_MEMORY_BYTES  # activations per chunk of masks
    chunk: Optional[int] = None  # masks per chunk (None: from memory_bytes)
    checkpoints: Optional[Path] = None  # this context's checkpoint folder (None: no checkpoints)
    cache: Optional[VertexCache] = None  # vertex values shared by the run's sweeps
    quiet: bool = True  # no progress bars
    restart: bool = False  # discard saved sweeps and start over

    def __post_init__(self):
        if not isinstance(self.memory_bytes, int) or self.memory_bytes <= 0:
            raise InputError(f"memory_bytes={self.memory_bytes!r}: give a positive number of bytes "
                             "(e.g. SweepContext.of(memory_gb=1.0))")
        if self.chunk is not None and (not isinstance(self.chunk, int) or self.chunk <= 0):
            raise InputError(f"chunk={self.chunk!r}: give a positive number of masks per chunk, or None to "
                             "size chunks from the memory budget")
        if self.checkpoints is not None and not isinstance(self.checkpoints, Path):
            object.__setattr__(self, "checkpoints", Path(self.checkpoints))

    @classmethod
    def of(cls, *, memory_gb: float = DEFAULT_MEMORY_BYTES / 2**30, checkpoints: Optional[str | Path] = None,
           cache: Optional[VertexCache] = None, quiet: bool = True, restart: bool = False,
           chunk: Optional[int] = None) -> "SweepContext":
        """A context from a memory budget in GiB (as the command line gives it)."""
        if not memory_gb > 0:
            raise InputError(f"memory_gb={memory_gb!r}: give a memory budget above 0 GiB per chunk of masks")
        return cls(int(memory_gb * 2**30), chunk, None if checkpoints is None else Path(checkpoints), cache,
                   quiet, restart)

    def child(self, name: str) -> "SweepContext":
        """The same context with its checkpoints one folder down, in `name`."""
        folder = None if self.checkpoints is None else self.checkpoints / name
        return dataclasses.replace(self, checkpoints=folder)

    def folder(self, name: str) -> Optional[Path]:
        """The checkpoint folder `name` of this context (None without checkpoints)."""
        return None if self.checkpoints is None else self.checkpoints / name

    def game(self, problem: PatchProblem, name: str, *, desc: str = "patching",
             options: Optional[dict[str, Any]] = None, bar: bool = True) -> CheckpointedGame:
        """The checkpointed game of `problem`, its sweeps saved in the folder `name`; `options` join the
        sweeps' fingerprints; `bar=False` hides its progress bars even when the context shows them."""
        return CheckpointedGame(problem, self.folder(name), memory_bytes=self.memory_bytes, chunk=self.chunk,
                                quiet=self.quiet or not bar, restart=self.restart, desc=desc, options=options,
                                cache=self.cache)

    def evaluate(self, problem: PatchProblem, masks: Float[ArrayLike, "M n"]) -> Float[np.ndarray, "M P"]:
        """f at every mask under this context's memory budget and cache, without checkpoints."""
        return evaluate(problem, masks, memory_bytes=self.memory_bytes, chunk=self.chunk, cache=self.cache)

    def is_saved(self, name: str, inputs: dict[str, Any]) -> bool:
        """Whether `saved(name, inputs, ...)` would read its value back (a whole save with equal inputs)."""
        return self._read(name, inputs)[0]

    def _read(self, name: str, inputs: dict[str, Any]) -> tuple[bool, Any]:
        """(True, the value) of a whole save of `name` with equal inputs, else (False, None): none, other
        inputs, `restart`, or a file damaged or from another version."""
        path = self.folder(name)
        if path is None or self.restart or not path.with_suffix(".json").is_file():
            return False, None
        try:
            saved_inputs, result = codec.load(path)
        except Exception:
            return False, None
        return (True, result) if saved_inputs == inputs else (False, None)

    def saved(self, name: str, inputs: dict[str, Any], compute: Callable[[], Result]) -> Result:
        """`compute()`, kept in this context's folder as `name`.json/.npz (`intjax.codec`) beside `inputs`:
        a rerun with equal inputs reads it back instead of computing it again, so a run stopped after
        this part redoes none of it; other inputs, `restart`, or a damaged file compute it anew.
        Without a folder it just computes."""
        path = self.folder(name)
        if path is None:
            return compute()
        found, result = self._read(name, inputs)
        if found:
            return result
        result = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        codec.save((inputs, result), path)  # its .json, written last, marks a whole save
        return result
