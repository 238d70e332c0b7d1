"""The theorem table's rows say what their checks exercise: the recompute slope rule is a conjecture,
and the row names the predictions it was checked at."""

from __future__ import annotations

from intjax.report.theorems import theorem_rows
from intjax.runs.theorems import TheoremTable

BASE = dict(dtype="float64", effect_scale=10.0, identity_max_residual=0.0, context_identity_max_residual=0.0,
            integral_max_z=0.5, integral_resolution=0.01, integral_points=dict(scramblings=8, points=64))


def test_recompute_slope_row_is_a_conjecture_and_names_its_predictions():
    sets = [dict(frozen=2.0, predicted_frozen=2, recompute=1.02, predicted_recompute=1),
            dict(frozen=3.0, predicted_frozen=3, recompute=1.1, predicted_recompute=1)]
    (row,) = [r for r in theorem_rows(TheoremTable.from_dict({**BASE, "slopes_by_set": sets})) if r["check"] == "scaling slope (recompute)"]
    assert "a conjecture" in row["meaning"] and row["meaning"].endswith("exercised here only where it predicts 1")
    assert row["value"] == "2/2 sets"
    sets.append(dict(frozen=2.0, predicted_frozen=2, recompute=1.9, predicted_recompute=2))
    (row,) = [r for r in theorem_rows(TheoremTable.from_dict({**BASE, "slopes_by_set": sets})) if r["check"] == "scaling slope (recompute)"]
    assert row["meaning"].endswith("where it predicts 1, 2") and row["value"] == "3/3 sets"


def test_the_typed_table_keeps_every_key_of_the_dict_in_order():
    table = {**BASE, "slopes_by_set": [], "later_key": [1, 2]}  # a key theorem_table may add later
    typed = TheoremTable.from_dict(table)
    assert typed.effect_scale == 10.0 and typed.extra == {"later_key": [1, 2]}
    back = typed.as_dict()
    assert {k: back[k] for k in table} == table and list(back)[-1] == "later_key"
