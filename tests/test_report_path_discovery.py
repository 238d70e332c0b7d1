"""The path-patching section's rules on planted cases: a hand-made table of paths with CIs (from the planted
discovery of tests/test_path_discovery.py) whose right sentences are known."""

from __future__ import annotations

import dataclasses

import numpy as np

from intjax.ioi.path_discovery import PathPair, PathRow
from intjax.report.path_discovery import (CARRIES, OPPOSES, agreement, build_path_graph, compared_name, pair_reading,
                                          path_markdown, path_summary, replication)
from test_path_discovery import discover

ROLE_CIRCUIT = {"name_mover": ["L3H0"], "s_inhibition": ["L2H2"], "induction": ["L1H0"]}


def row(chosen, held_out):
    return PathRow("direct", "L3H0", ("logits",), chosen, held_out, True, "name_mover")


def test_rules_by_hand():
    assert agreement("name_mover", "name_mover") == "same class"
    assert agreement("s_inhibition", "induction") == "different classes"
    assert agreement("", "induction") == "attention roles only" and agreement("induction", "") == "path patching only"
    assert replication(row((-1, -1.2, -0.8), (-0.9, -1.1, -0.7))) == "replicates"
    assert replication(row((-1, -1.2, -0.8), (-0.1, -0.3, 0.1))) == "not significant held out"
    assert replication(row((-1, -1.2, -0.8), (0.5, 0.3, 0.7))) == "reverses"
    assert replication(row((-1, -1.2, -0.8), (0.5, np.nan, np.nan))) == "no CI (too few prompts)"
    pair = PathPair("direct", "a", "b", 0.2, 0.1, 0.3)
    assert pair_reading(pair, {"a": -0.5, "b": -0.3}).startswith("redundant")
    assert pair_reading(pair, {"a": 0.5, "b": 0.3}).startswith("synergistic")
    assert pair_reading(dataclasses.replace(pair, low=-0.1), {"a": 0.5, "b": 0.3}).startswith("additive")


def test_section_states_what_the_planted_discovery_found():
    found = discover()
    text = path_markdown(found, ROLE_CIRCUIT, "path_graph.png")
    assert "| name_mover | L3H0 |" in text and "| previous_token | L0H2 |" in text
    assert "Its classes come in Wang et al.'s layer order" in text
    assert "These classes are the circuit of every study in this report" in text
    assert "### Against the circuit of --circuit (attention roles)" in text
    # L3H0 and L1H0 agree; L2H1 (path: s_inhibition) and L2H2 (roles only) and the rest do not
    assert "| L3H0 | name_mover | name_mover | same class |" in text
    assert "| L2H2 | — | s_inhibition | attention roles only |" in text
    assert "Same class in both: 2 of the 7 heads that either one names." in text
    assert "7 of 7 paths chosen on the selection prompts replicate" in text  # 6 classed + L2H3's opposing one
    assert "| L2H3 |" in text and "— (opposes)" in text
    assert "L1H0 & L1H3" in text and "redundant (together less than the sum)" in text  # planted INT +0.2 against −0.7
    assert "Stages that found nothing" not in text
    assert path_summary(found).startswith("- Path patching (Wang et al.'s procedure, chosen on 20 prompts): "
                                          "name_mover L3H0; negative_name_mover L3H1;")


def test_section_says_when_stages_are_missing():
    found = dataclasses.replace(discover(), classes={"name_mover": ["L0H1"]}, pairs=(),
                                notes=("a: no head", "b: none", "c: none"))
    text = path_markdown(found, {}, None)
    assert "Its classes do not make Wang et al.'s staged circuit: no previous_token / duplicate_token / " \
           "induction head; no s_inhibition head." in text
    assert "Stages that found nothing:\n\n- a: no head" in text and "path_graph" not in text
    assert path_summary(found).endswith("name_mover L0H1; 3 of 4 stages found nothing.")
    empty = dataclasses.replace(found, classes={}, rows=())
    assert "No path passes the rule: path patching finds no class on this model, so the studies use the circuit " \
           "of --circuit (attention roles)." in path_markdown(empty, {}, None)
    assert "These classes are the circuit" not in path_markdown(empty, {}, None)


def test_the_compared_circuit_is_named_by_its_source():
    assert compared_name("discovered on this model: heads whose ...") == "attention roles"
    assert compared_name("no attention-role circuit (every one of the 144 heads ...)") == "attention roles"
    assert compared_name("Wang, Variengien, Conmy ...") == "Wang et al.'s circuit"
    assert compared_name("file c.json") == "file c.json"


def test_graph_draws_one_line_per_edge_coloured_by_sign():
    found = discover()
    fig = build_path_graph(found, 4, 4)
    ax = fig.axes[0]
    lines = [l for l in ax.get_lines() if len(l.get_xdata()) == 2]
    edges = sum(len(r.receivers) for r in found.rows if r.significant)
    assert len(lines) == edges == 7
    colours = sorted(l.get_color() for l in lines)
    assert colours.count(OPPOSES) == 2 and colours.count(CARRIES) == 5  # L3H1 (negative NM) and L2H3 oppose
    widest = max(lines, key=lambda l: l.get_linewidth())
    assert list(widest.get_xdata()) == [0, 1.5] and list(widest.get_ydata()) == [3, 4]  # L3H0 -> logits
