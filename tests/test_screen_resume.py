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
