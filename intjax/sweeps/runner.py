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
from pathlib import Path
from typing import Any, Optional

import numpy as np
from tqdm.auto import tqdm

from intjax.errors import IntjaxError
from intjax.patching.evaluate import (
    DEFAULT_MEMORY_BYTES, check_masks, chunk_size, local_mesh, plan_chunks, replicate, run_chunk,
)
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
) -> np.ndarray:
    """f at every mask, `[M, P]` float64, resumable from `folder` (no persistence if None).

    Each chunk is split over this process's devices. Under
    `jax.distributed.initialize` with several processes, process i runs chunks
    i, i + n, … (checkpointed in `folder/process_i_of_n`) and the values are
    all-gathered at the end, so every process returns all of them.
    `options` joins the fingerprint (anything else that changes the answer).
    `restart=True` discards a saved sweep in `folder` and starts over.
    """
    import jax

    masks = check_masks(problem, masks)
    pid, n_proc = jax.process_index(), jax.process_count()
    mesh = local_mesh()
    n_devices = 1 if mesh is None else mesh.size
    size = chunk or chunk_size(problem, memory_bytes) * n_devices
    chunks = plan_chunks(problem, masks, size, n_devices)
    mine = np.arange(len(chunks)) % n_proc == pid  # with several processes (hosts), chunk k is process k % n's
    values = np.full((masks.shape[0], problem.n_prompts), np.nan)
    done = ~mine
    manager = None
    if folder is not None:
        folder = Path(folder) if n_proc == 1 else Path(folder) / f"process_{pid}_of_{n_proc}"
        fingerprint = sweep_fingerprint(problem, masks, chunk_size=size, n_devices=n_devices,
                                        process=f"{pid}/{n_proc}", **(options or {}))
        values, done, manager = _open(folder, fingerprint, values, done, restart)
    problem = replicate(problem, mesh)
    runs_per_chunk = [len(c.rows) * problem.n_prompts * int(m) for c, m in zip(chunks, mine)]
    with tqdm(total=sum(runs_per_chunk), initial=sum(r for r, d in zip(runs_per_chunk, done) if d),
              unit="run", desc=desc, disable=quiet, smoothing=0.1) as bar:
        unsaved: list[int] = []  # chunks done since the last save
        last_save = time.monotonic()
        try:
            for k, c in enumerate(chunks):
                if done[k]:
                    continue
                values[c.rows] = run_chunk(problem, masks, c, mesh)
                done[k] = True
                unsaved.append(k)
                if manager is not None and time.monotonic() - last_save >= save_every_s:
                    _save(manager, folder, unsaved, values, done)
                    unsaved, last_save = [], time.monotonic()
                bar.update(runs_per_chunk[k])
        finally:  # the last chunks, or what was finished before an error or Ctrl-C
            if manager is not None and unsaved:
                _save(manager, folder, unsaved, values, done)
    if manager is not None:
        manager.close()
    if n_proc > 1:
        values = _gather(values, chunks, n_proc)
    return values


def _gather(values: np.ndarray, chunks: list, n_proc: int) -> np.ndarray:
    """Every process's chunks, on every process (a JAX cross-process all-gather)."""
    from jax.experimental import multihost_utils

    everyone = np.asarray(multihost_utils.process_allgather(values))  # [n_proc, M, P]
    out = np.empty_like(values)
    for k, c in enumerate(chunks):
        out[c.rows] = everyone[k % n_proc, c.rows]
    return out


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

    def __init__(self, problem: PatchProblem, folder: Optional[str | Path], **sweep_kwargs: Any):
        self.problem = problem
        self.folder = None if folder is None else Path(folder)
        self.sweep_kwargs = sweep_kwargs
        self.calls = 0

    @property
    def n_components(self) -> int:
        """n, the length of α."""
        return self.problem.n_components

    def __call__(self, alpha):
        """f(α) per prompt (the problem's differentiable path)."""
        return self.problem(alpha)

    def values(self, masks: np.ndarray, **overrides: Any) -> np.ndarray:
        """f at each mask, `[M, P]`, as a checkpointed sweep."""
        folder = None if self.folder is None else self.folder / f"sweep_{self.calls}"
        self.calls += 1
        return run_sweep(self.problem, masks, folder, **{**self.sweep_kwargs, **overrides})
