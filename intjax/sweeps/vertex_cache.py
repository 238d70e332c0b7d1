"""f(1_S) computed once per run: the vertex values of finished sweeps, shared by every later
sweep of the run that asks for the same patch on the same prompts.

A vertex is keyed by the run's *context* (model weights, prompts and their cached
base and source runs, direction, source, semantics, metric, witnesses) and by
the set of sites it patches fully, with the values patched in (per site kind):
under recompute semantics f(1_S) depends on
nothing else, so the NIE sweep over 144 heads, the pairs among 16 of them and
the remedies table's head rows share vertices although their component lists
differ. Under frozen semantics every analysed site is pinned too, and where a
component names role positions the sites depend on each prompt's roles, so
those contexts include the whole component list.

Only binary mask rows are cached (fractional α rarely repeats). With a
`folder`, each finished sweep's new vertices are written there (one file per
sweep, atomically), and a rerun loads them first. Because vertices are stored
only when a sweep finishes, a rerun after a crash sees the same cache at the
start of every sweep as the first run did, so checkpointed sweeps resume (their
fingerprints are over the rows the cache did not have).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional

import jax
import numpy as np

from intjax.patching.problem import PatchProblem
from intjax.sweeps.fingerprint import hash_arrays, model_digest

Key = tuple[str, frozenset]


def _site_text(site) -> str:
    return json.dumps([site.kind, site.layer, site.head, site.pos, *([list(site.sender)] if site.is_edge else [])])


class VertexCache:
    """Vertex values f(1_S) `[P]` of finished sweeps, per context; `hits`/`misses` count mask rows."""

    def __init__(self, folder: Optional[str | Path] = None):
        self.folder = None if folder is None else Path(folder)
        self.values: dict[Key, np.ndarray] = {}
        self.hits = self.misses = 0
        self._last: Optional[tuple[PatchProblem, str, list[frozenset]]] = None
        if self.folder is not None and self.folder.is_dir():
            for path in sorted(self.folder.glob("*.npz")):
                with np.load(path) as f:
                    for context, sites, value in zip(f["contexts"], f["sites"], f["values"]):
                        self.values[(str(context), frozenset(json.loads(str(sites))))] = value

    @staticmethod
    def context(problem: PatchProblem) -> str:
        """What f(1_S) depends on besides S."""
        d = problem.data
        parts = dict(model=model_digest(problem.model), dtype=str(d.resid_start.dtype),
                     prompts=hash_arrays(d.last, d.target, d.foil, d.resid_start, d.prefix_k),
                     pins=hash_arrays(problem.pin, d.pin),
                     witnesses=[c.spec for c in problem.witnesses], direction=problem.direction,
                     semantics=problem.semantics, source=problem.source_kind, metric=problem.metric.name)
        roles = any(isinstance(s.pos, str) for c in problem.components for s in c.sites)
        if problem.semantics == "frozen" or roles:
            parts["components"] = [c.spec for c in problem.components]
        return json.dumps(parts, sort_keys=True)

    def _identity(self, problem: PatchProblem) -> tuple[str, list[frozenset]]:
        """The problem's context and each component's key part (its sites and source hashes),
        hashed once for the lookup and the store that follows it (the last problem is kept)."""
        if self._last is None or self._last[0] is not problem:
            source = {k: hash_arrays(v) for k, v in problem.data.source.items()}
            if problem.data.edges is not None:  # every edge kind: the senders' source − base writes
                source.update(dict.fromkeys(problem.edge_receivers, hash_arrays(problem.data.edges.delta)))
            sites = [frozenset(_site_text(s) for s in c.sites) | {f"source {s.kind} {source[s.kind]}" for s in c.sites}
                     for c in problem.components]
            self._last = (problem, self.context(problem), sites)
        return self._last[1], self._last[2]

    def _keys(self, problem: PatchProblem, masks: np.ndarray) -> list[Optional[Key]]:
        """Per row: (context, its sites and the hash of the source values of each site kind it
        patches), or None for a fractional row. A problem caches sources only for the kinds its
        components use, so the source enters per kind, not in the context."""
        context, sites = self._identity(problem)
        binary = np.all((masks == 0) | (masks == 1), axis=1)
        return [(context, frozenset().union(*(sites[i] for i in np.flatnonzero(row)))) if ok else None
                for row, ok in zip(masks, binary)]

    def lookup(self, problem: PatchProblem, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values `[M, P]`, NaN where unknown; which rows are known `[M]`)."""
        keys = self._keys(problem, masks)
        out = np.full((len(masks), problem.n_prompts), np.nan)
        known = np.array([k is not None and k in self.values for k in keys], bool)
        for m in np.flatnonzero(known):
            out[m] = self.values[keys[m]]
        self.hits += int(known.sum())
        self.misses += int((~known).sum())
        return out, known

    def store(self, problem: PatchProblem, masks: np.ndarray, values: np.ndarray) -> None:
        """Remember the binary rows of a finished sweep (and write them to the folder)."""
        new = [(k, v) for k, v in zip(self._keys(problem, masks), values) if k is not None and k not in self.values]
        if not new:
            return
        self.values.update(new)
        if self.folder is None or jax.process_index() != 0:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        arrays = dict(contexts=np.array([k[0] for k, _ in new]),
                      sites=np.array([json.dumps(sorted(k[1])) for k, _ in new]),
                      values=np.stack([v for _, v in new]))
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".vertices.", suffix=".npz")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, self.folder / f"{len(list(self.folder.glob('*.npz'))):05d}.npz")
