"""How many XLA programs a block of code built and how long tracing, lowering and compiling took,
read from `jax.monitoring` events (the listeners live only inside `count_compiles`)."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import time
from typing import Any, Iterator

TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
LOWER_EVENT = "/jax/core/compile/jaxpr_to_mlir_module_duration"
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"  # one per program, compiled or loaded from the cache
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"


@dataclasses.dataclass
class CompileStats:
    """XLA programs built inside `count_compiles` and the seconds spent making them."""

    programs: int = 0  # built: compiled, or loaded from the persistent compilation cache
    from_cache: int = 0  # of those, loaded from the cache
    compile_s: float = 0.0  # XLA compilation (or cache loading)
    trace_s: float = 0.0  # Python tracing to jaxprs
    lower_s: float = 0.0  # jaxprs to MLIR
    wall_s: float = 0.0  # the whole block
    by_name: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def as_dict(self) -> dict[str, Any]:
        """The numbers for summary.json (seconds rounded to ms), with run_s = wall − the three others."""
        spent = self.compile_s + self.trace_s + self.lower_s
        return dict(programs=self.programs, from_cache=self.from_cache, compile_s=round(self.compile_s, 3),
                    trace_s=round(self.trace_s, 3), lower_s=round(self.lower_s, 3),
                    run_s=round(max(0.0, self.wall_s - spent), 3), wall_s=round(self.wall_s, 3),
                    by_name=dict(self.by_name.most_common()))

    def line(self) -> str:
        """One line for the end of a command."""
        cached = f", {self.from_cache} from the cache" if self.from_cache else ""
        return (f"{self.programs} XLA programs{cached}: compiling {self.compile_s:.1f} s, tracing "
                f"{self.trace_s:.1f} s, lowering {self.lower_s:.1f} s, of {self.wall_s:.1f} s")


@contextlib.contextmanager
def count_compiles() -> Iterator[CompileStats]:
    """Count the programs JAX builds inside the block (see `CompileStats`)."""
    import jax.monitoring as monitoring

    stats = CompileStats()
    seconds = {TRACE_EVENT: "trace_s", LOWER_EVENT: "lower_s", COMPILE_EVENT: "compile_s"}

    def on_duration(event: str, duration: float, **kwargs: Any) -> None:
        if event in seconds:
            setattr(stats, seconds[event], getattr(stats, seconds[event]) + duration)
        if event == COMPILE_EVENT:
            stats.programs += 1
            stats.by_name[str(kwargs.get("fun_name", "?"))] += 1

    def on_event(event: str, **kwargs: Any) -> None:
        if event == CACHE_HIT_EVENT:
            stats.from_cache += 1

    monitoring.register_event_duration_secs_listener(on_duration)
    monitoring.register_event_listener(on_event)
    t0 = time.perf_counter()
    try:
        yield stats
    finally:
        stats.wall_s = time.perf_counter() - t0
        monitoring.unregister_event_duration_listener(on_duration)
        monitoring.unregister_event_listener(on_event)
