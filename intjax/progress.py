"""Stage lines for long commands: the plan first, then one line as each stage starts and ends,
on stderr (progress bars of the sweeps inside a stage come from `evaluate`)."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Iterator, Sequence


class Stages:
    """The named stages of one run; `quiet=True` prints nothing."""

    def __init__(self, names: Sequence[str], quiet: bool = False, title: str = "plan"):
        self.names, self.quiet = list(names), quiet
        self.start = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self._say(f"{title}: " + "; ".join(f"{i + 1}. {n}" for i, n in enumerate(self.names)))

    def _say(self, line: str) -> None:
        if not self.quiet:
            print(line, file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        """A line inside the current stage (a part of it starting)."""
        self._say(f"    {text} ... ({time.perf_counter() - self.start:.0f} s so far)")

    @contextlib.contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        """Run one stage: a line when it starts (with `detail`) and when it ends (its time)."""
        tag = f"[{self.names.index(name) + 1}/{len(self.names)}] {name}"
        self._say(f"{tag}{': ' + detail if detail else ''} ...")
        t0 = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - t0
        self._say(f"{tag}: done in {self.seconds[name]:.1f} s ({time.perf_counter() - self.start:.0f} s so far)")
