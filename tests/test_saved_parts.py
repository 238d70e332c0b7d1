"""`SweepContext.saved`: a part of a run that is not a sweep (the theorem table) is kept beside its
inputs, so a rerun with the same inputs reads it back instead of computing it."""

from __future__ import annotations

import numpy as np

from intjax.runs.theorems import TheoremTable
from intjax.sweeps.context import SweepContext


def counting(result):
    calls = []

    def compute():
        calls.append(1)
        return result

    return compute, calls


def test_a_saved_part_is_read_back_for_equal_inputs_and_computed_for_others(tmp_path):
    table = TheoremTable(order=3, n_components=4, identity_max_residual=3.3e-15,
                         slope_frozen={2: 2.01, 3: 2.97}, bound_by_set=[dict(set=[0, 1], int=np.arange(3.0))])
    sweeps = SweepContext(checkpoints=tmp_path)
    inputs = dict(model="abc", heads=["L0H1", "L1H0"], order=3, bound_order=None)
    compute, calls = counting(table)
    first = sweeps.saved("theorems", inputs, compute)
    again = sweeps.saved("theorems", dict(inputs), compute)  # a resumed run: read, not computed
    assert len(calls) == 1 and again.slope_frozen == {2: 2.01, 3: 2.97} and again.order == 3
    np.testing.assert_array_equal(again.bound_by_set[0]["int"], np.arange(3.0))
    assert first is table
    sweeps.saved("theorems", dict(inputs, heads=["L0H1", "L2H0"]), compute)  # other heads: computed
    sweeps.saved("theorems", dict(inputs, heads=["L0H1", "L2H0"]), compute)
    assert len(calls) == 2
    SweepContext(checkpoints=tmp_path, restart=True).saved("theorems", dict(inputs, heads=["L0H1", "L2H0"]),
                                                           compute)
    assert len(calls) == 3  # --restart: computed again


def test_a_damaged_or_half_written_part_is_computed_again(tmp_path):
    sweeps = SweepContext(checkpoints=tmp_path)
    compute, calls = counting(TheoremTable(order=2))
    sweeps.saved("t", {"k": 1}, compute)
    (tmp_path / "t.json").write_text("{not json")
    assert sweeps.saved("t", {"k": 1}, compute).order == 2 and len(calls) == 2
    (tmp_path / "t.json").unlink()  # a save stopped before its .json (written last)
    sweeps.saved("t", {"k": 1}, compute)
    assert len(calls) == 3
    compute_none, none_calls = counting(TheoremTable(order=2))
    SweepContext().saved("t", {"k": 1}, compute_none)  # no folder: computed, nothing written
    assert len(none_calls) == 1


def test_stage_marks_are_found_only_by_a_run_with_equal_inputs(tmp_path):
    """Marks of stages a and b (the report, c, is never marked): a rerun with equal inputs finds them; other
    inputs, --restart or no checkpoint folder find none."""
    from intjax.sweeps.stage_marks import StageMarks

    names = ("a", "b", "c")
    inputs = dict(model="abc", options="IOIAnalysisOptions(n_prompts=8)")
    first = StageMarks(SweepContext(checkpoints=tmp_path), names[:-1], inputs)
    assert first.finished(names) == [False, False, False]
    first.mark("a")
    first.mark("c")  # not one of the marked stages
    again = StageMarks(SweepContext(checkpoints=tmp_path), names[:-1], dict(inputs))
    assert again.finished(names) == [True, False, False]
    again.mark("b")
    assert first.finished(names) == [True, True, False]
    assert StageMarks(SweepContext(checkpoints=tmp_path), names[:-1], dict(inputs, model="abd")).finished(
        names) == [False, False, False]
    assert StageMarks(SweepContext(checkpoints=tmp_path, restart=True), names[:-1], inputs).finished(
        names) == [False, False, False]
    assert StageMarks(SweepContext(), names[:-1], inputs).finished(names) == [False, False, False]
