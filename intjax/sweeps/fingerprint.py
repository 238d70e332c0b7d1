"""Provenance of a sweep: hashes of the model, the prompts and the masks, plus the options."""

from __future__ import annotations

import hashlib
import importlib
import weakref
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

from intjax.patching.problem import PatchProblem


def hash_arrays(*trees: Any) -> str:
    """A short content hash of every array leaf (shape, dtype and bytes) in the trees."""
    h = hashlib.blake2b(digest_size=12)
    for leaf in jax.tree.leaves(eqx.filter(trees, eqx.is_array_like)):
        arr = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{arr.shape}{arr.dtype}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


_MODEL_DIGESTS: dict[tuple[int, ...], tuple[list, str]] = {}  # leaf ids -> (weak refs to the leaves, digest)


def code_digest(*modules: str) -> str:
    """A hash of the source files of `modules` (packages: every .py file in them), so that saved results
    computed by other code are not read back after an upgrade."""
    h = hashlib.sha256()
    for name in modules:
        path = Path(importlib.import_module(name).__file__)
        files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
        for f in files:
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def model_digest(model: Any) -> str:
    """`hash_arrays(model)`, computed once per set of weight arrays: arrays are not changed in
    place, so the same array objects always hash the same (GPT-2 small takes ~0.8 s to hash,
    and a run fingerprints every sweep; each problem wraps the same arrays in a new module).
    Entries hold weak references, so a discarded model's memory is freed and its entry
    (whose ids could be reused) is never matched again."""
    leaves = jax.tree.leaves(eqx.filter(model, eqx.is_array_like))
    key = tuple(id(leaf) for leaf in leaves)
    hit = _MODEL_DIGESTS.get(key)
    if hit is not None and all(ref() is leaf for ref, leaf in zip(hit[0], leaves)):
        return hit[1]
    digest = hash_arrays(model)
    try:
        refs = [weakref.ref(leaf) for leaf in leaves]
    except TypeError:  # a leaf that takes no weak reference: do not cache
        return digest
    for k in [k for k, (rs, _) in _MODEL_DIGESTS.items() if any(r() is None for r in rs)]:
        del _MODEL_DIGESTS[k]  # entries of models that are gone
    _MODEL_DIGESTS[key] = (refs, digest)
    return digest


def sweep_fingerprint(problem: PatchProblem, masks: np.ndarray, **options: Any) -> dict[str, Any]:
    """What must be identical for a saved sweep to be resumed: model, prompts, masks, options."""
    d = problem.data
    return dict(
        model=model_digest(problem.model),
        prompts=hash_arrays(d.last, d.target, d.foil, d.resid_start, d.indicator),
        sources=hash_arrays(d.source),
        masks=hash_arrays(np.asarray(masks)),
        components=[c.spec for c in problem.components],
        pinned=[c.spec for c in problem.witnesses],
        pins=hash_arrays(problem.pin, d.pin),
        direction=problem.direction,
        semantics=problem.semantics,
        source=problem.source_kind,
        metric=problem.metric.name,
        shared_prefix=problem.shared_prefix,
        chunk_plan=3,  # 3: chunks of any start layers, fixed-shape blocks (a sweep saved under another plan cannot resume)
        **options,
    )
