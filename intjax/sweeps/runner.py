"""A sweep that survives crashes: f at many masks, chunk by chunk, checkpointed with orbax.

Finished chunks are saved (orbax CheckpointManager: the values so far and
which chunks are done) at most every `save_every_s` seconds, after the last
chunk, and when the sweep stops on an exception or Ctrl-C; each saved chunk is
logged in `chunks.log`. The same call after `kill -9` restores the last
checkpoint and runs only the chunks not yet saved (at most `save_every_s` of
work is lost); a fingerprint (model, prompts, sources, masks, options) must
match, or the sweep refuses to resume and says what changed.
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import numpy as np

from intjax.errors import IntjaxError
from intjax.patching.evaluate import DEFAULT_MEMORY_BYTES, Schedule, evaluate
from intjax.patching.problem import PatchProblem
from intjax.sweeps.fingerprint import sweep_fingerprint


class ResumeError(IntjaxError):
    """A saved sweep cannot be resumed (changed inputs, or a damaged checkpoint)."""


def _manager(folder: Path):
    """An orbax manager private to this process (each process checkpoints its own chunks)."""
    import jax
    import orbax.checkpoint as ocp

    pid = jax.process_index()
    local = ocp.options.MultiprocessingOptions(primary_host=pid, active_processes={pid},
                                               barrier_sync_key_prefix=f"intjax_p{pid}")
    options = ocp.CheckpointManagerOptions(max_to_keep=2, create=False, enable_async_checkpointing=False,
                                           multiprocessing_options=local)
    (folder / "state").mkdir(parents=True, exist_ok=True)
    return ocp.CheckpointManager(folder.resolve() / "state", options=options)


def _describe_change(saved: dict, current: dict) -> str:
    keys = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    return ", ".join(f"{k} (saved {saved.get(k)!r}, now {current.get(k)!r})"
                     if not isinstance(saved.get(k), list) else k for k in keys)


def run_sweep(
    problem: PatchProblem,
    masks: np.ndarray,
    folder: Optional[str | Path] = None,
    *,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    chunk: Optional[int] = None,
    restart: bool = False,
    quiet: bool = False,
    desc: str = "patching",
    options: Optional[dict[str, Any]] = None,
    save_every_s: float = 5.0,
    cache: Any = None,
) -> np.ndarray:
    """f at every mask, `[M, P]` float64, resumable from `folder` (no persistence if None).

    `evaluate` with a `SweepCheckpoint` in `folder`: the same loop, chunks and
    values. `options` joins the fingerprint (anything else that changes the
    answer). `restart=True` discards a saved sweep in `folder` and starts over.
    `cache`: a `VertexCache`; rows it knows are not swept (see `evaluate`).
    """
    checkpoint = None if folder is None else SweepCheckpoint(folder, restart=restart, options=options,
                                                              save_every_s=save_every_s)
    return evaluate(problem, masks, memory_bytes=memory_bytes, chunk=chunk, checkpoint=checkpoint,
                    quiet=quiet, desc=desc, cache=cache)


class SweepCheckpoint:
    """Finished chunks of one sweep in `folder` (orbax), saved at most every `save_every_s`
    seconds and when the sweep ends or stops; with several processes, each keeps its
    own chunks in `folder/process_i_of_n`. A save runs on a background thread from a copy
    of the values, so the sweep goes on meanwhile; the next save (and `close`) waits for it."""

    def __init__(self, folder: str | Path, *, restart: bool = False, options: Optional[dict[str, Any]] = None,
                 save_every_s: float = 5.0):
        self.folder, self.restart, self.options = Path(folder), restart, options or {}
        self.save_every_s = save_every_s
        self.manager, self.unsaved, self.last_save = None, [], time.monotonic()
        self.saver: Optional[ThreadPoolExecutor] = None
        self.saving: Optional[Future] = None  # the save in flight

    def resume(self, problem: PatchProblem, masks: np.ndarray, plan: Schedule, n_devices: int,
               values: np.ndarray, done: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The saved values and done flags, after checking the sweep's fingerprint."""
        import jax

        pid, n_proc = jax.process_index(), jax.process_count()
        if n_proc > 1:
            self.folder = self.folder / f"process_{pid}_of_{n_proc}"
        fingerprint = sweep_fingerprint(problem, masks, chunk_size=plan.capacity, block=plan.block, n_devices=n_devices,
                                        process=f"{pid}/{n_proc}", **self.options)
        values, done, self.manager = _open(self.folder, fingerprint, values, done, self.restart)
        self.last_save = time.monotonic()
        return values, done

    def chunk_done(self, k: int, values: np.ndarray, done: np.ndarray) -> None:
        """Note chunk k; save if the last save is `save_every_s` old."""
        self.unsaved.append(k)
        if time.monotonic() - self.last_save >= self.save_every_s:
            self._flush(values, done)

    def close(self, values: np.ndarray, done: np.ndarray) -> None:
        """Save the chunks not yet saved, wait for every save, and release the orbax manager."""
        if self.manager is None:
            return
        try:
            if self.unsaved:
                self._flush(values, done)
            self._wait()
        finally:
            if self.saver is not None:  # also after Ctrl-C: let a save in flight finish
                self.saver.shutdown(wait=True)
                self.saver = None
            self.manager.close()
            self.manager = None

    def _flush(self, values: np.ndarray, done: np.ndarray) -> None:
        """Start saving a copy of the values (after the save before it has finished)."""
        self._wait()
        if self.saver is None:
            self.saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="intjax-checkpoint")
        chunks, self.unsaved, self.last_save = self.unsaved, [], time.monotonic()
        self.saving = self.saver.submit(_save, self.manager, self.folder, chunks, values.copy(), done.copy())

    def _wait(self) -> None:
        """Wait for the save in flight; a failed save raises here."""
        saving, self.saving = self.saving, None
        if saving is not None:
            saving.result()


def _open(folder: Path, fingerprint: dict, values: np.ndarray, done: np.ndarray, restart: bool):
    meta = folder / "sweep.json"
    if restart and folder.exists():
        shutil.rmtree(folder)
    if meta.is_file():
        try:
            saved = json.loads(meta.read_text())
        except json.JSONDecodeError as e:
            raise ResumeError(f"{meta} is damaged ({e}); rerun with --restart to start over") from e
        if saved != fingerprint:
            raise ResumeError(
                f"{folder} holds a sweep with other inputs: {_describe_change(saved, fingerprint)}. "
                "Use another --out folder, or rerun with --restart to discard it"
            )
    else:
        folder.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps(fingerprint, indent=1))
    manager = _manager(folder)
    step = manager.latest_step()
    if step is not None:
        import orbax.checkpoint as ocp

        try:
            state = manager.restore(step, args=ocp.args.StandardRestore({"values": values, "done": done}))
        except Exception as e:
            raise ResumeError(
                f"the checkpoint in {folder / 'state'} (step {step}) cannot be read "
                f"({type(e).__name__}: {str(e)[:200]}); rerun with --restart to start over"
            ) from e
        values, done = np.asarray(state["values"]).copy(), np.asarray(state["done"]).copy()
    return values, done, manager


def _save(manager, folder: Path, chunks: list[int], values: np.ndarray, done: np.ndarray) -> None:
    import orbax.checkpoint as ocp

    step = int(done.sum())
    manager.save(step, args=ocp.args.StandardSave({"values": values, "done": done}), force=True)
    manager.wait_until_finished()
    with open(folder / "chunks.log", "a") as log:
        log.writelines(f"{k} {time.time():.3f}\n" for k in chunks)


class CheckpointedGame:
    """A PatchProblem whose `values` run as resumable sweeps in `folder/sweep_<k>`
    (k counts the calls, so a rerun of the same steps finds its own checkpoints);
    with `folder=None`, sweeps without checkpoints."""

    def __init__(self, problem: PatchProblem, folder: Optional[str | Path], *,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES, chunk: Optional[int] = None, restart: bool = False,
                 quiet: bool = False, desc: str = "patching", options: Optional[dict[str, Any]] = None,
                 cache: Any = None):
        self.problem = problem
        self.folder = None if folder is None else Path(folder)
        self.memory_bytes, self.chunk, self.restart, self.quiet = memory_bytes, chunk, restart, quiet
        self.desc, self.options, self.cache = desc, options, cache
        self.calls = 0

    @property
    def n_components(self) -> int:
        """n, the length of α."""
        return self.problem.n_components

    @property
    def names(self) -> list[str]:
        """Component names in α order."""
        return self.problem.names

    def __call__(self, alpha):
        """f(α) per prompt (the problem's differentiable path)."""
        return self.problem(alpha)

    def values(self, masks: np.ndarray) -> np.ndarray:
        """f at each mask, `[M, P]`, as a checkpointed sweep."""
        folder = None if self.folder is None else self.folder / f"sweep_{self.calls}"
        self.calls += 1
        return run_sweep(self.problem, masks, folder, memory_bytes=self.memory_bytes, chunk=self.chunk,
                         restart=self.restart, quiet=self.quiet, desc=self.desc, options=self.options,
                         cache=self.cache)
