"""The IOI plan: the budget shrinks sizes in order and never below their floors, sizes the user set
stay, and the stage lines rescale the rest of the plan by the finished stages (planted costs)."""

from __future__ import annotations

import dataclasses

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
    stages = Stages(["a", "b", "c"], estimates=[10.0, 20.0, 0.0], title="t")
    assert "estimated 30 s in all" in capsys.readouterr().err
    stages.seconds["a"] = 30.0  # took three times its estimate
    assert stages.scale() == 3.0 and stages.remaining() == 60.0


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
