"""Ctrl-C and SIGTERM as exceptions that always reach the command, even when they land in code
that swallows exceptions (an import, a garbage-collector callback such as JAX's)."""

from __future__ import annotations

import _thread
import contextlib
import signal
import sys
import threading
from typing import Iterator


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt so that sweeps save their finished chunks."""


def _raise_for(signum: int) -> None:
    """Raise the exception of signal `signum`."""
    raise KeyboardInterrupt() if signum == signal.SIGINT else Terminated()


class Signals:
    """The signals received while `raising_signals` is active, and whether raising them waits."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.waiting = False

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Within the block a signal is only recorded, and raised when the block ends: for imports,
        which a KeyboardInterrupt halfway through leaves broken (an ImportError, a traceback)."""
        self.waiting = True
        try:
            yield
        finally:
            self.waiting = False
        if self.received:
            _raise_for(self.received[0])


@contextlib.contextmanager
def raising_signals() -> Iterator[Signals]:
    """Within the block SIGINT raises KeyboardInterrupt and SIGTERM raises Terminated (a SIGINT ignored
    when the block starts stays ignored). One raised where Python can only print it ("Exception ignored
    in ...", e.g. inside JAX's gc callback) is not printed but raised again in the main thread."""
    signals = Signals()
    if threading.current_thread() is not threading.main_thread():
        yield signals
        return

    def handler(signum: int, frame) -> None:
        signals.received.append(signum)
        if not signals.waiting:
            _raise_for(signum)

    previous_hook = sys.unraisablehook

    def unraisable(info) -> None:
        if signals.received and issubclass(info.exc_type, (KeyboardInterrupt, Terminated)):
            # _thread.interrupt_main runs the handler at the main thread's next Python step, which is
            # after the code that swallowed this one
            threading.Timer(0.01, _thread.interrupt_main, args=(signals.received[-1],)).start()
            return
        previous_hook(info)

    caught = [signal.SIGTERM] + [signal.SIGINT] * (signal.getsignal(signal.SIGINT) is not signal.SIG_IGN)
    previous = {s: signal.signal(s, handler) for s in caught}
    sys.unraisablehook = unraisable
    try:
        yield signals
    finally:
        sys.unraisablehook = previous_hook
        for s, h in previous.items():
            signal.signal(s, h)
