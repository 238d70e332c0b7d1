"""The output folder a command writes: checked writable before any model work, and locked
while a run uses it, so two runs cannot write the same checkpoints.

The lock is a file `DIR/.intjax.lock` holding the owner's pid, host, command and
start time, created atomically (O_EXCL). A second run finds it and is refused
in one line naming the owner; a lock left by a process that is gone (same host,
pid no longer running) is taken over with a note.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from intjax.errors import InputError

LOCK_NAME = ".intjax.lock"


def _alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def _owner(lock: Path) -> dict:
    """What a lock file says about its owner ({} if unreadable)."""
    try:
        return json.loads(lock.read_text())
    except (OSError, ValueError):
        return {}


def check_writable(folder: Path) -> Path:
    """Create `folder` if needed and prove it takes a file, or InputError naming the fix."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".intjax-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise InputError(f"cannot write to the output folder {folder} ({e.strerror or e}); "
                         "choose another --out") from None
    return folder


@contextlib.contextmanager
def claimed_output(folder: str | Path, command: str, process_id: int = 0) -> Iterator[Path]:
    """Hold the lock of `folder` (created, checked writable) for the duration of a run."""
    folder = check_writable(Path(folder))
    lock = folder / (LOCK_NAME if process_id == 0 else f"{LOCK_NAME}.{process_id}")
    me = dict(pid=os.getpid(), host=socket.gethostname(), command=command,
              started=time.strftime("%Y-%m-%d %H:%M:%S"))
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            owner = _owner(lock)
            pid, host = owner.get("pid"), owner.get("host")
            if not isinstance(pid, int) or (host == me["host"] and not _alive(pid)):
                print(f"intjax: note: taking over {lock} left by a run that is gone "
                      f"(pid {pid}, {owner.get('command', '?')})", file=sys.stderr)
                lock.unlink(missing_ok=True)
                continue
            where = "" if host == me["host"] else f" on {host} (delete {lock} if that run is gone)"
            raise InputError(f"{folder} is in use by process {pid}{where} ({owner.get('command', '?')}, "
                             f"started {owner.get('started', '?')}); wait for it to finish or choose "
                             "another --out") from None
    else:
        raise InputError(f"could not take the lock {lock}; delete it if no run uses {folder}")
    with os.fdopen(fd, "w") as f:
        json.dump(me, f)
    try:
        yield folder
    finally:
        if _owner(lock).get("pid") == me["pid"]:
            lock.unlink(missing_ok=True)
