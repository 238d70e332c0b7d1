"""The IOI analysis's pair screen: the Hessian screen (`intjax patch --order 2 --estimate hessian`) of every
pair among the heads whose exact pairwise INT the analysis computes, kept in the run's checkpoints so that a
resumed run reads it back."""

from __future__ import annotations

from typing import Sequence

from intjax.model.protocol import PatchableModel
from intjax.patching.components import Component
from intjax.patching.prompts import PromptSet
from intjax.results import Results
from intjax.runs.patch import PatchOptions, run_patch
from intjax.sweeps.context import SweepContext
from intjax.sweeps.fingerprint import code_digest, hash_arrays, model_digest


def pair_screen(model: PatchableModel, prompts: PromptSet, heads: Sequence[Component],
                sweeps: SweepContext) -> tuple[Results, dict[str, float]]:
    """`int2_hessian_noising` and `int2_hessian_denoising` of every pair of `heads` (the same items, in the
    same order, as their exact `int2_*`), and their timings in s; saved in `sweeps` as `pair_screen`."""
    inputs = dict(model=model_digest(model), heads=[h.name for h in heads],
                  prompts=hash_arrays(list(prompts.clean), list(prompts.corrupted), prompts.target, prompts.foil,
                                      prompts.positions),
                  code=code_digest("intjax.estimands", "intjax.runs.patch"))

    def compute() -> tuple[Results, dict[str, float]]:
        return run_patch(model, prompts, heads, PatchOptions(order=2, estimate="hessian"))

    return sweeps.saved("pair_screen", inputs, compute)
