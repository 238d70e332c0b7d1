"""Wang et al.'s stage order of a circuit (ioi.circuit.stage_order) on circuits whose answer is known."""

from __future__ import annotations

import pytest

from intjax.errors import InputError
from intjax.ioi.circuit import stage_order
from intjax.ioi.task import GPT2_SMALL_IOI_CIRCUIT


def test_gpt2_small_circuit_is_ordered():
    """Wang et al.'s own circuit: induction/duplicate/previous-token reach layer 6 (L6H9),
    S-inhibition spans layers 7-8, (backup, negative) name movers start at layer 9."""
    assert stage_order(GPT2_SMALL_IOI_CIRCUIT) == (True, [])


def test_planted_orders():
    good = {"previous_token": ["L0H1"], "duplicate_token": ["L1H0"], "induction": ["L1H3"],
            "s_inhibition": ["L2H0", "L3H1"], "name_mover": ["L4H0"], "other": ["L5H0", "L0H0"]}
    assert stage_order(good) == (True, [])
    late_dup = dict(good, duplicate_token=["L2H2"])  # shares layer 2 with S-inhibition
    ordered, problems = stage_order(late_dup)
    assert not ordered and problems == ["previous_token / duplicate_token / induction reaches layer 2, "
                                        "not before s_inhibition from layer 2"]
    early_mover = dict(good, negative_name_mover=["L3H3"])
    assert not stage_order(early_mover)[0]
    missing = {k: v for k, v in good.items() if k != "s_inhibition"}
    ordered, problems = stage_order(missing)
    assert not ordered and problems == ["no s_inhibition head"]


def test_positional_and_mlp_names_are_read_by_the_component_grammar():
    """Circuit files may name heads at a role (`L9H6@END`, as Wang et al.'s positional classes)."""
    positional = {"duplicate_token": ["L0H1@S2"], "s_inhibition": ["L2H0@END"], "name_mover": ["L3H1@END"]}
    assert stage_order(positional) == (True, [])
    with pytest.raises(InputError, match="cannot parse component 'H9L6'"):
        stage_order({"name_mover": ["H9L6"]})
