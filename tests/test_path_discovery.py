"""Path-patching discovery (intjax.ioi.path_discovery) on planted problems: a patch function whose path
effects are set by hand, so the right classes are known; and on a tiny model, against brute force."""

from __future__ import annotations

import re

import numpy as np
import pytest

from intjax.ioi.path_discovery import (PathRow, class_for, discover_paths, edge_patch_fn, mean_cis, significant,
                                       stage_paths, STAGES)

HEADS = [f"L{l}H{h}" for l in range(4) for h in range(4)]
P = 40
TOTAL = -2.0
# (sender, receiver input) -> planted mean effect (noising, the logit difference); every other path: 0 ± noise
PLANTED = {
    ("L3H0", "logits"): -1.0,  # share +0.5: name mover
    ("L3H1", "logits"): +0.3,  # share −0.15: negative name mover
    ("L3H2", "logits"): -0.05,  # share +0.025: CI excludes 0 but below 5% of |TE|: nothing
    ("L2H1", "q"): -0.6,  # into L3H0's query: S-inhibition
    ("L2H3", "q"): +0.4,  # against the effect into a query: listed, no class
    ("L1H0", "v"): -0.4,  # into L2H1's value, attends S1+1 from S2: induction
    ("L1H3", "v"): -0.3,  # attends S1 from S2: duplicate token
    ("L0H2", "k"): -0.3,  # into L1H0's key: previous token
}
INTERACTION = {frozenset({"L1H0", "L1H3"}): 0.2}  # planted INT of two paths into the same value input
ROLES_AT_S2 = {h: "duplicate_token" if h == "L1H3" else "induction" for h in HEADS}


def planted_patch(calls: list | None = None, noise: float = 0.02, seed: int = 1, planted: dict = PLANTED):
    """A PatchFn: each component (one edge `S>R` or a group of one sender's edges) moves every prompt by its
    planted effect plus fixed zero-mean noise; pairs add their planted interaction."""
    rng = np.random.default_rng(seed)
    wobble = {}

    def effect_of(spec: str) -> tuple[str, np.ndarray]:
        edges = spec.split("=", 1)[-1].split("+")
        sender = edges[0].split(">")[0]
        inputs = {("logits" if e.endswith("logits") else re.search(r"\.([qkv])@", e).group(1)) for e in edges}
        assert len(inputs) == 1
        key = (sender, inputs.pop())
        if key not in wobble:
            w = rng.normal(0, noise, P)
            wobble[key] = w - w.mean()
        return sender, planted.get(key, 0.0) + wobble[key]

    def patch(specs, masks):
        if calls is not None:
            calls.append(list(specs))
        parts = [effect_of(s) for s in specs]
        out = np.zeros((len(masks), P))
        for m, mask in enumerate(np.asarray(masks)):
            on = [i for i in range(len(specs)) if mask[i]]
            out[m] = sum((parts[i][1] for i in on), np.zeros(P))
            if len(on) == 2:
                out[m] += INTERACTION.get(frozenset(parts[i][0] for i in on), 0.0)
        return out

    return patch


def discover(calls=None, planted: dict = PLANTED, **kw):
    select, held_out = np.arange(0, P, 2), np.arange(1, P, 2)
    return discover_paths(planted_patch(calls, planted=planted), HEADS, np.full(P, TOTAL), select, held_out, ROLES_AT_S2, **kw)


def test_planted_paths_give_exactly_the_planted_classes():
    found = discover()
    assert found.classes == {"name_mover": ["L3H0"], "negative_name_mover": ["L3H1"], "s_inhibition": ["L2H1"],
                             "induction": ["L1H0"], "duplicate_token": ["L1H3"], "previous_token": ["L0H2"]}
    assert found.notes == () and found.split == (20, 20) and found.total == (TOTAL, TOTAL)
    opposing = next(r for r in found.rows if r.sender == "L2H3" and r.stage == "name_mover.q")
    assert opposing.significant and opposing.cls == ""  # significant, against the effect: listed, no class
    small = next(r for r in found.rows if r.sender == "L3H2" and r.stage == "direct")
    assert small.chosen[1] < 0 > small.chosen[2] and not small.significant  # CI below 0, |share| below 5%
    induction = next(r for r in found.rows if r.sender == "L1H0" and r.stage == "s_inhibition.v")
    assert induction.held_out[0] == pytest.approx(-0.4, abs=0.02)
    assert induction.held_out[1] < -0.4 < induction.held_out[2]
    pair = [p for p in found.pairs if {p.a, p.b} == {"L1H0", "L1H3"}]
    assert len(pair) == 1 and pair[0].mean == pytest.approx(0.2) and pair[0].low <= 0.2 <= pair[0].high


def test_each_stage_patches_only_earlier_senders_into_the_found_receivers():
    calls = []
    discover(calls)
    direct, _, queries, values, _, keys = calls  # the stages with two classed paths add a call for their pairs
    assert direct == [f"{h}>logits" for h in HEADS]
    assert queries == [f"{h}>L3H0.q@END" for h in HEADS[:12]]  # layers 0-2; one receiver: the bare edge
    assert values == [f"{h}>L2H1.v@S2" for h in HEADS[:8]]  # layers 0-1
    assert keys == [f"L0H{h}>L1H0.k@S1next" for h in range(4)]


def test_a_model_without_stages_is_reported_not_forced():
    """One layer-0 head does the work (as on ioi-small): it is a name mover, and no later stage can run."""
    found = discover(planted={("L0H1", "logits"): -1.5})
    assert found.classes == {"name_mover": ["L0H1"]}
    assert len(found.notes) == 3 and "no unclassed head sits in a layer before L0H1" in found.notes[0]
    assert "no s_inhibition head" in found.notes[1]


def test_a_stage_whose_paths_all_oppose_the_effect_says_so():
    found = discover(planted={("L3H0", "logits"): -1.0, ("L2H1", "q"): +0.6})
    assert found.classes == {"name_mover": ["L3H0"]}
    assert found.notes[0] == ("into the name movers' queries (END): 1 of 12 paths pass the rule, each against the "
                              "total effect, which gives no class here")


def test_a_zero_total_effect_is_refused():
    from intjax.errors import InputError

    with pytest.raises(InputError, match="total effect is 0"):
        discover_paths(planted_patch(), HEADS, np.zeros(P), np.arange(0, P, 2), np.arange(1, P, 2), ROLES_AT_S2)


def test_the_rule_and_the_classes_by_hand():
    stats = np.array([[-0.5, -0.6, -0.4], [-0.5, -0.6, 0.1], [0.04, 0.03, 0.05], [0.3, 0.2, 0.4]])
    assert significant(stats, -2.0, 0.05).tolist() == [True, False, False, True]
    direct, _, values, _ = STAGES
    assert class_for(direct, +1, "") == "name_mover" and class_for(direct, -1, "") == "negative_name_mover"
    assert class_for(values, +1, "duplicate_token") == "duplicate_token" and class_for(values, -1, "x") == ""
    x = np.random.default_rng(0).normal(1.0, 0.1, (50, 2))
    m = mean_cis(x)
    assert np.allclose(m[:, 0], x.mean(0)) and (m[:, 1] < m[:, 0]).all() and (m[:, 0] < m[:, 2]).all()
    assert stage_paths(STAGES[2], ["L2H1", "L3H2"], ["L2H0", "L1H1"], kv_of=lambda h: h // 2) == [
        ("L2H0", ("L3H1.v@S2",)), ("L1H1", ("L2H0.v@S2", "L3H1.v@S2"))]
    row = PathRow("name_mover.q", "L1H1", ("L3H0.q@END", "L3H2.q@END"), (0,) * 3, (0,) * 3, False)
    assert row.spec() == "from_L1H1_name_mover.q=L1H1>L3H0.q@END+L1H1>L3H2.q@END"


def test_edge_patch_fn_matches_the_torch_path_patching_reference(tiny, tiny_model):
    """On a tiny model, the PatchFn's rows (one edge; a group of one sender's edges into two queries; both)
    equal f − f(0) from HF torch with each receiver's input built from per-sender writes (tests/hf_edges.py,
    frozen semantics, noising)."""
    import hf_edges
    from intjax.patching import make_prompt_set, parse_components
    from test_patching import prompt_rows

    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size)
    specs = ["L0H1>L2H0.q", "from_L0H2_x=L0H2>L1H0.q+L0H2>L2H1.q"]
    masks = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float)
    got = edge_patch_fn(model, make_prompt_set(rows))(specs, masks)
    expected = hf_edges.reference_values(tiny[1], rows, parse_components(specs, model.config), masks, "noising",
                                         "frozen")
    np.testing.assert_allclose(got, expected - expected[0], atol=2e-4)
    assert (np.abs(got[1:]).max(axis=1) > 1e-3).all() and np.abs(got[0]).max() < 1e-5


def test_the_command_line_takes_discover_path_and_refuses_other_values(tmp_path, capsys):
    """`--discover path` reaches IOIStudyOptions (roles stays the default); any other value is one line on
    stderr, exit 2; the library refuses it too, naming the field."""
    from intjax.cli import build_parser, ioi_options, main
    from intjax.errors import InputError
    from intjax.options import IOIStudyOptions

    parse = build_parser().parse_args
    assert ioi_options(parse(["ioi", "--model", "m", "--out", "o"])).studies.discover == "roles"
    assert ioi_options(parse(["ioi", "--model", "m", "--out", "o", "--discover", "path"])).studies.discover == "path"
    with pytest.raises(SystemExit) as stop:
        main(["ioi", "--model", "ioi-small", "--out", str(tmp_path / "o"), "--discover", "edges"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "--discover" in err and "'path'" in err
    with pytest.raises(InputError, match=r"IOIStudyOptions.discover='edges': give one of \['roles', 'path'\]"):
        IOIStudyOptions(discover="edges")


@pytest.mark.slow  # ~1 min on the 2-core CPU: every stage compiles its own programs
def test_on_ioi_small_the_direct_stage_is_each_heads_pie_and_the_classes_follow_the_rule():
    """run_path_discovery on the shipped model: each direct path's selection mean equals the head's PIE with
    every head and MLP analysed (a different problem), and a head is classed exactly when its path passes
    the rule as recomputed here from those PIEs (intjax.bootstrap.mean_ci, one column at a time)."""
    import intjax
    from intjax.bootstrap import mean_ci
    from intjax.ioi.path_discovery import run_path_discovery
    from intjax.ioi.task import ioi_prompts
    from intjax.patching import build_problem, evaluate, parse_components

    model, tokenizer = intjax.load_model("ioi-small")
    data = ioi_prompts(tokenizer, 12, seed=0)
    select, held_out = np.arange(0, 12, 2), np.arange(1, 12, 2)
    found = run_path_discovery(model, data, select, held_out)
    nodes = parse_components("heads,mlps", model.config)
    pie = build_problem(model, data.prompts, nodes, semantics="frozen")
    effects = (evaluate(pie, np.eye(16, len(nodes))) - np.asarray(pie.metric_base)).T  # [P, 16]: the heads
    te = float((np.asarray(pie.metric_corrupted) - np.asarray(pie.metric_clean))[select].mean())
    direct = [r for r in found.rows if r.stage == "direct"]
    assert [r.sender for r in direct] == [c.name for c in nodes[:16]]
    np.testing.assert_allclose([r.chosen[0] for r in direct], effects[select].mean(0), atol=1e-4)
    np.testing.assert_allclose([r.held_out[0] for r in direct], effects[held_out].mean(0), atol=1e-4)
    for r, column in zip(direct, effects.T):
        _, low, high = mean_ci(column[select])
        passes = (low > 0 or high < 0) and abs(column[select].mean()) >= 0.05 * abs(te)
        assert r.significant == passes
        assert r.cls == ("" if not passes else "name_mover" if column[select].mean() / te > 0 else
                         "negative_name_mover")
    assert found.total[0] == pytest.approx(te, abs=1e-4)


@pytest.mark.slow  # 3-6 min on the 2-core CPU (idle to loaded): the whole smoke analysis
def test_ioi_smoke_with_discover_path_reports_the_discovery(tmp_path):
    """`intjax ioi --smoke --discover path` on ioi-small: the report has the section, its summary line and
    figure; path patching's classes, chosen on the selection half, are the studies' circuit (estimated on the
    held-out half), compared with the attention roles'; summary.json and values.npz hold them; a re-render from
    the saved files gives the same section."""
    import json

    from intjax.cli import main
    from intjax.ioi.path_circuit import PATH_SOURCE
    from intjax.ioi.saved import load_analysis
    from intjax.report.path_discovery import path_markdown
    from intjax.report.rendering import render
    from intjax.studies.heldout_search import split_indices

    out = tmp_path / "run"
    assert main(["ioi", "--model", "ioi-small", "--smoke", "--discover", "path", "--out", str(out), "--quiet"]) == 0
    text = (out / "report.md").read_text()
    studies = load_analysis(out).studies
    path = studies.path
    assert path is not None and path.split == (4, 4) and (out / "path_graph.png").is_file()
    assert path.select.tolist() == split_indices(8, 0.5, 0)[0].tolist() and studies.split == (4, 4)
    assert path.classes and studies.circuit == path.classes and studies.by_path()
    assert studies.circuit_source.startswith(PATH_SOURCE) and f"Source: {studies.circuit_source}." in text
    assert studies.compared_source.startswith("discovered on this model") and studies.compared
    remedy = studies.remedy("noising", "class")
    assert list(remedy.names) == [*path.classes, "rest"] and remedy.nie.shape[0] == 4  # held-out prompts
    assert path_markdown(path, studies.compared, "path_graph.png", "attention roles") in text
    assert "- Path patching (Wang et al.'s procedure, chosen on 4 prompts)" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["path_discovery"]["classes"] == path.classes == summary["circuit"]
    assert summary["path_discovery"]["compared_circuit"] == studies.compared
    with np.load(out / "values.npz") as values:
        direct = values["path_direct"][np.setdiff1d(np.arange(8), path.select)]
    first = next(r for r in path.rows if r.stage == "direct")
    assert direct[:, 0].mean() == pytest.approx(first.held_out[0], abs=1e-9)
    assert render(load_analysis(out), tmp_path / "again").read_text() == text
