"""Results handed to users say what they are: search rows name their components, CIs name their ends."""

from __future__ import annotations

import numpy as np
import pytest

from intjax.errors import InputError
from intjax.estimands import FunctionGame
from intjax.ioi.completeness import completeness
from intjax.studies.search import greedy_vs_best
from intjax.bootstrap import mean_ci
from test_completeness import BACKUP, backup_game, planted
from test_studies_synthetic import planted_search_fn

NAMES = [f"L{i // 4}H{i % 4}" for i in range(8)]


class NamedGame(FunctionGame):
    """A FunctionGame with component names, as a PatchProblem has."""

    names = NAMES


def test_search_rows_name_their_sets():
    """The planted best pair is components 0 and 1 (synergy 5); the top pair by |NIE| is 4 and 5."""
    rows = greedy_vs_best(NamedGame(planted_search_fn, 8), k_max=2)
    assert rows[1].best == (0, 1) and rows[1].best_names == ("L0H0", "L0H1")
    assert rows[1].top_names == ("L1H0", "L1H1")
    given = greedy_vs_best(FunctionGame(planted_search_fn, 8), k_max=2, names=list("abcdefgh"))
    assert given[1].best_names == ("a", "b")
    assert greedy_vs_best(FunctionGame(planted_search_fn, 8), k_max=2)[1].best_names == ("0", "1")
    with pytest.raises(InputError, match="one name per component"):
        greedy_vs_best(FunctionGame(planted_search_fn, 8), k_max=2, names=["a"])


def test_completeness_value_is_a_named_mean_and_ci():
    c = completeness(planted(backup_game, *BACKUP, noise=0.3, seed=0), n_boot=400)
    value = c.value(c.worst)
    column = c.incompleteness[:, c.sets.index(tuple(sorted(c.worst)))]
    assert value.mean == pytest.approx(column.mean()) and value.low < value.mean < value.high
    assert tuple(value) == (value.mean, value.low, value.high)  # still unpacks as (mean, low, high)


def test_mean_ci_names_its_ends():
    x = np.random.default_rng(0).normal(2.0, 1.0, 200)
    ci = mean_ci(x)
    assert ci.mean == pytest.approx(x.mean()) and ci.low < 2.0 < ci.high
    assert ci._fields == ("mean", "low", "high")
