"""Options refuse bad values when made, naming the field and the fix; the sweep context places each game's
checkpoints one folder down per child; the command line's defaults are the dataclasses' own."""

from __future__ import annotations

from pathlib import Path

import pytest

from intjax.errors import InputError
from intjax.options import IOIAnalysisOptions, IOIStudyOptions


@pytest.mark.parametrize("make, words", [
    (lambda: IOIStudyOptions(n_resamples=1), "IOIStudyOptions.n_resamples=1: give an integer >= 2"),
    (lambda: IOIStudyOptions(ablations=("median",)), "IOIStudyOptions.ablations=('median',)"),
    (lambda: IOIStudyOptions(completeness_ablation="median"), "or None to skip completeness"),
    (lambda: IOIStudyOptions(minimality_threshold=float("nan")), "minimality_threshold=nan: give a finite"),
    (lambda: IOIAnalysisOptions(corruption="abba"), "corruption='abba': give one of ['abc', 's2_flip'"),
    (lambda: IOIAnalysisOptions(triple_pool=2), "triple_pool=2: give an integer >= 3"),
    (lambda: IOIAnalysisOptions(fixed=("n_prompts",)), "which the budget never shrinks"),
    (lambda: IOIAnalysisOptions(budget_minutes=-1.0), "budget_minutes=-1.0"),
])
def test_bad_options_fail_when_made(make, words):
    with pytest.raises(InputError) as e:
        make()
    assert words in str(e.value)


def test_patch_options_and_sweep_context_check_their_values(tmp_path):
    from intjax.runs.patch import PatchOptions
    from intjax.sweeps.context import SweepContext

    for bad, words in ((dict(order=0), "order=0"), (dict(source="median"), "source='median'"),
                       (dict(directions=()), "directions=()")):
        with pytest.raises(InputError, match=words.replace("(", r"\(").replace(")", r"\)")):
            PatchOptions(**bad)
    with pytest.raises(InputError, match="memory_gb=0"):
        SweepContext.of(memory_gb=0)
    with pytest.raises(InputError, match="chunk=-1"):
        SweepContext(chunk=-1)
    ctx = SweepContext.of(memory_gb=0.5, checkpoints=str(tmp_path))
    assert ctx.memory_bytes == 2**29 and ctx.checkpoints == tmp_path
    assert ctx.child("a").child("b").folder("c") == Path(tmp_path) / "a" / "b" / "c"
    assert SweepContext().child("a").folder("b") is None  # no checkpoints anywhere below


def test_the_command_line_defaults_are_the_dataclasses():
    from intjax.cli import build_parser, ioi_options

    args = build_parser().parse_args(["ioi", "--model", "m", "--out", "o", "--budget-min", "0"])
    options = ioi_options(args)
    assert options == IOIAnalysisOptions(studies=IOIStudyOptions())
