"""Evaluate f at many masks with a fixed set of compiled programs, doing only the work needed.

Masks that agree on every component up to a layer share that layer's run
(`prefix_plan`: {i} and {i, j} compute the layers before j once), and chunks
are ordered so that their masks share prefixes. A mask's run starts at the
first layer it touches, from the cached base residual there, so nothing below
a patch is recomputed; the last layer computes only the position the metric
reads, and the readout only the logits the metric reads.

The schedule has fixed shapes (`Schedule`): a chunk holds at most `capacity`
masks, and every layer runs its rows in blocks of `block` rows inside one
compiled program per chunk (`_chunk_values`: a loop over layers, a loop over
blocks, the gather of each row's parent and the write-back on the device). The
layer index, the start layer and the number of blocks are traced, so one
program serves every chunk, every layer, every mask count and every order of a
sweep; the host only plans (which rows, which parents) and sends small int32
tables. Padding is the unused rows of each layer's last block (`SweepStats`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Protocol, runtime_checkable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import Array, ArrayLike
from tqdm.auto import tqdm

from intjax.errors import InputError
from intjax.patching.edges import edge_flops

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

    @property
    def slots(self) -> int:
        """Components the compiled program has room for (≥ n; see `component_slots`)."""

    def first_layers(self) -> np.ndarray:
        """First layer each component touches, `[n]`."""

    def start_layers(self, masks: np.ndarray) -> np.ndarray:
        """First layer each mask touches, `[M]`."""

    def layer_step(self, layer, resid, alpha, d, last_only: bool = False, whole: bool = False) -> Array:
        """One patched layer for one (mask, prompt)."""

    def start_state(self, resid: Array) -> Array:
        """What a run carries into its first layer, from the base residual `[..., T, D]` there."""

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
    edges = 0
    if getattr(problem, "edge_receivers", ()):  # per-head inputs where edges feed q, k, v; the carried writes
        ns = int(problem.data.edges.delta.shape[1])
        edges = (cfg.n_heads + 2 * cfg.n_kv_heads + 2) * cfg.d_model + (2 + problem.carried) * ns * cfg.d_model
    return itemsize * T * (4 * cfg.d_model + 2 * d_q + 2 * d_kv + n_mlp * cfg.d_mlp + 3 * cfg.n_heads * T + edges)


TOKENS_PER_BLOCK = {"cpu": 512}  # tokens one block computes; accelerators: ACCELERATOR_TOKENS_PER_BLOCK
ACCELERATOR_TOKENS_PER_BLOCK = 16384  # enough rows to fill a GPU's or TPU's matrix units


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The fixed shapes of a sweep: masks per chunk (`capacity`, whole blocks) and rows per block."""

    capacity: int
    block: int


def positions_computed(problem: Problem) -> int:
    """T − S: the positions each patched run computes (the shared prefix is taken from the base run)."""
    return int(problem.data.resid_start.shape[2]) - problem.shared_prefix


def schedule(problem: Problem, memory_bytes: int = DEFAULT_MEMORY_BYTES, chunk: Optional[int] = None,
             n_devices: int = 1) -> Schedule:
    """The sweep's shapes, from the problem's shapes and the budget only (never from the masks).

    Rows per block: a power of two, at most half of `memory_bytes` of activations (`bytes_per_run`
    per prompt) and about `TOKENS_PER_BLOCK` tokens (few on a CPU, where a small block wastes little
    padding; many on an accelerator), a multiple of `n_devices`. Masks per chunk: `chunk`, else the
    largest power of two of residual rows whose two buffers fit in the other half (at most
    `MAX_CHUNK`); rounded up to whole blocks. Powers of two keep the shapes few: problems of similar
    sizes share their programs.
    """
    P, T = problem.n_prompts, positions_computed(problem)
    tokens = TOKENS_PER_BLOCK.get(jax.default_backend(), ACCELERATOR_TOKENS_PER_BLOCK)
    by_memory = memory_bytes // 2 // (bytes_per_run(problem) * P)
    block = _power_of_two_below(min(by_memory, tokens // (P * T)))
    if chunk is None:
        resid_row = (P * T * (1 + getattr(problem, "carried", 0)) * problem.model.config.d_model
                     * problem.data.resid_start.dtype.itemsize)
        chunk = max(block, _power_of_two_below(min(MAX_CHUNK, memory_bytes // 2 // (2 * resid_row))))
    block = _round_up(min(block, chunk), n_devices)
    return Schedule(capacity=_round_up(max(chunk, block), block), block=block)


def _power_of_two_below(n: int) -> int:
    """The largest power of two ≤ n (1 for n < 2)."""
    return 1 << max(0, int(n).bit_length() - 1)


def component_slots(n: int) -> int:
    """The component count a problem of n components is compiled at: the next power of two, at least 16
    (the rest are zero indicator rows), so that studies over different sets share programs."""
    return max(16, 1 << max(0, int(n) - 1).bit_length())


def _round_up(n: int, multiple: int) -> int:
    return -(-int(n) // multiple) * multiple


def chunk_size(problem: Problem, memory_bytes: int = DEFAULT_MEMORY_BYTES) -> int:
    """Masks per chunk under a memory budget (`schedule(...).capacity`)."""
    return schedule(problem, memory_bytes).capacity


def compile_view(problem: Problem) -> Problem:
    """The problem with the static labels the compiled steps never read (component and
    witness names, direction, source) blanked, so problems that differ only in them share compiled programs."""
    return dataclasses.replace(problem, components=(), witnesses=(), direction="", source_kind="")


def patched_run_flops(problem: Problem, masks: np.ndarray) -> int:
    """Matmul FLOPs of the masks' patched runs, one mask at a time (prefix sharing not counted):
    every layer from the mask's first edit on, the last layer at the read position only, two
    unembedding columns.

    Counted per prompt at its padded length, from the end of the shared prefix
    (its keys and values are cached), for the model's family: queries and the
    output projection are `n_heads · d_head` wide, keys and values `n_kv_heads ·
    d_head` (grouped-query attention), and a gated MLP has three matrices;
    norms, softmax and activation functions are not counted. Edges add what
    `edges.edge_flops` counts (each receiver's input from the senders' writes,
    and under recompute each head's write in this run).
    """
    cfg = problem.model.config
    D, M, L = cfg.d_model, cfg.d_mlp, cfg.n_layers
    d_q, d_kv, n_mlp = layer_widths(cfg)
    keys = int(problem.data.resid_start.shape[2])
    T = keys - problem.shared_prefix  # positions each patched run computes
    kv = 2 * 2 * D * d_kv  # keys and values of one token
    layer = 2 * D * d_q + kv + 2 * 2 * keys * d_q + 2 * d_q * D + 2 * n_mlp * D * M  # one token's layer
    last = T * kv + layer - kv  # every token's keys and values, the rest at the read position
    readout = 2 * D * (2 if not problem.metric.full_vocab else cfg.vocab_size)
    starts = problem.start_layers(masks)
    starts = starts[starts < L]
    edges = 0
    if getattr(problem, "edge_receivers", ()):
        senders = int(problem.data.edges.delta.shape[1])
        whole, last_layer, readout_extra = edge_flops(cfg, problem.edge_receivers, senders, problem.carried, T)
        edges = (L - 1 - starts) * whole + last_layer + readout_extra
    return int(((L - 1 - starts) * T * layer + last + readout + edges).sum()) * problem.n_prompts


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
    with a site in layers ≤ l, so masks that agree on those share it, and a
    mask that is 0 on all of them leaves it at its base value. For each layer l
    from `start` (the earliest layer a mask touches) to the second-to-last,
    returns (one representative row of `masks` per distinct nonzero prefix, the
    index of each prefix's parent among the previous layer's prefixes, or -1
    where the run starts at this layer from the cached base residual); the last
    layer runs every mask (in order), its parents indexing the second-to-last
    layer's prefixes.
    """
    L = touch.shape[1]
    plan, previous = [], np.full(len(masks), -1)  # each mask's prefix index at the layer before
    for layer in range(start, L):
        if layer == L - 1:
            reps, index = np.arange(len(masks)), np.arange(len(masks))
        else:
            keys = masks[:, touch[:, : layer + 1].any(axis=1)]
            _, reps, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
            inverse = inverse.reshape(-1)
            zero = keys.any(axis=1) == 0  # not patched yet: no run
            kept = np.unique(inverse[~zero])
            reps = reps[kept]
            index = np.full(len(masks), -1)
            index[~zero] = np.searchsorted(kept, inverse[~zero])
        plan.append((reps, previous[reps]))
        previous = index
    return plan


@dataclasses.dataclass(frozen=True)
class Chunk:
    """Masks run together (their rows in the mask array) and the first layer any of them touches."""

    rows: np.ndarray
    start: int


def plan_chunks(problem: Problem, masks: np.ndarray, size: int, n_devices: int = 1) -> list[Chunk]:
    """Split the masks that patch something into chunks of at most `size`, ordered by their
    values on early components first, so that a chunk's masks share prefixes (see
    `prefix_plan`); all-zero masks are in no chunk (f there is the base run's value).

    Deterministic for the same masks and size (resumed sweeps rely on it); the
    size is rounded down to a multiple of `n_devices`.
    """
    size = max(n_devices, size // n_devices * n_devices)
    starts = problem.start_layers(masks)
    by_layer = np.argsort(problem.first_layers(), kind="stable")
    order = np.lexsort([masks[:, i] for i in by_layer[::-1]])
    order = order[starts[order] < problem.model.config.n_layers]
    return [Chunk(idx, int(starts[idx].min())) for idx in (order[lo: lo + size] for lo in range(0, len(order), size))]


def chunk_tables(problem: Problem, masks: np.ndarray, chunk: Chunk, capacity: int,
                 touch: Optional[np.ndarray] = None) -> tuple[np.ndarray, ...]:
    """What the device needs of one chunk, as fixed-shape arrays: its masks `[capacity, slots]`, per
    layer the mask row of each run `[L, capacity]`, its parent run (-1: the base residual)
    `[L, capacity]`, and the number of runs `[L]` (0 below the chunk's start layer).
    `touch`: `layer_touch(problem)`, computed once per sweep (default: here)."""
    L = problem.model.config.n_layers
    touch = layer_touch(problem) if touch is None else touch
    own = np.asarray(masks[chunk.rows])
    rows, parents = np.zeros((L, capacity), np.int32), np.full((L, capacity), -1, np.int32)
    counts = np.zeros(L, np.int32)
    for layer, (reps, par) in zip(range(chunk.start, L), prefix_plan(touch, own, chunk.start)):
        rows[layer, : len(reps)], parents[layer, : len(par)], counts[layer] = reps, par, len(reps)
    padded = np.zeros((capacity, problem.slots), problem.data.resid_start.dtype)  # zero columns: empty slots
    padded[: len(own), : own.shape[1]] = own
    return padded, rows, parents, counts


@eqx.filter_jit
def _chunk_values(problem: Problem, masks: Array, rows: Array, parents: Array, counts: Array, start: Array,
                  block: int, mesh: Optional[Mesh]) -> Array:
    """f at a chunk's masks, `[capacity, P]` (rows past the chunk's masks are padding).

    Layers `start`..L-2 run their runs block by block into a residual buffer,
    each run from its parent's residual (or the base residual where it starts);
    the last layer computes the read position and the metric.
    """
    d, S = problem.data, problem.shared_prefix
    L = problem.model.config.n_layers
    capacity = masks.shape[0]
    split = None if mesh is None else NamedSharding(mesh, PartitionSpec("masks"))

    def run_block(layer, buffers, i, last):
        lo = (i * block).astype(jnp.int32)
        parent = jax.lax.dynamic_slice(parents[layer], (lo,), (block,))
        alpha = masks[jax.lax.dynamic_slice(rows[layer], (lo,), (block,))]
        base = problem.start_state(jax.lax.dynamic_index_in_dim(d.resid_start, layer, axis=1, keepdims=False)[:, S:])
        prev = jax.lax.dynamic_index_in_dim(buffers, (layer - 1) % 2, keepdims=False)  # the layer before's runs
        resid = jnp.where((parent < 0)[:, None, None, None], base[None], prev[jnp.maximum(parent, 0)])
        if split is not None:
            resid, alpha = (jax.lax.with_sharding_constraint(a, split) for a in (resid, alpha))

        def one(r, a, p):
            if not last:
                return problem.layer_step(layer, r, a, p)
            return problem.readout(problem.layer_step(layer, r, a, p, last_only=True)[0], p)

        return jax.vmap(jax.vmap(one, in_axes=(0, None, 0)), in_axes=(0, 0, None))(resid, alpha, d), lo

    def layer_body(layer, buffers):  # this layer's runs into buffers[layer % 2], in place
        def body(i, buffers):
            y, lo = run_block(layer, buffers, i, last=False)
            at = jnp.stack([layer % 2, lo, 0, 0, 0]).astype(jnp.int32)  # one index type, in x64 mode too
            return jax.lax.dynamic_update_slice(buffers, y[None].astype(buffers.dtype), tuple(at))

        return jax.lax.fori_loop(0, n_blocks(layer), body, buffers)

    def final_body(i, out):
        y, lo = run_block(L - 1, buffers, i, last=True)
        return jax.lax.dynamic_update_slice_in_dim(out, y.astype(out.dtype), lo, axis=0)

    def n_blocks(layer):
        return (counts[layer] + block - 1) // block

    # two residual buffers (the layer before's runs, this layer's) as one array, updated in place
    buffers = jnp.zeros((2, capacity, *problem.start_state(d.resid_start[:, 0, S:]).shape), d.resid_start.dtype)
    buffers = jax.lax.fori_loop(start, L - 1, layer_body, buffers)
    return jax.lax.fori_loop(0, n_blocks(L - 1), final_body, jnp.zeros((capacity, problem.n_prompts), buffers.dtype))


def check_masks(problem: Problem, masks: np.ndarray) -> np.ndarray:
    """The masks as a `[M, n]` array, or InputError naming the expected shape."""
    masks = np.asarray(masks)
    if masks.ndim != 2 or masks.shape[1] != problem.n_components:
        raise InputError(
            f"masks must have shape [n_masks, {problem.n_components}] (one column per "
            f"component), got {masks.shape}"
        )
    return masks


def run_chunk(problem: Problem, masks: np.ndarray, chunk: Chunk, plan: Schedule,
              mesh: Optional[Mesh] = None, touch: Optional[np.ndarray] = None) -> tuple[Array, np.ndarray]:
    """Start f at the chunk's masks on the device. Returns at once: the `[capacity, P]` values, to
    be read later (rows past `len(chunk.rows)` are padding), and the runs of each layer `[L]`."""
    tables = chunk_tables(problem, masks, chunk, plan.capacity, touch)
    on_device = jax.device_put((*tables, np.int32(chunk.start)))
    return _chunk_values(compile_view(problem), *on_device, plan.block, mesh), tables[3]


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

    def resume(self, problem: Problem, masks: np.ndarray, plan: Schedule, n_devices: int,
               values: np.ndarray, done: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The values and done flags saved so far (or the ones given, for a new sweep)."""

    def chunk_done(self, k: int, values: np.ndarray, done: np.ndarray) -> None:
        """Chunk k has finished (the checkpoint may save now, or later)."""

    def close(self, values: np.ndarray, done: np.ndarray) -> None:
        """Save what is not yet saved (also after an error or Ctrl-C)."""


@dataclasses.dataclass
class SweepStats:
    """What a sweep did, filled in by `evaluate(..., stats=)`: its shapes, chunks, the layer runs
    its masks needed and the ones computed (whole blocks: the rest is padding)."""

    schedule: Optional[Schedule] = None
    chunks: int = 0
    runs_needed: int = 0  # (run, layer) pairs the masks need, per prompt
    runs_computed: int = 0  # the same in whole blocks

    @property
    def padding(self) -> float:
        """Computed runs over needed runs (1.0: no padding)."""
        return self.runs_computed / self.runs_needed if self.runs_needed else 1.0


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
    stats: Optional[SweepStats] = None,
) -> np.ndarray:
    """f(mask) for every mask and prompt, `[M, P]` (float64 copy of the model's values).

    The one sweep loop of intjax. Each chunk's blocks are split over this process's
    devices; under `jax.distributed.initialize` with several processes, process i runs
    chunks i, i + n, … and the values are all-gathered at the end, so every
    process returns all of them. The host plans chunk k + 1 and reads chunk k - 1's values
    while the device runs chunk k. A `checkpoint` (`intjax.sweeps.run_sweep`
    makes one) restores finished chunks and saves new ones. `on_chunk(n_masks)`
    is called after each chunk; `quiet=False` shows a progress bar named `desc`.
    With a `cache` (`intjax.sweeps.VertexCache`), rows it knows are taken from it,
    only the others are swept (and checkpointed), and they are added to it.
    `stats` (a `SweepStats`) receives the schedule, chunk count and padding.
    """
    masks = check_masks(problem, masks)
    if cache is not None:
        out, known = cache.lookup(problem, masks)
        todo = np.flatnonzero(~known)
        if len(todo):
            out[todo] = evaluate(problem, masks[todo], memory_bytes=memory_bytes, chunk=chunk, on_chunk=on_chunk,
                                 checkpoint=checkpoint, quiet=quiet, desc=desc, stats=stats)
            cache.store(problem, masks[todo], out[todo])
        return out
    pid, n_proc = jax.process_index(), jax.process_count()
    mesh = local_mesh()
    n_devices = 1 if mesh is None else mesh.size
    plan = schedule(problem, memory_bytes * n_devices, chunk, n_devices)
    stats = SweepStats() if stats is None else stats
    stats.schedule = plan
    chunks = plan_chunks(problem, masks, plan.capacity, n_devices)
    mine = np.arange(len(chunks)) % n_proc == pid  # with several processes (hosts), chunk k is process k % n's
    values = np.full((masks.shape[0], problem.n_prompts), np.nan)
    done = ~mine
    if checkpoint is not None:
        values, done = checkpoint.resume(problem, masks, plan, n_devices, values, done)
    in_chunks = np.zeros(len(masks), bool)
    for c in chunks:
        in_chunks[c.rows] = True
    values[~in_chunks] = np.asarray(problem.metric_base, np.float64)  # all-zero masks: the base run
    touch = layer_touch(problem)
    problem = replicate(problem, mesh)
    runs = [len(c.rows) * problem.n_prompts * int(m) for c, m in zip(chunks, mine)]
    with tqdm(total=sum(runs), initial=sum(r for r, d in zip(runs, done) if d), unit="run", desc=desc,
              disable=quiet, smoothing=0.1) as bar:

        def finish(k: int, out: Array) -> None:  # chunk k's values have been computed (or will be: wait)
            values[chunks[k].rows] = np.asarray(out, np.float64)[: len(chunks[k].rows)]
            done[k] = True
            if checkpoint is not None:
                checkpoint.chunk_done(k, values, done)
            bar.update(runs[k])
            if on_chunk is not None:
                on_chunk(len(chunks[k].rows))

        pending = None  # (k, values on the device) of the chunk that runs now
        try:
            for k, c in enumerate(chunks):
                if done[k]:
                    continue
                out, counts = run_chunk(problem, masks, c, plan, mesh, touch)
                stats.chunks += 1
                stats.runs_needed += int(counts.sum())
                stats.runs_computed += int((-(-counts // plan.block) * plan.block).sum())
                if pending is not None:
                    finish(*pending)
                pending = (k, out)
            if pending is not None:
                finish(*pending)
                pending = None
        finally:  # the chunk still running, then what was finished before an error or Ctrl-C
            try:
                if pending is not None:
                    finish(*pending)
            finally:
                if checkpoint is not None:
                    checkpoint.close(values, done)
    if n_proc > 1:
        values = _gather(values, chunks, n_proc)
    return values


def _gather(values: np.ndarray, chunks: list[Chunk], n_proc: int) -> np.ndarray:
    """Every process's chunks, on every process (a JAX cross-process all-gather)."""
    from jax.experimental import multihost_utils

    everyone = np.asarray(multihost_utils.process_allgather(values))  # [n_proc, M, P]
    out = values.copy()  # rows in no chunk (all-zero masks) are the same on every process
    for k, c in enumerate(chunks):
        out[c.rows] = everyone[k % n_proc, c.rows]
    return out
