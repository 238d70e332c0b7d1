"""The patch function f(α) (DESIGN.md §1): a PatchProblem holds what it needs, per prompt.

    problem = build_problem(model, prompts, components, direction="noising")
    problem(alpha)            # [P] metric per prompt; differentiable in alpha
    evaluate(problem, masks)  # [M, P] for many masks, chunked (see evaluate.py)

Site masks are linear in α: mask[site] = Σ_i α_i · indicator_i[site], so groups,
heads at one position and whole layers all reduce to one formula per site,
`value + mask·(source − value)`. A site may first be *pinned* to its cached
base value: every analysed site under frozen semantics (PIE), and the sites of
witness components (`pin=`) under either semantics.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Literal, NamedTuple, Optional, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from intjax.errors import InputError
from intjax.runtime import cast_floats
from intjax.model.sites import Activations, LayerEdits, SiteEdit
from intjax.model.protocol import PatchableModel
from intjax.patching import edges as edge_ops
from intjax.patching.components import SITE_KIND_INFO, SITE_KINDS, Component
from intjax.patching.evaluate import component_slots, evaluate
from intjax.patching.metrics import Metric, get_metric
from intjax.patching.prompts import PromptSet, check_vocab, pad, padded_length

Direction = Literal["noising", "denoising"]
Semantics = Literal["recompute", "frozen"]
Source = Literal["counterfactual", "mean", "zero"]
DIRECTIONS = ("noising", "denoising")
SEMANTICS = ("recompute", "frozen")
SOURCES = ("counterfactual", "mean", "zero")


class PromptArrays(NamedTuple):
    """Per-prompt data f needs (leading axis P): cached base run and patch sources."""

    last: Int[Array, " P"]  # index of the last real token
    target: Int[Array, " P"]
    foil: Int[Array, " P"]
    resid_start: Float[Array, "P L+1 T D"]  # base resid_pre per layer, then the final resid
    base_sites: dict  # kind -> [P, L, T, ...] base values (frozen semantics pins to them)
    source: dict  # kind -> [P, L, T, ...] values patched in
    indicator: dict  # kind -> [P, n, L, T, ...] when a component names a role position, else {}
    pin: dict  # kind -> [P, L, T, ...] witness sites held at base values, when roles are per prompt, else {}
    prefix_k: Optional[Float[Array, "P L S H Dh"]]  # base keys of the S positions every run shares (None if S = 0)
    prefix_v: Optional[Float[Array, "P L S H Dh"]]  # and their values
    edges: Optional[edge_ops.EdgeData] = None  # the edges' sender writes and positions (None: no edge)


class PatchProblem(eqx.Module):
    """f(α) for fixed prompts, components, direction, source, semantics and metric."""

    model: PatchableModel
    data: PromptArrays
    indicator: dict  # kind -> [n, L, T] or [n, L, T, H]: which sites component i owns ({} if per prompt)
    pin: dict  # kind -> [L, T] or [L, T, H]: witness sites held at their base values ({} if per prompt)
    metric_clean: Float[Array, " P"]
    metric_corrupted: Float[Array, " P"]
    components: tuple[Component, ...] = eqx.field(static=True)
    direction: str = eqx.field(static=True)
    source_kind: str = eqx.field(static=True)
    semantics: str = eqx.field(static=True)
    metric: Metric = eqx.field(static=True)
    witnesses: tuple[Component, ...] = eqx.field(static=True, default=())
    shared_prefix: int = eqx.field(static=True, default=0)  # S: positions no patch can change
    edge_tables: Optional[edge_ops.EdgeTables] = None  # what each edge connects (None: no edge)
    edge_receivers: tuple[str, ...] = eqx.field(static=True, default=())  # receiver kinds the edges feed
    carried: int = eqx.field(static=True, default=0)  # sender slots a run carries (recompute edges), else 0

    @property
    def n_components(self) -> int:
        """Number of components n (the length of α)."""
        return len(self.components)

    @property
    def n_prompts(self) -> int:
        """Number of prompts P."""
        return int(self.data.last.shape[0])

    @property
    def names(self) -> list[str]:
        """Component names in α order."""
        return [c.name for c in self.components]

    @property
    def metric_base(self) -> Float[Array, " P"]:
        """f(0): the metric of the unpatched base run."""
        return self.metric_clean if self.direction == "noising" else self.metric_corrupted

    def values(self, masks: np.ndarray, **evaluate_kwargs) -> np.ndarray:
        """f at every mask, `[M, P]` float64 (see `evaluate` for the options)."""
        return evaluate(self, masks, **evaluate_kwargs)

    def with_source_scale(self, t: float) -> "PatchProblem":
        """The same problem with every source moved toward the base: s(t) = b + t·(s − b)."""
        t = jax.device_put(np.asarray(t, self.data.resid_start.dtype))
        scaled = eqx.tree_at(lambda p: p.data.source, self, _scaled_sources(self.data.base_sites, self.data.source, t))
        if self.data.edges is None:
            return scaled
        return eqx.tree_at(lambda p: p.data.edges.delta, scaled, _times(self.data.edges.delta, t))

    def with_pin(self, prompts: PromptSet, pin: Sequence[Component]) -> "PatchProblem":
        """The same problem with the witnesses `pin` instead of its own, reusing its base and source
        runs (`prompts`: the ones it was built on). `pin` may touch only the site kinds the problem
        holds: build it with every candidate witness pinned, then swap in one at a time."""
        pin = tuple(pin)
        missing = sorted({s.kind for w in pin for s in w.sites} - set(self.data.base_sites))
        if missing:
            raise InputError(f"the problem holds no {missing} sites to pin; build it with those witnesses "
                             "(build_problem(..., pin=...)) first")
        both = sorted({c.name for c in self.components} & {w.name for w in pin})
        if both:
            raise InputError(f"{both} are both patched and pinned; a witness must not be one of the analysed "
                             "components")
        data, indicator, pinned = _site_arrays(self.data, self.components, pin, list(self.data.base_sites),
                                               self.model.config, int(self.data.resid_start.shape[2]), prompts.roles)
        return dataclasses.replace(self, data=data, indicator=indicator, pin=pinned, witnesses=pin)

    @property
    def slots(self) -> int:
        """Components the indicator arrays have room for: `component_slots(n)`, the rows past n all zero
        (they patch nothing), so that problems with different component counts share compiled programs."""
        ind = self.data.indicator or self.indicator
        if not ind:
            return int(self.edge_tables.owner.shape[0])
        return int(next(iter(ind.values())).shape[1 if self.data.indicator else 0])

    def with_dtype(self, dtype) -> "PatchProblem":
        """The same problem with every float array (weights, cached runs, sources) in `dtype`."""
        return cast_floats(self, dtype)

    def first_layers(self) -> np.ndarray:
        """First layer each component touches, [n]."""
        return np.array([c.first_layer for c in self.components])

    def start_layers(self, masks: np.ndarray) -> np.ndarray:
        """First layer each mask touches, [M] (n_layers for an all-zero mask)."""
        masks = np.asarray(masks)
        L = self.model.config.n_layers
        return np.where(masks != 0, self.first_layers()[None], L).min(axis=1, initial=L)

    def layer_edits(self, alpha: Float[Array, " n"], d: PromptArrays, layer=None) -> LayerEdits:
        """The edits α makes, for ONE prompt; all layers stacked, or only `layer` (may be traced)."""

        def at(a):
            return a if layer is None else a[layer]

        alpha = jnp.pad(alpha, (0, self.slots - alpha.shape[-1]))  # the empty slots patch nothing
        edits = {}
        pins = d.pin if d.indicator else self.pin
        for kind, ind in (d.indicator or self.indicator).items():  # per prompt when positions are roles
            ind = ind if layer is None else ind[:, layer]
            mask = jnp.tensordot(alpha.astype(ind.dtype), ind, axes=1)
            pin = None if kind not in pins else (pins[kind] if layer is None else pins[kind][layer])
            if self.semantics == "frozen":  # PIE: every analysed site pinned too
                pin = ind.sum(0) if pin is None else pin + ind.sum(0)
            if pin is None:
                edits[kind] = SiteEdit(mask, at(d.source[kind]))
            else:
                edits[kind] = SiteEdit(mask, at(d.source[kind]), pin, at(d.base_sites[kind]))
        return LayerEdits(**edits)

    def readout(self, x: Float[Array, " D"], d: PromptArrays) -> Float[Array, ""]:
        """The metric from the final residual at the last position: only the logits it reads."""
        return read_metric(self.model, self.metric, x, d.target, d.foil)

    def value(self, alpha: Float[Array, " n"], d: PromptArrays, start: int | Int[ArrayLike, ""] = 0) -> Float[Array, ""]:
        """f(α) for ONE prompt, starting from the cached base residual at layer `start` (an int, or
        traced: one compiled program for every start, differentiable forward); the last layer computes
        only the position the metric reads."""
        L = self.model.config.n_layers
        if isinstance(start, int) and start >= L:
            return self.readout(d.resid_start[L][d.last], d)
        resid = self.start_state(jax.lax.dynamic_index_in_dim(d.resid_start, start, keepdims=False))

        def step(layer, r):
            return self.layer_step(layer, r, alpha, d, whole=True)

        if isinstance(start, int):
            resid = jax.lax.fori_loop(start, L - 1, step, resid)
        else:  # traced: a loop over every layer that skips those below start (reverse-differentiable, unlike
            # a loop whose bounds are traced)
            resid = jax.lax.fori_loop(0, L - 1, lambda layer, r: jax.lax.cond(layer >= start, step,
                                                                              lambda _, r: r, layer, r), resid)
        return self.readout(self.layer_step(L - 1, resid, alpha, d, last_only=True, whole=True)[0], d)

    def __call__(self, alpha: Float[ArrayLike, "*P n"], start: int | Int[ArrayLike, ""] = 0) -> Float[Array, " P"]:
        """f(α) for every prompt, [P]; differentiable in α (jax.grad, jax.jvp).

        `alpha` is `[n]` (the same mask for every prompt) or `[P, n]` (row p for
        prompt p: one VJP then gives every prompt's gradient). `start` may skip
        layers below the first component α (and any tangent) touches.
        """
        alpha = jnp.asarray(alpha)
        in_axes = (0 if alpha.ndim == 2 else None, 0, None)
        return jax.vmap(self.value, in_axes=in_axes)(alpha, self.data, start)

    def per_prompt(self, alpha: Float[Array, "P n"]) -> Float[Array, " P"]:
        """f with row p of α at prompt p (the PromptwiseGame capability), differentiable in α."""
        if alpha.ndim != 2 or alpha.shape[0] != self.n_prompts:
            raise InputError(f"per-prompt α must be [P={self.n_prompts}, n={self.n_components}], got {alpha.shape}")
        return self(alpha)

    def start_state(self, resid: Float[Array, "*B T D"]) -> Float[Array, "*B Tc D"]:
        """What a run carries into its first layer from the base residual there: the residual, and under
        recompute semantics with edges each carried sender's correction b_cached − b_run, zero at the start
        (`carried` sender slots of T rows each, after the residual's rows)."""
        if not self.carried:
            return resid
        pad = [(0, 0)] * (resid.ndim - 2) + [(0, self.carried * resid.shape[-2]), (0, 0)]
        return jnp.pad(resid, pad)

    def layer_step(
        self,
        layer: Int[Array, ""] | int,
        resid: Float[Array, "Tq D"],
        alpha: Float[Array, " n"],
        d: PromptArrays,
        last_only: bool = False,
        whole: bool = False,
    ) -> Float[Array, "R D"]:
        """One patched layer for one (mask, prompt); `layer` may be traced (one compile for all).

        `resid` holds the positions after the shared prefix (S = `shared_prefix`;
        the prefix's keys and values come from the base run), or every position
        with `whole=True` (with recompute edges, followed by the carried corrections, `start_state`);
        `last_only` computes only the last position (the final layer) and returns its final residual,
        with what edges into the logits add.
        """
        S = 0 if whole else self.shared_prefix
        rows = (d.last - S)[None] if last_only else None
        edits = self.layer_edits(alpha, d, layer)
        prefix_kv = None
        if S:
            edits = jax.tree.map(lambda a: a[S:], edits)
            prefix_kv = (d.prefix_k[layer], d.prefix_v[layer])
        if d.edges is None:
            return self.model.layer(layer, resid, edits, rows=rows, prefix_kv=prefix_kv)
        return self._edge_layer_step(layer, resid, alpha, d, edits, rows, prefix_kv, S)

    def _edge_layer_step(self, layer, state, alpha, d: PromptArrays, edits: LayerEdits, rows, prefix_kv, S: int):
        """`layer_step` of a problem with edges: each receiver of this layer reads its own input."""
        cfg, tables = self.model.config, self.edge_tables
        ed = jax.tree.map(lambda a: a[:, S:], d.edges)  # every array's position axis is its second
        T = ed.pos.shape[1]
        resid, corr = (state[:T], state[T:].reshape(self.carried, T, -1)) if self.carried else (state, None)
        writes = ed.delta if corr is None else ed.delta.at[: self.carried].add(corr)
        alpha = jnp.pad(alpha, (0, self.slots - alpha.shape[-1])).astype(tables.owner.dtype)  # as node masks
        inputs = edge_ops.layer_inputs(tables, ed, alpha, layer, writes, self.edge_receivers, cfg.n_heads,
                                       cfg.n_kv_heads, self.carried > 0)
        out, acts = self.model.layer(layer, resid, edits._replace(inputs=inputs), rows=rows, prefix_kv=prefix_kv,
                                     with_acts=True)
        if self.carried:
            fix = edge_ops.corrections(self.model, tables, ed, layer, acts, rows)[: self.carried]
            corr = corr + fix if rows is None else corr.at[:, rows].add(fix)
            writes = ed.delta.at[: self.carried].add(corr)
        if rows is None:
            return out if corr is None else jnp.concatenate([out, corr.reshape(-1, out.shape[-1])])
        if "logits_in" in self.edge_receivers:
            out = out + edge_ops.logits_input(tables, ed, alpha, writes, rows[0])
        return out


def read_metric(model: PatchableModel, metric: Metric, x: Float[Array, " D"], target: Int[Array, ""],
                foil: Int[Array, ""]) -> Float[Array, ""]:
    """The metric from one final residual: only the unembedding columns it reads (both, or the whole vocabulary)."""
    if metric.full_vocab:
        return metric.fn(model.unembed(x, final_norm=metric.final_norm), target, foil)
    logits = model.unembed(x, columns=jnp.stack([target, foil]), final_norm=metric.final_norm)
    return metric.fn(logits, 0, 1)


class BaseRuns(NamedTuple):
    """What `build_problem` caches from the base and the other side's runs (one compiled program)."""

    base: Activations  # the base side's activations (clean when noising, corrupted when denoising)
    other: Activations  # the other side's: the counterfactual source
    resid_start: Float[Array, "P L+1 T D"]
    metric_base: Float[Array, " P"]
    metric_other: Float[Array, " P"]


@eqx.filter_jit
def _base_runs(model: PatchableModel, base_tokens: Int[Array, "P T"], other_tokens: Int[Array, "P T"],
               last: Int[Array, " P"], target: Int[Array, " P"], foil: Int[Array, " P"], *, with_pattern: bool,
               metric: Metric) -> BaseRuns:
    """Both prompt sets' runs (every site kind), the base side's residuals and the metric of both runs,
    in one program. Direction, source, shared prefix and the site kinds patched are chosen on the host
    from its outputs, so problems that differ only in them share this program."""
    base, other = (jax.vmap(lambda t: model.activations(t, with_pattern=with_pattern))(x)
                   for x in (base_tokens, other_tokens))

    def metric_of(acts):
        final = jax.vmap(lambda r, i: r[i])(acts.resid_post[:, -1], last)
        return jax.vmap(lambda x, t, f: read_metric(model, metric, x, t, f))(final, target, foil)

    return BaseRuns(base=base, other=other,
                    resid_start=jnp.concatenate([base.resid_pre, base.resid_post[:, -1:]], axis=1),
                    metric_base=metric_of(base),
                    metric_other=metric_of(other))


@eqx.filter_jit
def _times(a: Array, t: Float[Array, ""]) -> Array:
    """t·a (t traced)."""
    return t * a


@eqx.filter_jit
def _scaled_sources(base: dict, source: dict, t: Float[Array, ""]) -> dict:
    """b + t·(s − b) for every site kind (t traced: one program for every scale)."""
    return {k: base[k] + t * (source[k] - base[k]) for k in source}


def run_model(model: PatchableModel, tokens: Int[ArrayLike, "P T"], with_pattern: bool = False) -> Activations:
    """Activations of every prompt (jit + vmap over the batch; no logits computed)."""
    return _run_model(model, jnp.asarray(tokens), with_pattern)


@eqx.filter_jit
def _run_model(model: PatchableModel, tokens, with_pattern: bool):
    return jax.vmap(lambda t: model.activations(t, with_pattern=with_pattern))(tokens)


def _first_positions(kind: str, a: np.ndarray, T: int) -> np.ndarray:
    """A site array `[R, L, T', ...]` cut to its first T positions (on a key axis too: a causal
    pattern of query q < T puts no weight on keys ≥ T)."""
    a = a[:, :, :T]
    return a[..., :T] if SITE_KIND_INFO[kind].key_axis else a


def _lines(numbers: Sequence[int] | np.ndarray) -> str:
    """'line 2' or 'lines 2, 5, 9, …' (at most ten named)."""
    named = ", ".join(str(int(n)) for n in numbers[:10]) + (", …" if len(numbers) > 10 else "")
    return f"line{'s' if len(numbers) > 1 else ''} {named}"


def _check_pairs(prompts: PromptSet, metric: Metric, source: str) -> None:
    """Refuse a metric that is 0 by construction (target == foil); warn where a counterfactual
    patch cannot change anything (clean == corrupted)."""
    if metric.name == "logit_diff":
        same = np.flatnonzero(np.asarray(prompts.target) == np.asarray(prompts.foil)) + 1
        if same.size:
            raise InputError(f"prompt {_lines(same)}: target and foil are the same token, so "
                             "logit(target) − logit(foil) is 0 whatever is patched; give each line a different "
                             "foil, or use the logprob metric")
    if source == "counterfactual":
        equal = [n + 1 for n, (c, x) in enumerate(zip(prompts.clean, prompts.corrupted)) if np.array_equal(c, x)]
        if equal:
            warnings.warn(f"prompt {_lines(equal)}: clean and corrupted are the same tokens, so "
                          "counterfactual patches change nothing there", stacklevel=3)


def shared_prefix_length(prompts: PromptSet, T: int) -> int:
    """S: how many leading positions every clean prompt shares with its corrupted prompt,
    at most up to every prompt's last position (the one the metric reads)."""
    differs = pad(prompts.clean, T) != pad(prompts.corrupted, T)  # [P, T]
    first = np.where(differs.any(axis=1), differs.argmax(axis=1), T)
    return int(min(first.min(), prompts.lengths.min() - 1))


def _site_positions(pos, roles: dict[str, np.ndarray], p: int, T: int):
    """The token indices a site's `pos` means in prompt p (an index, a slice or a boolean mask)."""
    if pos is None:
        return slice(None)
    if isinstance(pos, str):
        where = int(roles[pos.lstrip("~")][p])
        return np.arange(T) != where if pos.startswith("~") else where
    return pos


def _indicators(components: Sequence[Component], kinds: Sequence[str], L: int, T: int, H: int, Hkv: int,
                roles: dict[str, np.ndarray]) -> tuple[dict, bool]:
    """Which sites each component owns: kind -> [n, L, T, ...], or [P, n, L, T, ...] (and
    True) when some component names a role position, whose index differs per prompt."""
    per_prompt = any(isinstance(s.pos, str) for c in components for s in c.sites)
    P = len(next(iter(roles.values()))) if per_prompt else 1
    out = {}
    for kind in kinds:
        info = SITE_KIND_INFO[kind]
        ind = np.zeros((P, len(components), *info.indicator_shape(L, T, H, Hkv)), np.float32)
        for p in range(P):
            for i, comp in enumerate(components):
                for s in comp.sites:
                    if s.kind != kind:
                        continue
                    pos = _site_positions(s.pos, roles, p, T)
                    if info.per_head:
                        ind[p, i, s.layer, pos, slice(None) if s.head is None else s.head] = 1
                    else:
                        ind[p, i, s.layer, pos] = 1
        overlap = ind.sum(1) > 1
        if overlap.any():
            owners = [c.name for i, c in enumerate(components) if (ind[:, i] * overlap).any()]
            raise InputError(
                f"components {owners} share sites (a site may belong to one component or witness); "
                "remove the duplicates or merge them into one group"
            )
        out[kind] = ind if per_prompt else ind[0]
    return out, per_prompt


def _site_arrays(data: PromptArrays, components: Sequence[Component], pin: Sequence[Component], kinds: Sequence[str],
                 cfg, T: int, roles: dict) -> tuple[PromptArrays, dict, dict]:
    """The indicator and pinned-site arrays of `components` and witnesses `pin`: in `data` when some
    site is at a role position (per prompt), else returned beside it."""
    n = len(components)
    owned, per_prompt = _indicators((*components, *pin), kinds, cfg.n_layers, T, cfg.n_heads, cfg.n_kv_heads,
                                    roles)
    dtype = data.resid_start.dtype
    axis = 1 if per_prompt else 0  # the component axis
    slots = [(0, component_slots(n) - n if i == axis else 0) for i in range(axis + 1)]  # zero rows: empty slots

    def own(v: np.ndarray) -> np.ndarray:
        v = np.take(v, range(n), axis=axis)
        return np.pad(v, slots + [(0, 0)] * (v.ndim - axis - 1)).astype(dtype)

    indicator = {k: jax.device_put(own(v)) for k, v in owned.items()}
    pinned = {k: jax.device_put(np.take(v, range(n, v.shape[axis]), axis=axis).sum(axis).astype(dtype))
              for k, v in owned.items()} if pin else {}
    if per_prompt:
        return data._replace(indicator=indicator, pin=pinned), {}, {}
    return data._replace(indicator={}, pin={}), indicator, pinned


def _mean_per_position(acts: Activations, lengths: np.ndarray, kinds, T: int, padded: Optional[int] = None) -> dict:
    """Mean over prompts per position 0..T-1, counting only prompts that reach the position; zero at
    positions T..`padded`-1 (past every prompt's end)."""
    valid = (np.arange(acts.resid_pre.shape[2])[None] < lengths[:, None]).astype(np.float32)  # [R, T']
    count = valid.sum(0)
    if acts.resid_pre.shape[2] < T or (count[:T] == 0).any():
        raise InputError(
            f"the mean source needs reference prompts covering every position 0..{T - 1}; "
            "give longer reference prompts"
        )
    out = {}
    for kind in kinds:
        a = _first_positions(kind, np.asarray(getattr(acts, kind)), T)  # [R, L, T, ...]
        w = valid[:, None, :T].reshape(valid.shape[0], 1, T, *([1] * (a.ndim - 3)))
        mean = (a * w).sum(0) / count[:T].reshape(1, T, *([1] * (a.ndim - 3)))
        extra = (padded or T) - T
        ends = [(0, 0), (0, extra)] + [(0, 0)] * (mean.ndim - 2)
        if SITE_KIND_INFO[kind].key_axis:
            ends[-1] = (0, extra)
        out[kind] = np.pad(mean, ends)
    return out


def _group_means(ref_acts: Activations, ref_lengths: np.ndarray, mean_groups, lengths: np.ndarray,
                 kinds, base: Activations) -> dict:
    """Per prompt, the mean per position over the reference prompts of its group."""
    groups, ref_groups = (np.asarray(g) for g in mean_groups)
    if groups.shape != lengths.shape or ref_groups.shape != ref_lengths.shape:
        raise InputError(f"mean_groups needs one group per prompt ({len(lengths)}) and per reference prompt "
                         f"({len(ref_lengths)}); got {groups.shape} and {ref_groups.shape}")
    src = {k: np.zeros(getattr(base, k).shape, np.float32) for k in kinds}
    for g in np.unique(groups):
        rows, refs = np.flatnonzero(groups == g), np.flatnonzero(ref_groups == g)
        if not len(refs):
            raise InputError(f"mean_groups: no reference prompt is in group {g!r}; give reference prompts "
                             "for every group")
        T_g = int(lengths[rows].max())
        sub = jax.tree.map(lambda a: a[refs], ref_acts)
        try:
            means = _mean_per_position(sub, ref_lengths[refs], kinds, T_g)
        except InputError as e:
            raise InputError(f"group {g!r}: {e}") from e
        for k, v in means.items():
            keys = (slice(None), slice(None, T_g)) if SITE_KIND_INFO[k].key_axis else ()
            src[k][(rows, slice(None), slice(None, T_g), *keys)] = v
    return {k: jax.device_put(v.astype(base.resid_pre.dtype)) for k, v in src.items()}


def build_problem(
    model: PatchableModel,
    prompts: PromptSet,
    components: Sequence[Component],
    *,
    direction: Direction | str = "noising",  # `| str`: a wrong word gets build_problem's own error
    source: Source | str = "counterfactual",
    semantics: Semantics | str = "recompute",
    metric: str | Metric = "logit_diff",
    reference: Optional[PromptSet] = None,
    mean_groups: Optional[tuple[Sequence, Sequence]] = None,
    pin: Sequence[Component] = (),
    shared_prefix: bool = True,
) -> PatchProblem:
    """Run the base and source prompts once and cache everything f(α) needs.

    noising: base = clean prompt, source = corrupted; denoising: the reverse.
    `source="mean"` averages the source side of `reference` (default: `prompts`)
    per position; with `mean_groups = (group of each prompt, group of each
    reference prompt)` each prompt gets the mean over the reference prompts of
    its own group (e.g. its template, so positions align). `"zero"` patches zeros.
    `pin`: witness components held at their base-run values (clean under noising,
    corrupted under denoising) in every run while the rest recomputes; with
    `semantics="frozen"` every analysed component is pinned as well (PIE).
    `shared_prefix`: with the counterfactual source, the positions before the
    first token where any clean and corrupted prompt differ are the same in the
    base, the source and every patched run (attention is causal), so the
    evaluator takes them (and their keys and values) from the base run instead
    of recomputing them; exact up to float rounding. False recomputes them.
    """
    for value, allowed, what in ((direction, DIRECTIONS, "direction"), (source, SOURCES, "source"),
                                 (semantics, SEMANTICS, "semantics")):
        if value not in allowed:
            raise InputError(f"unknown {what} {value!r}; choose one of {list(allowed)}")
    if not components:
        raise InputError("no components to patch")
    pin = tuple(pin)
    both = sorted({c.name for c in components} & {w.name for w in pin})
    if both:
        raise InputError(f"{both} are both patched and pinned; a witness must not be one of the analysed "
                         "components: remove it from one of the two lists")
    cfg = model.config
    metric = get_metric(metric)
    check_vocab(prompts, cfg.vocab_size, cfg.n_positions)
    _check_pairs(prompts, metric, source)
    lengths = prompts.lengths
    T = padded_length(int(lengths.max()), cfg.n_positions)  # past every prompt's end: causal attention ignores it
    roles = prompts.roles
    for comp in (*components, *pin):
        for s in comp.sites:
            if isinstance(s.pos, str) and s.pos.lstrip("~") not in roles:
                raise InputError(
                    f"component {comp.name} patches position {s.pos.lstrip('~')!r}, but the prompts name only "
                    f"{sorted(roles)}; give each prompt line \"positions\": {{\"{s.pos.lstrip('~')}\": index}}"
                )
            if isinstance(s.pos, int) and s.pos >= lengths.min():
                raise InputError(
                    f"component {comp.name} patches position {s.pos}, but the shortest prompt "
                    f"has {lengths.min()} tokens (positions 0..{lengths.min() - 1})"
                )
    node_kinds = tuple(k for k in SITE_KINDS if any(s.kind == k for c in (*components, *pin) for s in c.sites))
    if any(s.is_edge for w in pin for s in w.sites):
        raise InputError("a witness must be a node (a head, MLP, key/value head, ...), not an edge; pin its sender")
    senders = edge_ops.sender_kinds(components)
    kinds = tuple(k for k in SITE_KINDS if k in node_kinds or k in senders)  # the activations cached
    S = shared_prefix_length(prompts, T) if shared_prefix and source == "counterfactual" else 0
    # host arrays go over with device_put (jnp.asarray of a numpy array compiles a program per shape)
    last, target, foil = jax.device_put([np.asarray(a, np.int32) for a in (lengths - 1, prompts.target, prompts.foil)])
    noising = direction == "noising"
    sides = [pad(prompts.clean, T), pad(prompts.corrupted, T)]
    runs = _base_runs(model, *jax.device_put(sides if noising else sides[::-1]), last, target, foil,
                      with_pattern="pattern" in kinds, metric=metric)
    base = runs.base
    if source == "zero":  # zeros made on the host: an eager zeros_like compiles a program per shape
        src = {k: jax.device_put(np.zeros(getattr(base, k).shape, getattr(base, k).dtype)) for k in kinds}
    else:  # counterfactual; the mean source replaces it below
        src = {k: getattr(runs.other, k) for k in kinds}
    if source == "mean":
        ref = reference if reference is not None else prompts
        check_vocab(ref, cfg.vocab_size, cfg.n_positions)
        ref_side = ref.corrupted if direction == "noising" else ref.clean
        ref_T = padded_length(int(ref.lengths.max()), cfg.n_positions)
        ref_acts = jax.device_get(run_model(model, pad(ref_side, ref_T), "pattern" in kinds))  # means on the host
        if mean_groups is None:
            means = _mean_per_position(ref_acts, ref.lengths, kinds, int(lengths.max()), T)
            src = {k: jax.device_put(np.broadcast_to(v, getattr(base, k).shape).astype(base.resid_pre.dtype))
                   for k, v in means.items()}
        else:
            src = _group_means(ref_acts, ref.lengths, mean_groups, lengths, kinds, base)
    edges, tables, carried = None, None, 0
    if senders:
        base_sites = {k: getattr(base, k) for k in kinds}
        carried = edge_ops.carried_count(components) if semantics == "recompute" else 0
        P = len(prompts.clean)
        tables = edge_ops.edge_tables(components, component_slots(len(components)), runs.resid_start.dtype)
        edges = edge_ops.EdgeData(
            delta=_sender_deltas(model, base_sites, src, tables),
            pos=jax.device_put(edge_ops.edge_positions(components, roles, P, T, _site_positions)
                               .astype(runs.resid_start.dtype)),
            z_base=base.z if carried else None, mlp_base=base.mlp_out if carried else None)
    data = PromptArrays(
        last=last, target=target, foil=foil, resid_start=runs.resid_start,
        base_sites={k: getattr(base, k) for k in node_kinds}, source={k: src[k] for k in node_kinds},
        indicator={}, pin={}, edges=edges,
        prefix_k=base.k[:, :, :S] if S else None, prefix_v=base.v[:, :, :S] if S else None,  # [P, L, S, Hkv, Dh]
    )
    data, indicator, pinned = _site_arrays(data, components, pin, node_kinds, cfg, T, roles)
    return PatchProblem(
        model=model, data=data, indicator=indicator, pin=pinned, witnesses=pin,
        metric_clean=runs.metric_base if noising else runs.metric_other,
        metric_corrupted=runs.metric_other if noising else runs.metric_base,
        components=tuple(components), direction=direction, source_kind=source,
        semantics=semantics, metric=metric, shared_prefix=S, edge_tables=tables,
        edge_receivers=edge_ops.receivers_of(components), carried=carried,
    )


@eqx.filter_jit
def _sender_deltas(model: PatchableModel, base: dict, source: dict, tables: edge_ops.EdgeTables) -> Array:
    """`edges.sender_deltas` as one program (the senders are traced: one program for every set of edges)."""
    return edge_ops.sender_deltas(model, base, source, tables)
