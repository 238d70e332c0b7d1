"""Provenance of a sweep: hashes of the model, the prompts and the masks, plus the options."""

from __future__ import annotations

import hashlib
import weakref
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


_MODEL_DIGESTS: dict[int, tuple[Any, str]] = {}  # id(model) -> (weak reference to it, digest)


def model_digest(model: Any) -> str:
    """`hash_arrays(model)`, computed once per model object: a model's arrays are immutable, so
    the same object always has the same digest (GPT-2 small takes ~0.5 s to hash, and a run
    fingerprints every sweep). Keyed by identity; an entry dies with its model."""
    key = id(model)
    hit = _MODEL_DIGESTS.get(key)
    if hit is not None and hit[0]() is model:
        return hit[1]
    digest = hash_arrays(model)
    try:
        ref = weakref.ref(model)
    except TypeError:  # takes no weak reference: do not cache (its id could be reused)
        return digest
    _MODEL_DIGESTS[key] = (ref, digest)
    weakref.finalize(model, _MODEL_DIGESTS.pop, key, None)
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
        chunk_plan=2,  # 2: chunks ordered for prefix sharing (a sweep saved under another plan cannot resume)
        **options,
    )
