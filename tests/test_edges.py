"""Edges (path patching) against an independent reference: HF torch GPT-2 and a grouped-query Llama with
each receiver's input built from per-sender contributions in hooks (tests/hf_edges.py), in float64 on
both sides so that NIE and pairwise INT agree to 1e-5; and the planted identities an edge must satisfy."""

from __future__ import annotations

import copy

import jax.numpy as jnp
import numpy as np
import pytest

import hf_edges as ref
import intjax
from intjax.errors import InputError
from intjax.estimands.mobius import subset_masks, subsets_up_to
from intjax.patching import build_problem, evaluate, make_prompt_set, parse_components
from intjax.runtime import cast_floats
from test_patching import prompt_rows

# every receiver kind, every sender kind, a same-layer head -> MLP edge, a position, a bare (q, k, v) edge
GPT2_EDGES = ("L0H1>L1H2.q,L0H0>L2H1.k,L1H3>L2H0.v,L0MLP>L2H2,embed>L1H0.v,L1H2>L1MLP,L0H3>L1MLP@4,"
              "L1H1>logits,L2H0>logits")
LLAMA_EDGES = "L0H1>L1H2.q,L0H0>L2H1.k,L1H3>L2H0.v,L0MLP>L1MLP,embed>L1H0.v,L1H2>L1MLP,L1H1>logits"


@pytest.fixture
def gpt2(tiny, tiny_model, x64):
    """(torch model, intjax model), both float64."""
    return copy.deepcopy(tiny[1]).double(), cast_floats(tiny_model[0], jnp.float64)


def int_and_nie(values, subsets, n):
    """NIE [P, n] and pairwise INT [P, pairs] read off vertex values [M, P]."""
    f = {U: values[i] for i, U in enumerate(subsets)}
    nie = np.stack([f[(i,)] - f[()] for i in range(n)], axis=1)
    pairs = [U for U in subsets if len(U) == 2]
    ints = np.stack([f[U] - f[U[:1]] - f[U[1:]] + f[()] for U in pairs], axis=1)
    return nie, ints


def check_against_reference(hf_model, model, rows, spec, semantics, direction):
    components = parse_components(spec, model.config)
    n = len(components)
    subsets = subsets_up_to(n, 2)
    masks = subset_masks(subsets, n)
    problem = build_problem(model, make_prompt_set(rows), components, semantics=semantics, direction=direction)
    expected = ref.reference_values(hf_model, rows, components, masks, direction, semantics)
    got = evaluate(problem, masks)
    nie, ints = int_and_nie(got, subsets, n)
    nie_ref, ints_ref = int_and_nie(expected, subsets, n)
    assert (np.abs(nie_ref).max(axis=0) > 1e-3).all()  # every edge moves the metric
    assert np.abs(ints_ref).max() > 1e-3
    np.testing.assert_allclose(nie, nie_ref, atol=1e-5, rtol=0)
    np.testing.assert_allclose(ints, ints_ref, atol=1e-5, rtol=0)
    return problem, ints_ref


@pytest.mark.parametrize("semantics", ["frozen", "recompute"])
@pytest.mark.parametrize("direction", ["noising", "denoising"])
def test_gpt2_edges_match_torch_per_sender_reference(gpt2, x64, semantics, direction):
    """NIE and pairwise INT of edges into q, k, v, MLP and logits (from heads, an MLP and the embedding)
    equal HF torch's, which builds each receiver's input from per-sender writes in hooks."""
    hf_model, model = gpt2
    check_against_reference(hf_model, model, prompt_rows(model.config.vocab_size), GPT2_EDGES, semantics, direction)


def test_semantics_differ_only_along_chains(gpt2, x64):
    """Under recompute an edge's base is its sender's value in this run: the two semantics agree on single
    edges and differ on a chain (the first edge feeds the second's sender)."""
    hf_model, model = gpt2
    rows = prompt_rows(model.config.vocab_size)
    comps = parse_components("L0H1>L1H2.q,L1H2>L2H0.v,L0H0>logits", model.config)
    masks = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 1]], float)
    values = {s: evaluate(build_problem(model, make_prompt_set(rows), comps, semantics=s), masks)
              for s in ("frozen", "recompute")}
    np.testing.assert_allclose(values["frozen"][[0, 1, 3]], values["recompute"][[0, 1, 3]], atol=1e-9)
    assert np.abs(values["frozen"][2] - values["recompute"][2]).max() > 1e-3


@pytest.mark.parametrize("semantics", ["frozen", "recompute"])
@pytest.mark.parametrize("direction", ["noising", "denoising"])
def test_llama_gqa_edges_match_torch_per_sender_reference(tmp_path, x64, semantics, direction):
    """The same on a grouped-query Llama (2 key/value heads for 4 query heads; .k/.v name key/value heads)."""
    from test_llama import save_hf_llama

    hf_model = save_hf_llama(tmp_path / "llama", "llama").double()
    model = cast_floats(intjax.load_model(tmp_path / "llama", tokenizer=False)[0], jnp.float64)
    assert model.config.n_kv_heads == 2
    rows = prompt_rows(model.config.vocab_size, lengths=(7, 9))
    check_against_reference(hf_model, model, rows, LLAMA_EDGES, semantics, direction)


def test_edge_into_an_unread_receiver_has_no_effect(gpt2, x64):
    """The metric reads the last position only: the last layer's MLP and queries elsewhere are unread."""
    _, model = gpt2
    rows = prompt_rows(model.config.vocab_size)
    comps = parse_components("L0H1>L2MLP@0,L1H0>L2H3.q@2,L0H1>L2MLP", model.config)
    for semantics in ("frozen", "recompute"):
        problem = build_problem(model, make_prompt_set(rows), comps, semantics=semantics)
        values = evaluate(problem, np.eye(3))
        assert np.abs(values[:2] - np.asarray(problem.metric_base)).max() < 1e-10  # f(e_i) = f(0)
        assert np.abs(values[2] - values[0]).max() > 1e-3  # the same edge at every position does act


def all_edges_out_of(sender, cfg):
    """Every edge out of `sender` (a head of layer l): each later head's q, k, v, the MLPs from its own layer
    on, and the logits, as one group."""
    layer = int(sender[1:].split("H")[0])
    out = [f"{sender}>L{l}H{h}" for l in range(layer + 1, cfg.n_layers) for h in range(cfg.n_heads)]
    out += [f"{sender}>L{l}MLP" for l in range(layer, cfg.n_layers)] + [f"{sender}>logits"]
    return "all=" + "+".join(out)


@pytest.mark.parametrize("semantics", ["frozen", "recompute"])
@pytest.mark.parametrize("direction", ["noising", "denoising"])
def test_every_edge_out_of_a_sender_equals_the_sender_node(gpt2, x64, semantics, direction):
    """Patching every edge out of a head together is patching the head (f at 1 and at α = 0.4)."""
    _, model = gpt2
    prompts = make_prompt_set(prompt_rows(model.config.vocab_size))
    for sender in ("L0H1" if direction == "noising" else "L1H3",):
        node = build_problem(model, prompts, parse_components(sender, model.config), semantics=semantics,
                             direction=direction)
        edges = build_problem(model, prompts, parse_components(all_edges_out_of(sender, model.config),
                                                               model.config), semantics=semantics, direction=direction)
        masks = np.array([[1.0], [0.4]])
        np.testing.assert_allclose(evaluate(edges, masks), evaluate(node, masks), atol=1e-10, rtol=0)
        np.testing.assert_allclose(np.asarray(edges(jnp.array([0.4]))), np.asarray(node(jnp.array([0.4]))),
                                   atol=1e-10, rtol=0)


def test_direct_path_to_logits_is_the_pie_with_every_head_and_mlp_analysed(gpt2, x64):
    """L1H2>logits under either semantics equals L1H2's PIE (frozen, every head and MLP analysed)."""
    _, model = gpt2
    prompts = make_prompt_set(prompt_rows(model.config.vocab_size))
    nodes = parse_components("heads,mlps", model.config)
    i = [c.name for c in nodes].index("L1H2")
    pie = build_problem(model, prompts, nodes, semantics="frozen")
    pie_values = evaluate(pie, np.eye(len(nodes))[[i]]) - np.asarray(pie.metric_base)
    for semantics in ("frozen", "recompute"):
        edge = build_problem(model, prompts, parse_components("L1H2>logits", model.config), semantics=semantics)
        got = evaluate(edge, np.ones((1, 1))) - np.asarray(edge.metric_base)
        assert np.abs(got).max() > 1e-3
        np.testing.assert_allclose(got, pie_values, atol=1e-10, rtol=0)


def test_edge_sets_expand_to_every_reading_pair(tiny_model):
    cfg = tiny_model[0].config  # 3 layers, 4 heads
    qs = parse_components("heads>heads.q", cfg)
    assert len(qs) == 4 * 4 + 8 * 4  # layer-1 receivers read 4 senders, layer-2 receivers 8
    assert all(c.sites[0].sender[1] < c.sites[0].layer for c in qs)
    assert len(parse_components("heads>logits,mlps>logits,embed>logits", cfg)) == 12 + 3 + 1
    mlp = parse_components("heads>mlps", cfg)  # a head feeds its own layer's MLP and every later one
    assert len(mlp) == 4 * 3 + 4 * 2 + 4 * 1
    bare = parse_components("L0H1>L2H3", cfg)[0]
    assert [s.kind for s in bare.sites] == ["q_in", "k_in", "v_in"]


@pytest.mark.parametrize("spec, message", [
    ("L2H1>L1H0.q", "does not read"), ("L1MLP>L1MLP", "does not read"), ("L1H1>L1H2.q", "does not read"),
    ("L0H9>logits", "head 9"), ("L0H1>L1H0.x", "cannot parse the receiver"), ("L0X>logits", "cannot parse the sender"),
    ("L0H1>L1H0.q,L0H1>L1H0.q", "listed twice"),
])
def test_bad_edges_are_refused_by_name(tiny_model, spec, message):
    with pytest.raises(InputError, match=message):
        parse_components(spec, tiny_model[0].config)


def test_an_edge_cannot_be_a_witness(tiny_model):
    model, _ = tiny_model
    prompts = make_prompt_set(prompt_rows(model.config.vocab_size))
    with pytest.raises(InputError, match="witness must be a node"):
        build_problem(model, prompts, parse_components("L0H1", model.config),
                      pin=parse_components("L0H2>logits", model.config))


def test_readme_edge_example_runs(tmp_path, monkeypatch):
    """The README's edge block, command by command (the shell's printf written by hand), on ioi-small: the
    edges' NIEs, their pairwise INT and every head's direct path come out, and L0H1>logits under frozen
    semantics equals the direct-path sweep's value of the same edge."""
    import re
    import shlex
    from pathlib import Path

    from intjax.cli import main

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = re.search(r"### Edges \(path patching\).*?```bash\n(.*?)```", text, flags=re.S).group(1)
    monkeypatch.chdir(tmp_path)
    lines = [line for line in block.splitlines() if line and not line.startswith("#")]
    printf, commands = lines[0], lines[1:]
    row = re.search(r"'(\{.*\})'", printf).group(1)
    Path(printf.rsplit("> ", 1)[1]).write_text(row + "\n")
    for command in commands:
        assert main(shlex.split(command)[1:] + ["--quiet"]) == 0
    edges = np.load(tmp_path / "runs/edges/values.npz")
    direct = np.load(tmp_path / "runs/direct/values.npz")
    assert edges["pie_noising"].shape == (1, 4) and edges["int2_noising"].shape == (1, 6)
    assert direct["nie_noising"].shape == (1, 16)
    np.testing.assert_allclose(edges["pie_noising"][0, 3], direct["nie_noising"][0, 1], atol=1e-4)


@pytest.mark.slow  # 63 s on a loaded 2-core CPU: float64 programs compile anew
def test_float64_alpha_on_a_float32_problem(tiny_model, x64):
    """The theorem table differentiates float32 problems at float64 α: an edge's weights take the problem's
    dtype as node masks do (the layer loop's carry keeps one dtype)."""
    model, _ = tiny_model
    problem = build_problem(model, make_prompt_set(prompt_rows(model.config.vocab_size)),
                            parse_components("L0H1>L1H2.q,L1H2>L2MLP", model.config), semantics="recompute")
    alpha = jnp.ones(2, jnp.float64)
    np.testing.assert_allclose(np.asarray(problem(alpha)), evaluate(problem, np.ones((1, 2)))[0], atol=1e-5)


def test_shared_prefix_and_role_positions(tiny_model):
    """With clean and corrupted sharing their first 4 tokens the evaluator computes only the positions after
    them (keys and values of the prefix from the base run, corrections carried for the rest) and gives what
    recomputing every position gives, with an edge at a role position (END, each prompt's last token)."""
    semantics = "recompute"
    from test_llama import shared_prefix_rows

    model, _ = tiny_model
    prompts = make_prompt_set(shared_prefix_rows(model.config.vocab_size, (9, 11, 10), prefix=4))
    comps = parse_components("L0H1>L1H2.k,L0H3>L2H1.v,L1H2>L2H0.q@END,L1H0>L1MLP,L0MLP>logits", model.config)
    masks = np.array([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 1, 1, 0]], float)
    shared = build_problem(model, prompts, comps, semantics=semantics)
    whole = build_problem(model, prompts, comps, semantics=semantics, shared_prefix=False)
    assert shared.shared_prefix == 4 and whole.shared_prefix == 0
    got = evaluate(shared, masks)
    np.testing.assert_allclose(got, evaluate(whole, masks), atol=2e-5, rtol=1e-5)
    assert (np.abs(got - np.asarray(shared.metric_base)).max(axis=1) > 1e-4).all()


def test_edge_sets_of_one_padded_size_share_their_programs(tiny_model):
    """Building and sweeping a second edge set of the same sender and receiver kinds and padded sizes (other
    senders, receivers, layers and positions) compiles nothing new: the edges are tables, not shapes."""
    from intjax.compile_stats import count_compiles

    model, _ = tiny_model
    prompts = make_prompt_set(prompt_rows(model.config.vocab_size, (7, 9, 8, 8), seed=5))
    counts = []
    for spec in ("L0H1>L1H2.q,L0H0>L2MLP,L1H3>logits", "L1H0>L2H3.q,L0H2>L1MLP@3,L0H3>logits"):
        with count_compiles() as compiled:
            problem = build_problem(model, prompts, parse_components(spec, model.config), semantics="recompute")
            evaluate(problem, subset_masks(subsets_up_to(3, 2), 3))
        counts.append(compiled.programs)
    assert 1 <= counts[0] <= 4 and counts[1] == 0, counts


def test_patch_command_prints_the_edge_count_and_caps_it(tiny, tiny_model, tmp_path, monkeypatch, capsys):
    """`intjax patch --components heads>heads.q` says how many edges the set expands to, and refuses more than
    MAX_EDGES_WITHOUT_FORCE (lowered here to 40) before any patching, naming --force."""
    import json

    from intjax import cli

    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in prompt_rows(tiny_model[0].config.vocab_size)))
    monkeypatch.setattr(cli, "MAX_EDGES_WITHOUT_FORCE", 40)
    code = cli.main(["patch", "--model", str(tiny[0]), "--data", str(data), "--components", "heads>heads.q",
                     "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "48 components, 48 edges" in err and "48 edges" in err and "--force" in err
    assert not (tmp_path / "out" / "values.npz").exists()


@pytest.mark.parametrize("source", ["zero", "mean"])
def test_zero_and_mean_sources_on_edges(tiny_model, source):
    """With the zero or the mean source the senders' source writes come from those values: L1H2>logits
    (recompute) is still L1H2's PIE with every head and MLP analysed (float32)."""
    model, _ = tiny_model
    prompts = make_prompt_set(prompt_rows(model.config.vocab_size))
    nodes = parse_components("heads,mlps", model.config)
    pie = build_problem(model, prompts, nodes, semantics="frozen", source=source)
    expected = evaluate(pie, np.eye(len(nodes))[[[c.name for c in nodes].index("L1H2")]]) - np.asarray(pie.metric_base)
    edge = build_problem(model, prompts, parse_components("L1H2>logits", model.config), source=source)
    got = evaluate(edge, np.ones((1, 1))) - np.asarray(edge.metric_base)
    assert np.abs(expected).max() > 1e-2
    np.testing.assert_allclose(got, expected, atol=2e-6, rtol=0)


def test_a_node_and_its_own_out_edges_under_recompute_match_torch(gpt2, x64, direction="denoising"):
    """A head and two of its own out-edges in one problem (recompute): the edges' base is the head's write in
    this run, so with the head patched at α the edges add (1 − α)·(s − b). NIE, pairwise INT and an interior
    point (head at 0.5, edge at 1) equal the torch reference that patches the head's z in a hook."""
    hf_model, model = gpt2
    rows = prompt_rows(model.config.vocab_size)
    spec = "L0H1,L0H1>L1H2.q,L0H1>logits"
    problem, ints_ref = check_against_reference(hf_model, model, rows, spec, "recompute", direction)
    assert np.abs(ints_ref[:, :2]).min() > 1e-4  # the node and each of its edges interact
    half = np.array([[0.5, 1.0, 0.0], [0.5, 0.0, 1.0]])
    expected = ref.reference_values(hf_model, rows, problem.components, half, direction, "recompute")
    np.testing.assert_allclose(evaluate(problem, half), expected, atol=1e-5, rtol=0)
