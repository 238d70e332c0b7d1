"""Stage lines for long commands: the plan first (with estimated times when given), then one
line as each stage starts and ends, on stderr (progress bars of the sweeps inside a stage come
from `evaluate`)."""

from __future__ import annotations

import contextlib
import functools
import math
import sys
import time
from typing import Any, Callable, Iterator, NamedTuple, Optional, Sequence

import numpy as np

from intjax.compile_stats import count_compiles


def _duration(seconds: float) -> str:
    """'<1 s', '45 s', '3.2 min' or '1.4 h'."""
    if seconds < 1:
        return "<1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


NOTE_EVERY_S = 5.0  # `tick` prints at most one line this often
COMPILE_S_PER_STAGE = 4.0  # compiling a stage's programs, in estimates (less with a warm compilation cache)
# seconds of the plan believed as estimated before measured stages rescale the rest: running, compiling
ETA_PRIOR_S, ETA_COMPILE_PRIOR_S = 30.0, 5.0
# a stage done in under this share of its estimate with under 1 s of compiling took its work from a checkpoint
# (a resumed run) or a cache: it says nothing about this machine's speed and is left out of the rescaling
READ_BACK_SHARE = 0.2
# what a stage that an earlier run finished (`Stages(saved=...)`) is estimated to take: reading its parts
# back (a fully resumed `intjax demo --smoke` read stages 1-5 back in 0.0-0.5 s and
# the studies in 1.2 s on the idle 2-core CPU; the report after them took 2.7-3.9 s)
SAVED_STAGE_S = 0.4


class Stages:
    """The named stages of one run; `quiet=True` prints nothing.

    `estimates` (seconds per stage, optional) are printed with the plan; as
    stages finish, the rest of the plan is rescaled by how long the finished
    ones took against their estimates. Stages flagged in `saved` were finished
    by an earlier run: they are estimated at `SAVED_STAGE_S` (reading back) and
    left out of the rescaling.
    """

    def __init__(self, names: Sequence[str], quiet: bool = False, title: str = "plan",
                 estimates: Optional[Sequence[float]] = None, notes: Sequence[str] = (),
                 compiling: Optional[Sequence[float]] = None, saved: Sequence[bool] = (),
                 on_done: Optional[Callable[[str], None]] = None):
        self.names, self.quiet, self.on_done = list(names), quiet, on_done
        self.saved = {n for n, s in zip(self.names, saved) if s}
        self.estimates = list(estimates) if estimates is not None else None
        # the compiling part of each estimate (default COMPILE_S_PER_STAGE where a stage has an estimate)
        self.compiling = (list(compiling) if compiling is not None else
                          [COMPILE_S_PER_STAGE if e > 0 else 0.0 for e in self.estimates or []])
        if self.estimates is not None:
            self.estimates = [SAVED_STAGE_S if n in self.saved else e for n, e in zip(self.names, self.estimates)]
            self.compiling = [0.0 if n in self.saved else c for n, c in zip(self.names, self.compiling)]
        self.start = time.perf_counter()
        self._last_note = 0.0  # when `note` last printed (`tick` waits NOTE_EVERY_S after it)
        self.seconds: dict[str, float] = {}
        self.compile_seconds: dict[str, float] = {}  # of each finished stage: tracing, lowering, compiling
        if self.estimates is None:
            self._say(f"{title}: " + "; ".join(f"{i + 1}. {n}" for i, n in enumerate(self.names)))
        else:
            self._say(f"{title}, estimated {_duration(sum(self.estimates))} in all:")
            for i, (n, e) in enumerate(zip(self.names, self.estimates)):
                saved = "saved by an earlier run: read back, " if n in self.saved else ""
                self._say(f"  {i + 1}. {n}" + (f" ({saved}~{_duration(e)})" if e else ""))
        for line in notes:
            self._say(f"  {line}")

    def _say(self, line: str) -> None:
        if not self.quiet:
            print(line, file=sys.stderr, flush=True)

    def read_back(self, name: str) -> bool:
        """Whether finished stage `name` was saved by an earlier run or looks read back from a checkpoint or a
        cache (`READ_BACK_SHARE`)."""
        if name in self.saved:
            return True
        e = self.estimates[self.names.index(name)] if self.estimates else 0.0
        return self.seconds[name] < READ_BACK_SHARE * e and self.compile_seconds.get(name, 0.0) < 1.0

    def _finished(self) -> list[tuple[float, float, float, float]]:
        """(measured running, estimated running, measured compiling, estimated compiling) of each
        finished stage that had an estimate and was not read back."""
        out = []
        for n, e, c in zip(self.names, self.estimates or [], self.compiling):
            if n in self.seconds and e > 0 and not self.read_back(n):
                compiled = self.compile_seconds.get(n, 0.0)
                out.append((self.seconds[n] - compiled, max(e - c, 0.0), compiled, c))
        return out

    def scale(self) -> float:
        """Measured over estimated running time (compiling apart) of the finished stages, each side with
        `ETA_PRIOR_S` of the plan added (1 before any stage): one fast or slow stage does not
        multiply the whole rest of the plan."""
        done = self._finished()
        return (sum(d[0] for d in done) + ETA_PRIOR_S) / (sum(d[1] for d in done) + ETA_PRIOR_S)

    def compile_scale(self) -> float:
        """The same for compiling (`ETA_COMPILE_PRIOR_S` added): a warm compilation cache shows here."""
        done = self._finished()
        return (sum(d[2] for d in done) + ETA_COMPILE_PRIOR_S) / (sum(d[3] for d in done) + ETA_COMPILE_PRIOR_S)

    def _expected(self, i: int) -> float:
        """What stage i should take now: its running and compiling parts, each rescaled."""
        e, c = self.estimates[i], self.compiling[i]
        return self.scale() * max(e - c, 0.0) + self.compile_scale() * c if e > 0 else 0.0

    def remaining(self) -> Optional[float]:
        """Expected seconds of the stages not finished yet (see `scale` and `compile_scale`)."""
        if self.estimates is None:
            return None
        return sum(self._expected(i) for i, n in enumerate(self.names) if n not in self.seconds)

    def note(self, text: str) -> None:
        """A line inside the current stage (a part of it starting)."""
        self._last_note = time.perf_counter()
        self._say(f"    {text} ... ({self._last_note - self.start:.0f} s so far)")

    def tick(self, text: str) -> None:
        """A `note` for one of many repeated parts: printed only when the last line is 5 s old or more."""
        if time.perf_counter() - self._last_note >= NOTE_EVERY_S:
            self.note(text)

    @contextlib.contextmanager
    def stage(self, name: str, detail: str = "") -> Iterator[None]:
        """Run one stage: a line when it starts (with `detail` and its estimate) and when it ends (its time)."""
        i = self.names.index(name)
        tag = f"[{i + 1}/{len(self.names)}] {name}"
        eta = ""
        if self.estimates is not None and self.estimates[i] > 0:
            eta = f" (~{_duration(self._expected(i))})"
        self._say(f"{tag}{': ' + detail if detail else ''}{eta} ...")
        t0 = time.perf_counter()
        with count_compiles() as made:
            yield
        self.seconds[name] = time.perf_counter() - t0
        if self.on_done is not None:
            self.on_done(name)
        self.compile_seconds[name] = made.compile_s + made.trace_s + made.lower_s
        rest = self.remaining()
        left = f"; ~{_duration(rest)} to go" if rest and i + 1 < len(self.names) else ""
        compiling = f", {self.compile_seconds[name]:.0f} s of it compiling" if self.compile_seconds[name] >= 1 else ""
        self._say(f"{tag}: done in {self.seconds[name]:.1f} s{compiling} "
                  f"({time.perf_counter() - self.start:.0f} s so far{left})")


class ForwardTiming(NamedTuple):
    """What timing the model's forward found: seconds per prompt, and whether its program was loaded from the
    persistent compilation cache (an earlier run compiled this model's shapes: the run's other programs
    are likely there too, and compiling costs a fraction of a cold run's)."""

    seconds: float
    from_cache: bool


def timed_forward(model: Any, n_tokens: int, batch: int = 8) -> ForwardTiming:
    """Seconds one prompt of `n_tokens` takes through every layer of `model` on the default device (best of 3),
    and whether the timed program came from the compilation cache."""
    import jax.numpy as jnp

    tokens = jnp.zeros((batch, n_tokens), jnp.int32)
    with count_compiles() as made:
        _trunk(model, tokens).block_until_ready()  # compile
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        _trunk(model, tokens).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return ForwardTiming(best / batch, made.from_cache > 0 and made.from_cache == made.programs)


def seconds_per_forward(model: Any, n_tokens: int, batch: int = 8) -> float:
    """Seconds one prompt of `n_tokens` takes through every layer of `model` on the default device."""
    return timed_forward(model, n_tokens, batch).seconds


@functools.cache
def _trunk_program():
    """The last position's final residual of every prompt (no unembedding), jitted with the weights as
    ARGUMENTS: a closure would bake them into the program as constants (GPT-2 small: 16 s of compiling
    instead of 2 s). Made once; jax is imported only when a forward is timed."""
    import equinox as eqx
    import jax

    return eqx.filter_jit(lambda m, t: jax.vmap(lambda x: m(x)[1].resid_post[-1, -1])(t))


def _trunk(model: Any, tokens: Any) -> Any:
    return _trunk_program()(model, tokens)


def mean_length(lengths: np.ndarray) -> int:
    """The mean prompt length, rounded up (the calibration forward's length)."""
    return int(math.ceil(float(np.mean(lengths))))
