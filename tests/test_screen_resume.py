"""The Hessian screen of `intjax patch` keeps each block of Hessian-vector products in the run's checkpoints:
a run stopped after some blocks resumes without redoing any finished block, to the same values as a run
never stopped (changed inputs compute anew: `SweepContext.saved` compares the problem's fingerprint)."""

from __future__ import annotations

import numpy as np
import pytest

from intjax.estimands import hessian
from intjax.patching import make_prompt_set, parse_components
from intjax.runs.patch import PatchOptions, run_patch
from intjax.sweeps.context import SweepContext
from test_hessian_screen import PromptwisePolynomial
from test_patching import prompt_rows


BLOCK_HESSIAN = hessian.block_hessian


class Stop(Exception):
    """Stands for the kill."""


def counting_blocks(monkeypatch, stop_after: int | None = None) -> list[int]:
    """Count calls of the block program; raise `Stop` on the call after `stop_after` finished ones."""
    calls = []

    def block(*args, **kwargs):
        if stop_after is not None and len(calls) == stop_after:
            raise Stop
        calls.append(args[2])
        return BLOCK_HESSIAN(*args, **kwargs)

    monkeypatch.setattr(hessian, "block_hessian", block)
    return calls


def test_base_hessian_reads_finished_blocks_back_and_computes_only_the_missing_ones(monkeypatch):
    """The fast sibling of the next test: a store that keeps 2 of 3 blocks; the screen computes the third
    only, and its values are the closed form either way."""
    game = PromptwisePolynomial(5, P=2)  # H = Q exactly
    store = {}

    def saved(index, rows, compute):
        if index not in store:
            store[index] = compute()
        return store[index]

    first = hessian.base_hessian(game, block=2, saved=saved)
    assert sorted(store) == [0, 1, 2]
    del store[1]
    calls = counting_blocks(monkeypatch)
    again = hessian.base_hessian(game, block=2, saved=saved)
    assert len(calls) == 1
    np.testing.assert_allclose(first, game.Q, atol=1e-5)
    np.testing.assert_array_equal(again, first)


@pytest.mark.slow  # 8–17 s on the loaded 2-core machine: a tiny GPT-2 screen compiled and run 4 times
def test_stopped_screen_resumes_without_redoing_finished_blocks(tiny_model, tmp_path, monkeypatch):
    model = tiny_model[0]
    prompts = make_prompt_set(prompt_rows(model.config.vocab_size, (6, 8), seed=4))
    heads = parse_components("heads,mlps", model.config)  # 15 components: 2 blocks of 8
    monkeypatch.setattr(hessian, "HVP_BLOCK", 8)
    monkeypatch.setattr(hessian.base_hessian, "__defaults__", (8, None, None))
    options = PatchOptions(directions=("noising",), order=2, estimate="hessian")
    want, _ = run_patch(model, prompts, heads, options)  # no checkpoints
    sweeps = SweepContext.of(checkpoints=tmp_path / "checkpoints")
    counting_blocks(monkeypatch, stop_after=1)
    with pytest.raises(Stop):
        run_patch(model, prompts, heads, options, sweeps)
    calls = counting_blocks(monkeypatch)
    got, _ = run_patch(model, prompts, heads, options, sweeps)
    assert len(calls) == 1  # only the block the stop interrupted
    np.testing.assert_array_equal(got["int2_hessian_noising"].values, want["int2_hessian_noising"].values)
    run_patch(model, prompts, heads, options, sweeps)
    assert len(calls) == 1  # a finished run reads every block back


def test_linear_estimates_are_read_back_by_a_resumed_run(tiny_model, tmp_path, monkeypatch):
    """A rerun into the same checkpoints does not differentiate again (the gradient raises if it is called),
    and gives the values a run without checkpoints computes."""
    import intjax.runs.patch

    model = tiny_model[0]
    prompts = make_prompt_set(prompt_rows(model.config.vocab_size, (6,), seed=4))
    heads = parse_components("L0H1,L1H0", model.config)
    options = PatchOptions(directions=("noising",), linear=True)
    want, _ = run_patch(model, prompts, heads, options)
    sweeps = SweepContext.of(checkpoints=tmp_path / "checkpoints")
    run_patch(model, prompts, heads, options, sweeps)

    def refuse(problem):
        raise AssertionError("the linear estimates were computed again")

    monkeypatch.setattr(intjax.runs.patch, "linear", refuse)
    got, _ = run_patch(model, prompts, heads, options, sweeps)
    np.testing.assert_array_equal(got["linear_noising"].values, want["linear_noising"].values)
