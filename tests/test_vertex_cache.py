"""The vertex cache: a vertex from one sweep serves another sweep that patches the same sites in
the same context (checked against sweeping it there), never a different context, and a run
that crashes resumes with the cache it had."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from intjax.estimands.mobius import subset_masks, subsets_up_to
from intjax.patching import build_problem, evaluate, make_prompt_set, parse_components
from intjax.sweeps import VertexCache, run_sweep
from test_patching import prompt_rows

loop = importlib.import_module("intjax.patching.evaluate")  # the module (the package exports the function)


def problems(model, spec, **kw):
    rows = prompt_rows(model.config.vocab_size, (7, 9, 8))
    return build_problem(model, make_prompt_set(rows), parse_components(spec, model.config), **kw)


def test_shared_vertices_equal_their_own_sweep_and_contexts_do_not_mix(tiny_model):
    model, _ = tiny_model
    cache = VertexCache()
    big = problems(model, "L0H1,L1H0,L2H3,L0MLP,L1MLP,L2MLP")
    big_masks = subset_masks(subsets_up_to(6, 2), 6)
    np.testing.assert_allclose(evaluate(big, big_masks, cache=cache), evaluate(big, big_masks), atol=1e-5)
    assert cache.misses == len(big_masks) and cache.hits == 0

    small = problems(model, "L2H3,L0MLP,L1H0")  # other components, some pairs of the big sweep
    masks = subset_masks(subsets_up_to(3, 3), 3)  # 8 rows: the triple is new
    got = evaluate(small, masks, cache=cache)
    assert cache.hits == 7 and cache.misses == len(big_masks) + 1
    np.testing.assert_allclose(got, evaluate(small, masks), atol=1e-5)  # the reference: swept in place

    # other contexts share nothing: direction, semantics (frozen pins every analysed site), witnesses
    for other in (problems(model, "L2H3,L0MLP,L1H0", direction="denoising"),
                  problems(model, "L2H3,L0MLP,L1H0", semantics="frozen"),
                  problems(model, "L2H3,L0MLP,L1H0", pin=parse_components("L2MLP", model.config))):
        hits = cache.hits
        np.testing.assert_allclose(evaluate(other, masks, cache=cache), evaluate(other, masks), atol=1e-5)
        assert cache.hits == hits
    fractional = np.full((1, 3), 0.5)  # only binary rows are cached
    evaluate(small, fractional, cache=cache)
    hits = cache.hits
    evaluate(small, fractional, cache=cache)
    assert cache.hits == hits


def test_a_crashed_run_resumes_with_the_cache_it_had(tiny_model, tmp_path, monkeypatch):
    """Vertices are stored when a sweep finishes, so a rerun sees the same cache at every sweep's
    start; the interrupted sweep resumes from its checkpoint instead of being refused."""
    model, _ = tiny_model
    first, second = problems(model, "heads"), problems(model, "L0H1,L1H2,L2H3,L2MLP")
    masks1, masks2 = subset_masks(subsets_up_to(12, 1), 12), subset_masks(subsets_up_to(4, 2), 4)
    folder = tmp_path / "vertices"
    run_sweep(first, masks1, tmp_path / "s1", quiet=True, cache=VertexCache(folder))
    real, calls = loop.run_chunk, []

    def failing(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "run_chunk", failing)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(second, masks2, tmp_path / "s2", chunk=2, quiet=True, save_every_s=0.0, cache=VertexCache(folder))
    monkeypatch.setattr(loop, "run_chunk", real)
    rerun = VertexCache(folder)  # a new process: only the finished sweep's vertices
    sites_per_vertex = [sum(not t.startswith("source") for t in key[1]) for key in rerun.values]
    assert len(sites_per_vertex) == 13 and max(sites_per_vertex) == 1  # f(0) and the 12 heads
    resumed = run_sweep(second, masks2, tmp_path / "s2", chunk=2, quiet=True, cache=rerun)
    np.testing.assert_allclose(resumed, evaluate(second, masks2), atol=1e-5)
    assert rerun.hits == 4  # f(0) and the three heads came from the first sweep
