"""The IOI plan: the budget shrinks sizes in order and never below their floors, sizes the user set
stay, and the stage lines rescale the rest of the plan by the finished stages (planted costs)."""

from __future__ import annotations

import dataclasses
import os

import pytest

from intjax.progress import Stages
from intjax.ioi.plan import FLOORS, SHRINK_STEPS, Sizes, fit_budget

FULL = Sizes(n_prompts=32, split_pairs=1000, pair_pool=16, triple_pool=8, theorem_heads=4, theorem_order=3,
             theorem_prompts=8, distance_heads=5, distance_prompts=16, n_resamples=20, faithfulness_prompts=32,
             n_ablations=3, search_pool=12, search_k=6)


def planted(sizes: Sizes) -> list[float]:
    """A planted cost: one second per unit of each shrinkable size (no stage order needed)."""
    return [float(getattr(sizes, f)) for f in FLOORS]


def test_budget_met_by_the_first_steps_stops_there():
    full = sum(planted(FULL))
    sizes, changed = fit_budget(FULL, full - 500, planted)  # split_pairs 1000 -> 500 saves exactly 500
    assert sizes == dataclasses.replace(FULL, split_pairs=500) and changed == ["split_pairs 1000 → 500"]
    assert fit_budget(FULL, full, planted) == (FULL, [])


def test_impossible_budget_leaves_every_size_at_its_floor_and_fixed_sizes_alone():
    sizes, changed = fit_budget(FULL, 1.0, planted, fixed=("n_resamples",))
    assert sizes.n_resamples == 20  # set by the user
    for field, floor in FLOORS.items():
        if field != "n_resamples":
            assert getattr(sizes, field) == floor, field
    assert len(changed) == len(FLOORS) - 1
    assert sizes.n_prompts == FULL.n_prompts  # never shrunk
    assert all(value >= FLOORS[field] for field, value in SHRINK_STEPS)


def test_stage_lines_rescale_the_rest_of_the_plan(capsys):
    """Hand arithmetic: each estimate holds a compiling part; the running parts rescale by measured over
    estimated running time, each side with ETA_PRIOR_S (30 s) added, and the compiling parts by
    measured over estimated compiling, each side with ETA_COMPILE_PRIOR_S (5 s) added."""
    stages = Stages(["a", "b", "c"], estimates=[10.0, 20.0, 0.0], title="t", compiling=[4.0, 12.0, 0.0])
    assert "estimated 30 s in all" in capsys.readouterr().err
    assert stages.remaining() == 30.0  # nothing measured: the plan as printed
    stages.seconds["a"], stages.compile_seconds["a"] = 30.0, 12.0  # 18 s running against 6, 12 compiling against 4
    run, compiling = (18 + 30) / (6 + 30), (12 + 5) / (4 + 5)
    assert stages.scale() == run and stages.compile_scale() == compiling
    assert stages.remaining() == pytest.approx(run * 8 + compiling * 12)  # b: 8 s running, 12 compiling
    stages.compile_seconds["a"] = 0.0  # a warm cache: nothing compiled, all 30 s running
    assert stages.remaining() == pytest.approx((30 + 30) / (6 + 30) * 8 + 5 / 9 * 12)
    default = Stages(["a"], estimates=[10.0], quiet=True)  # without compiling parts: COMPILE_S_PER_STAGE each
    assert default.compiling == [4.0]


def test_stages_read_back_from_a_checkpoint_leave_the_rescaling_alone():
    """A resumed run: stage a finishes in 0.5 s of its 10 (under READ_BACK_SHARE, nothing compiled), so the
    rest of the plan stays as printed (before: a 0.5/10 ratio cut the ETA of b to a fifth); a slow stage
    still rescales, by hand arithmetic as above."""
    stages = Stages(["a", "b", "c"], estimates=[10.0, 20.0, 40.0], quiet=True, compiling=[4.0, 12.0, 0.0])
    stages.seconds["a"], stages.compile_seconds["a"] = 0.5, 0.0
    assert stages.read_back("a") and stages.remaining() == pytest.approx(60.0)
    stages.seconds["b"], stages.compile_seconds["b"] = 38.0, 12.0  # 26 s running against 8, compiling as planned
    assert not stages.read_back("b")
    assert stages.remaining() == pytest.approx((26 + 30) / (8 + 30) * 40)


def test_a_stage_line_says_how_much_of_it_was_compiling(capsys):
    import jax
    import jax.numpy as jnp

    stages = Stages(["a"], estimates=[1.0], title="t")
    with stages.stage("a"):
        jax.jit(lambda x: jnp.sin(x) * 3)(jnp.ones(7)).block_until_ready()  # a new program
    assert 0 < stages.compile_seconds["a"] <= stages.seconds["a"]


def test_command_line_sizes_are_fixed_and_defaults_match_the_library():
    """Sizes given as flags are never shrunk by --budget-min; the CLI's defaults are the library's."""
    from intjax.cli import build_parser, ioi_options
    from intjax.ioi import IOIAnalysisOptions

    given = ioi_options(build_parser().parse_args(["demo", "--resamples", "20", "--search-k", "3"]))
    assert set(given.fixed) == {"n_resamples", "search_k"} and given.budget_minutes == 15.0
    plain = ioi_options(build_parser().parse_args(["demo"]))
    library = IOIAnalysisOptions()
    assert plain.fixed == () and plain.studies == library.studies
    assert plain.theorem_heads == library.theorem_heads
    sizes, _ = fit_budget(FULL, 1.0, planted, fixed=given.fixed)
    assert sizes.n_resamples == 20 and sizes.search_k == FULL.search_k


def test_completeness_vertex_count_bounds_the_sweep():
    """The plan's vertex count for completeness and minimality is at least what a run evaluates (planted
    games of several shapes), and within twice it; the stage estimate grows by exactly those vertices."""
    import numpy as np

    from intjax.ioi.completeness import CircuitGame, completeness, minimality
    from intjax.ioi.plan import EFFICIENCY, completeness_vertices, stage_forward_equivalents

    class Table:
        def __init__(self, n):
            self.n_components, self.table = n, np.random.default_rng(n).normal(size=(1 << n, 3))

        def values(self, masks):
            return self.table[(masks * (1 << np.arange(masks.shape[1]))).sum(1).astype(int)]

        def __call__(self, alpha):  # a Game; completeness never differentiates
            raise NotImplementedError("a lookup table has no derivatives")

    for n, m in ((3, 2), (5, 4), (6, 6)):
        cg = CircuitGame(Table(n + m), [f"c{i}" for i in range(n)], [f"o{i}" for i in range(m)])
        completeness(cg), minimality(cg)
        assert cg.n_vertices <= completeness_vertices(n, m) <= 2 * cg.n_vertices, (n, m)
    without = stage_forward_equivalents(FULL, 4, 4)
    with_7 = stage_forward_equivalents(FULL, 4, 4, n_circuit_units=7)
    assert with_7[5] - without[5] == EFFICIENCY["completeness"] * FULL.n_prompts * completeness_vertices(7, 9)
    assert with_7[:5] == without[:5]


def test_completeness_flags_reach_the_study_options(capsys):
    """--completeness-ablation off skips completeness and minimality; a negative threshold is refused."""
    import pytest

    from intjax.cli import build_parser, ioi_options

    off = ioi_options(build_parser().parse_args(["demo", "--completeness-ablation", "off",
                                                 "--minimality-threshold", "0.1"]))
    assert off.studies.completeness_ablation is None and off.studies.minimality_threshold == 0.1
    resample = ioi_options(build_parser().parse_args(["demo", "--completeness-ablation", "resample"]))
    assert resample.studies.completeness_ablation == "resample"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--minimality-threshold", "-0.1"])
    assert "too small" in capsys.readouterr().err


def test_stages_an_earlier_run_finished_are_planned_as_read_back_and_left_out_of_the_rescaling(capsys):
    """Stage a was saved: the plan prints it at SAVED_STAGE_S (0.4 s) with no compiling, a slow read-back of it
    (3 s, 2 compiling) rescales nothing, and the rest keeps its estimates (hand arithmetic)."""
    stages = Stages(["a", "b", "c"], estimates=[10.0, 20.0, 40.0], title="t", compiling=[4.0, 12.0, 0.0],
                    saved=[True, False, False])
    err = capsys.readouterr().err
    assert "1. a (saved by an earlier run: read back, ~<1 s)" in err and "2. b (~20 s)" in err
    assert "estimated 60 s in all" in err  # 0.4 + 20 + 40
    assert stages.remaining() == pytest.approx(60.4)
    stages.seconds["a"], stages.compile_seconds["a"] = 3.0, 2.0
    assert stages.read_back("a") and stages.scale() == 1.0 and stages.compile_scale() == 1.0
    assert stages.remaining() == pytest.approx(60.0)


def test_a_finished_stage_calls_on_done_and_a_failed_one_does_not():
    done = []
    stages = Stages(["a", "b"], quiet=True, on_done=done.append)
    with stages.stage("a"):
        pass
    with pytest.raises(RuntimeError):
        with stages.stage("b"):
            raise RuntimeError("stopped")
    assert done == ["a"]


def test_the_calibration_forward_says_whether_its_program_came_from_the_compilation_cache(tiny, tmp_path):
    """A fresh cache folder: compiled (False); the in-memory programs dropped, the same forward again: loaded
    from the folder (True). The plan then takes WARM_COMPILE_SHARE of each stage's compiling."""
    import subprocess
    import sys

    from intjax.ioi.plan import STAGE_COMPILE_S, WARM_COMPILE_SHARE, stage_compile_seconds

    code = f"""
import jax
from intjax.loading import load_model
from intjax.progress import timed_forward
from intjax.runtime import enable_compilation_cache
enable_compilation_cache()
model = load_model({str(tiny[0])!r}, tokenizer=False)[0]
first = timed_forward(model, 5).from_cache
jax.clear_caches()
print(first, timed_forward(model, 5).from_cache)
"""
    env = {**os.environ, "INTJAX_COMPILATION_CACHE": str(tmp_path / "xla")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.split() == ["False", "True"], done.stderr[-2000:]
    assert stage_compile_seconds(False) == STAGE_COMPILE_S
    assert stage_compile_seconds(True) == tuple(WARM_COMPILE_SHARE * c for c in STAGE_COMPILE_S)
