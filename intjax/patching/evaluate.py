"""Evaluate f at many masks: one compiled program per chunk shape, only the work needed.

Masks are grouped by the first layer they touch; each group starts from the
cached base run there (at the residual, or at the cached z or resid_mid when
the first edit is a head or an MLP), so nothing below a patch is recomputed.
Masks that agree on every component up to a layer share that layer's run
(`prefix_plan`: {i} and {i, j} compute the layers before j once), and chunks
are ordered so that their masks share prefixes. A chunk runs one jitted layer
step per layer (the layer index is traced, so all layers share one compile);
the last layer computes only the position the metric reads, and the readout
only the logits the metric reads. Chunk size comes from a memory budget; runs
are padded to one of a few sizes (`padded_size`) to bound the compiled shapes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Protocol, runtime_checkable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, ArrayLike, Float, Real
from tqdm.auto import tqdm

from intjax.errors import InputError
from intjax.patching.components import Entry

DEFAULT_MEMORY_BYTES = 1 << 30
MAX_CHUNK = 4096


@runtime_checkable
class Problem(Protocol):
    """What the evaluator reads of a patch problem (`patching.problem.PatchProblem` is one): the model,
    the cached per-prompt data, and one patched layer at a time."""

    model: Any
    data: Any
    components: tuple
    metric: Any
    shared_prefix: int

    @property
    def n_components(self) -> int:
        """n, the length of α."""

    @property
    def n_prompts(self) -> int:
        """P, the prompts f is evaluated on."""

    @property
    def metric_base(self) -> Array:
        """f(0) per prompt, `[P]`."""

    def first_layers(self) -> np.ndarray:
        """First layer each component touches, `[n]`."""

    def start_layers(self, masks: np.ndarray) -> np.ndarray:
        """First layer each mask touches, `[M]`."""

    def entries(self, masks: np.ndarray) -> np.ndarray:
        """Where each mask's run enters its first layer, `[M]` of `Entry`."""

    def layer_step(self, layer, resid, alpha, d, entry: Entry = Entry.RESID_PRE, last_only: bool = False,
                   whole: bool = False) -> Array:
        """One patched layer for one (mask, prompt)."""

    def readout(self, x: Array, d: Any) -> Array:
        """The metric from the final residual at the read position."""


def layer_widths(cfg: Any) -> tuple[int, int, int]:
    """(width of the queries and of z, width of the keys and of the values, the MLP's matrices) of one
    layer of the model's family: n_heads·d_head, n_kv_heads·d_head, three when gated else two."""
    return cfg.n_heads * cfg.d_head, cfg.n_kv_heads * cfg.d_head, 3 if cfg.gated_mlp else 2


def bytes_per_run(problem: Problem) -> int:
    """Rough peak bytes one (mask, prompt) patched run holds while a layer runs.

    Per token: four d_model vectors (the residual, its norm, the attention output, the
    mid-layer residual), queries and z (n_heads·d_head each), keys and values
    (n_kv_heads·d_head each), the MLP's hidden vectors (three when gated, else two),
    and three n_heads × T score/pattern arrays.
    """
    cfg = problem.model.config
    T = problem.data.resid_start.shape[2] - problem.shared_prefix
    itemsize = problem.data.resid_start.dtype.itemsize
    d_q, d_kv, n_mlp = layer_widths(cfg)
    return itemsize * T * (4 * cfg.d_model + 2 * d_q + 2 * d_kv + n_mlp * cfg.d_mlp + 3 * cfg.n_heads * T)


def chunk_size(problem: Problem, memory_bytes: int = DEFAULT_MEMORY_BYTES) -> int:
    """Masks per chunk so that one chunk's activations fit in `memory_bytes`."""
    per_mask = bytes_per_run(problem) * problem.n_prompts
    return int(max(1, min(MAX_CHUNK, memory_bytes // per_mask)))


@eqx.filter_jit
def _layer(problem: Problem, layer: Array, resid: Array, masks: Array, entry: Entry) -> Array:
    step = jax.vmap(problem.layer_step, in_axes=(None, 0, None, 0, None))  # over prompts
    return jax.vmap(step, in_axes=(None, 0, 0, None, None))(layer, resid, masks, problem.data, entry)


@eqx.filter_jit
def _final(problem: Problem, layer: Array, resid: Array, masks: Array, entry: Entry) -> Array:
    def one(resid, alpha, d):
        x = problem.layer_step(layer, resid, alpha, d, entry, last_only=True)  # [1, D]
        return problem.readout(x[0], d)

    return jax.vmap(jax.vmap(one, in_axes=(0, None, 0)), in_axes=(0, 0, None))(resid, masks, problem.data)


@eqx.filter_jit
def _start(problem: Problem, layer: Array, n_masks: int) -> Array:
    resid = problem.data.resid_start[:, layer, problem.shared_prefix:]  # [P, T - S, D]
    return jnp.broadcast_to(resid, (n_masks, *resid.shape))


def compile_view(problem: Problem) -> Problem:
    """The problem with the static labels the compiled steps never read (component and
    witness names, direction, source) blanked, so problems that differ only in them share compiled programs."""
    return dataclasses.replace(problem, components=(), witnesses=(), direction="", source_kind="")


def patched_run_flops(problem: Problem, masks: np.ndarray) -> int:
    """Matmul FLOPs `evaluate(problem, masks)` needs: from each mask's first edit on,
    the last layer at the read position only, two unembedding columns.

    Counted per prompt at its padded length, from the end of the shared prefix
    (its keys and values are cached), for the model's family: queries and the
    output projection are `n_heads · d_head` wide, keys and values `n_kv_heads ·
    d_head` (grouped-query attention), and a gated MLP has three matrices;
    norms, softmax and activation functions are not counted.
    """
    cfg = problem.model.config
    D, M, L = cfg.d_model, cfg.d_mlp, cfg.n_layers
    d_q, d_kv, n_mlp = layer_widths(cfg)
    keys = int(problem.data.resid_start.shape[2])
    T = keys - problem.shared_prefix  # positions each patched run computes
    kv = 2 * 2 * D * d_kv  # keys and values of one token
    attn_in = 2 * D * d_q + kv + 2 * 2 * keys * d_q  # q, k, v and the two attention products, per query
    mlp = 2 * n_mlp * D * M
    after_z = 2 * d_q * D + mlp  # the output projection and the MLP
    per_entry = {Entry.RESID_PRE: attn_in + after_z, Entry.Z: after_z, Entry.RESID_MID: mlp}  # per token
    readout = 2 * D * (2 if not problem.metric.full_vocab else cfg.vocab_size)
    total = 0
    for start, entry in zip(problem.start_layers(masks), problem.entries(masks)):
        if start >= L:
            continue
        first = per_entry[entry]
        if start < L - 1:
            total += T * first + T * (L - 2 - start) * per_entry[Entry.RESID_PRE]
            total += T * kv + (per_entry[Entry.RESID_PRE] - kv) + readout  # last layer, one query
        else:
            whole = entry == Entry.RESID_PRE  # the last layer's attention runs only if entered before it
            total += (T * kv + per_entry[Entry.RESID_PRE] - kv if whole else first) + readout
    return int(total) * problem.n_prompts


def padded_size(n: int) -> int:
    """The chunk shape a short chunk of n masks runs at: the next of 4, 8, 10, 12, 14, 16,
    20, 24, 28, 32, … (at most 4 shapes per doubling, so at most ~14% padding beyond 8
    masks, and few compiles)."""
    if n <= 8:
        return 4 if n <= 4 else 8
    step = 1 << (n.bit_length() - 3)  # a quarter of the power of two below n
    return -(-n // step) * step


def local_mesh() -> Optional[Mesh]:
    """A 1-D mesh over this process's devices along the mask axis (None for one device)."""
    devices = jax.local_devices()
    return Mesh(np.array(devices), ("masks",)) if len(devices) > 1 else None


def replicate(problem: Problem, mesh: Optional[Mesh]) -> Problem:
    """The problem's arrays copied to every device of the mesh (once per sweep)."""
    if mesh is None:
        return problem
    arrays, static = eqx.partition(problem, eqx.is_array)
    arrays = jax.device_put(arrays, NamedSharding(mesh, PartitionSpec()))
    return eqx.combine(arrays, static)


def layer_touch(problem: Problem) -> np.ndarray:
    """`[n, L]` bool: whether component i has a site in layer l."""
    touch = np.zeros((problem.n_components, problem.model.config.n_layers), bool)
    for i, comp in enumerate(problem.components):
        touch[i, [s.layer for s in comp.sites]] = True
    return touch


def prefix_plan(touch: np.ndarray, masks: np.ndarray, start: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Which runs each layer needs when masks share prefixes.

    The residual leaving layer l depends only on the mask values of components
    with a site in layers ≤ l, so masks that agree on those share it. For each
    layer l from `start` to the second-to-last, returns (one representative row
    of `masks` per distinct prefix, the index of each prefix's parent among the
    previous layer's prefixes); the last layer runs every mask, and its entry's
    parents index the second-to-last layer's prefixes.
    """
    L = touch.shape[1]
    plan, previous = [], None
    for layer in range(start, L):
        if layer == L - 1:
            reps, inverse = np.arange(len(masks)), np.arange(len(masks))
        else:
            active = touch[:, : layer + 1].any(axis=1)
            _, reps, inverse = np.unique(masks[:, active], axis=0, return_index=True, return_inverse=True)
            inverse = inverse.reshape(-1)
        parents = np.zeros(len(reps), int) if previous is None else previous[reps]
        plan.append((reps, parents))
        previous = inverse
    return plan


def _pad_rows(rows: np.ndarray, n_devices: int) -> np.ndarray:
    """Rows padded (with repeats of row 0) to a run shape from `padded_size`, a multiple of n_devices."""
    size = -(-padded_size(len(rows)) // n_devices) * n_devices
    return np.concatenate([rows, np.zeros(size - len(rows), int)])


def evaluate_chunk(
    problem: Problem, masks: Real[ArrayLike, "C n"], start: int, entry: Entry = Entry.RESID_PRE,
    mesh: Optional[Mesh] = None,
) -> Float[Array, "C P"]:
    """f at each mask of a chunk whose masks touch no layer below `start`.

    The start layer begins at `entry` (see `Entry` and Problem.entries). Each layer runs once per distinct
    prefix (`prefix_plan`): masks that differ only in later layers share the
    earlier ones. The last layer computes only the position the metric reads.
    With a `mesh`, every layer's runs are split over its devices.
    """
    L = problem.model.config.n_layers
    masks = np.asarray(masks)
    if start >= L:
        return jnp.broadcast_to(problem.metric_base, (masks.shape[0], problem.n_prompts))
    n_devices = 1 if mesh is None else mesh.size
    split = None if mesh is None else NamedSharding(mesh, PartitionSpec("masks"))
    plan = prefix_plan(layer_touch(problem), masks, start)
    problem = compile_view(problem)
    dtype = problem.data.resid_start.dtype
    resid = None
    for layer, (reps, parents) in zip(range(start, L), plan):
        rows = _pad_rows(np.arange(len(reps)), n_devices)
        block = jnp.asarray(masks[reps[rows]], dtype)
        if resid is None:
            resid = _start(problem, jnp.asarray(start), len(rows))
        else:
            resid = jnp.take(resid, jnp.asarray(parents[rows]), axis=0)
        if split is not None:
            block, resid = jax.device_put(block, split), jax.device_put(resid, split)
        step = _final if layer == L - 1 else _layer
        resid = step(problem, jnp.asarray(layer), resid, block, entry if layer == start else Entry.RESID_PRE)
    return resid[: masks.shape[0]]


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Masks run together: their rows in the mask array, shared start layer and entry (each
    layer's run shape is set in `evaluate_chunk`)."""

    rows: np.ndarray
    start: int
    entry: Entry


def plan_chunks(problem: Problem, masks: np.ndarray, size: int, n_devices: int = 1) -> list[Chunk]:
    """Split masks into chunks of at most `size` that share a start layer and entry,
    ordered by their values on early components first, so that a chunk's masks
    share prefixes (see `prefix_plan`).

    Deterministic for the same masks and size (resumed sweeps rely on it); the
    size is rounded down to a multiple of `n_devices`.
    """
    size = max(n_devices, size // n_devices * n_devices)
    groups = problem.start_layers(masks) * len(Entry) + problem.entries(masks)
    by_layer = np.argsort(problem.first_layers(), kind="stable")  # sort so that chunks share prefixes
    order = np.lexsort([masks[:, i] for i in by_layer[::-1]])
    chunks = []
    for group in np.unique(groups):
        start, entry = divmod(int(group), len(Entry))
        idx = order[groups[order] == group]
        chunks += [Chunk(idx[lo : lo + size], start, Entry(entry)) for lo in range(0, len(idx), size)]
    return chunks


def check_masks(problem: Problem, masks: np.ndarray) -> np.ndarray:
    """The masks as a `[M, n]` array, or InputError naming the expected shape."""
    masks = np.asarray(masks)
    if masks.ndim != 2 or masks.shape[1] != problem.n_components:
        raise InputError(
            f"masks must have shape [n_masks, {problem.n_components}] (one column per "
            f"component), got {masks.shape}"
        )
    return masks


def run_chunk(problem: Problem, masks: np.ndarray, chunk: Chunk, mesh: Optional[Mesh] = None) -> np.ndarray:
    """f at the chunk's masks, `[len(chunk.rows), P]` float64."""
    values = evaluate_chunk(problem, masks[chunk.rows], chunk.start, chunk.entry, mesh)
    return np.asarray(values, np.float64)


@runtime_checkable
class VertexLookup(Protocol):
    """Vertex values known before a sweep (see `intjax.sweeps.vertex_cache.VertexCache`)."""

    def lookup(self, problem: Problem, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values `[M, P]` with NaN where unknown, which rows are known `[M]`)."""

    def store(self, problem: Problem, masks: np.ndarray, values: np.ndarray) -> None:
        """Remember the values of swept rows."""


@runtime_checkable
class Checkpoint(Protocol):
    """Where a sweep keeps finished chunks (see `intjax.sweeps.runner.SweepCheckpoint`)."""

    def resume(self, problem: Problem, masks: np.ndarray, chunk_size: int, n_devices: int,
               values: np.ndarray, done: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The values and done flags saved so far (or the ones given, for a new sweep)."""

    def chunk_done(self, k: int, values: np.ndarray, done: np.ndarray) -> None:
        """Chunk k has finished (the checkpoint may save now, or later)."""

    def close(self, values: np.ndarray, done: np.ndarray) -> None:
        """Save what is not yet saved (also after an error or Ctrl-C)."""


def evaluate(
    problem: Problem,
    masks: ArrayLike,  # [M, n] numbers; check_masks names what is wrong
    *,
    memory_bytes: int = DEFAULT_MEMORY_BYTES,
    chunk: Optional[int] = None,
    on_chunk: Optional[Callable[[int], None]] = None,
    checkpoint: Optional[Checkpoint] = None,
    quiet: bool = True,
    desc: str = "patching",
    cache: Optional[VertexLookup] = None,
) -> np.ndarray:
    """f(mask) for every mask and prompt, `[M, P]` (float64 copy of the model's values).

    The one sweep loop of intjax. Chunks are split over this process's devices;
    under `jax.distributed.initialize` with several processes, process i runs
    chunks i, i + n, … and the values are all-gathered at the end, so every
    process returns all of them. A `checkpoint` (`intjax.sweeps.run_sweep`
    makes one) restores finished chunks and saves new ones. `on_chunk(n_masks)`
    is called after each chunk; `quiet=False` shows a progress bar named `desc`.
    With a `cache` (`intjax.sweeps.VertexCache`), rows it knows are taken from it,
    only the others are swept (and checkpointed), and they are added to it.
    """
    masks = check_masks(problem, masks)
    if cache is not None:
        out, known = cache.lookup(problem, masks)
        todo = np.flatnonzero(~known)
        if len(todo):
            out[todo] = evaluate(problem, masks[todo], memory_bytes=memory_bytes, chunk=chunk, on_chunk=on_chunk,
                                 checkpoint=checkpoint, quiet=quiet, desc=desc)
            cache.store(problem, masks[todo], out[todo])
        return out
    pid, n_proc = jax.process_index(), jax.process_count()
    mesh = local_mesh()
    n_devices = 1 if mesh is None else mesh.size
    size = chunk or chunk_size(problem, memory_bytes) * n_devices
    chunks = plan_chunks(problem, masks, size, n_devices)
    mine = np.arange(len(chunks)) % n_proc == pid  # with several processes (hosts), chunk k is process k % n's
    values = np.full((masks.shape[0], problem.n_prompts), np.nan)
    done = ~mine
    if checkpoint is not None:
        values, done = checkpoint.resume(problem, masks, size, n_devices, values, done)
    problem = replicate(problem, mesh)
    runs = [len(c.rows) * problem.n_prompts * int(m) for c, m in zip(chunks, mine)]
    with tqdm(total=sum(runs), initial=sum(r for r, d in zip(runs, done) if d), unit="run", desc=desc,
              disable=quiet, smoothing=0.1) as bar:
        try:
            for k, c in enumerate(chunks):
                if done[k]:
                    continue
                values[c.rows] = run_chunk(problem, masks, c, mesh)
                done[k] = True
                if checkpoint is not None:
                    checkpoint.chunk_done(k, values, done)
                bar.update(runs[k])
                if on_chunk is not None:
                    on_chunk(len(c.rows))
        finally:  # the last chunks, or what was finished before an error or Ctrl-C
            if checkpoint is not None:
                checkpoint.close(values, done)
    if n_proc > 1:
        values = _gather(values, chunks, n_proc)
    return values


def _gather(values: np.ndarray, chunks: list[Chunk], n_proc: int) -> np.ndarray:
    """Every process's chunks, on every process (a JAX cross-process all-gather)."""
    from jax.experimental import multihost_utils

    everyone = np.asarray(multihost_utils.process_allgather(values))  # [n_proc, M, P]
    out = np.empty_like(values)
    for k, c in enumerate(chunks):
        out[c.rows] = everyone[k % n_proc, c.rows]
    return out
