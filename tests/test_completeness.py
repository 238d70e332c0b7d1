"""Completeness and minimality (Wang et al. 2022) on planted games with known truth, the exact
decomposition against brute-force Möbius sums, and F(C∖K), F(M∖K) against HuggingFace torch runs."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from intjax.errors import InputError
from intjax.estimands.mobius import fast_mobius
from intjax.ioi.completeness import (
    CircuitGame, abs_bounds, circuit_game, completeness, greedy_gaps, minimality, outside_split)
from intjax.bootstrap import abs_mean_ci, max_abs_mean_ci, simultaneous_bound
from intjax.bootstrap import counts as bootstrap_counts

P = 12
SCALE = 1 + 0.1 * np.random.default_rng(0).normal(size=P)  # per-prompt spread, so every CI has width


class SetGame:
    """A planted game: `fn(ablated: frozenset of unit names) -> float`, scaled per prompt; mask 1 = ablated."""

    def __init__(self, fn, names, noise: float = 0.0, seed: int = 1):
        self.fn, self.names = fn, list(names)
        self.noise = noise * np.random.default_rng(seed).normal(size=(1 << len(names), P))
        self.calls = 0

    @property
    def n_components(self) -> int:
        return len(self.names)

    def values(self, masks):
        self.calls += 1
        out = []
        for m in masks:
            b = int(sum(1 << i for i in np.flatnonzero(m)))
            out.append(self.fn(frozenset(self.names[i] for i in np.flatnonzero(m))) * SCALE + self.noise[b])
        return np.array(out)

    def __call__(self, alpha):
        raise NotImplementedError


def planted(fn, circuit, outside, **kw) -> CircuitGame:
    return CircuitGame(SetGame(fn, [*circuit, *outside], **kw), circuit, outside)


def kept(x, ablated):
    return float(x not in ablated)


def backup_game(A):
    """N1, N2 and the backup B (outside) are redundant (any one restores the answer); D's ablation costs ε only
    while the outside head E is intact; X matters only inside."""
    return (max(kept("N1", A), kept("N2", A), kept("B", A)) + 0.05 * (("D" in A) and ("E" not in A))
            + 0.2 * kept("X", A))


BACKUP = (["N1", "N2", "D", "X"], ["B", "E"])


# ---------------------------------------------------------------------------
# planted truth


def test_a_complete_circuit_has_zero_incompleteness_for_every_K():
    def fn(A):  # nothing outside the circuit matters
        return kept("a", A) * kept("b", A) + 0.5 * kept("c", A)
    c = completeness(planted(fn, ["a", "b", "c"], ["o1", "o2"]))
    assert c.exhaustive and len(c.sets) == 8  # every K, ∅ included
    np.testing.assert_allclose(c.incompleteness, 0, atol=1e-12)
    np.testing.assert_allclose(c.circuit_side, c.model_side, atol=1e-12)
    assert all(r.worst_value[0] == pytest.approx(0, abs=1e-12) and not r.greedy_short for r in c.sizes)
    assert greedy_gaps(c) == []
    for s in c.splits:
        np.testing.assert_allclose(s.outside, 0, atol=1e-12)


def test_an_outside_head_acting_alone_gives_a_constant_gap_that_no_K_changes():
    def fn(A):  # o1 adds to the metric but interacts with nothing in the circuit
        return kept("a", A) * kept("b", A) + 0.3 * kept("o1", A)
    c = completeness(planted(fn, ["a", "b"], ["o1", "o2"]))
    np.testing.assert_allclose(c.incompleteness, -0.3 * SCALE[:, None] * np.ones((1, 4)), atol=1e-12)
    np.testing.assert_allclose(c.lattice_terms[:, 1:], 0, atol=1e-12)  # d(K) − d(∅) = 0: no K interacts with O
    s = c.splits[0]
    np.testing.assert_allclose(s.empty, -0.3 * SCALE, atol=1e-12)
    np.testing.assert_allclose(s.outside, 0, atol=1e-12)
    np.testing.assert_allclose(s.joint, 0, atol=1e-12)


def test_a_missing_backup_is_found_by_exhaustive_search_and_missed_by_greedy():
    cg = planted(backup_game, *BACKUP)
    c = completeness(cg)
    names = lambda K: {c.circuit_names[i] for i in K}  # noqa: E731
    # greedy: D first (the only single K with |d| > 0), so at k = 2 it holds D and misses {N1, N2}
    assert names(c.greedy[0]) == {"D"} and "D" in names(c.greedy[1])
    row = c.sizes[1]
    assert names(row.worst) == {"N1", "N2"} and row.worst_value[0] == pytest.approx(-SCALE.mean())
    assert row.greedy_value[0] == pytest.approx(-0.05 * SCALE.mean()) and row.greedy_short
    assert row.worst_value[1] < row.worst_value[0] < row.worst_value[2] < 0
    assert {"N1", "N2"} <= names(c.worst)  # the worst K overall holds the backup's partners
    gaps = greedy_gaps(c)
    assert [g.k for g in gaps] == [2] and gaps[0].significant
    g = gaps[0]  # carried by the interaction D_{N1,N2} = −1, not by single heads (both 0)
    assert g.cause == "interaction" and g.single == pytest.approx(0, abs=1e-12)
    assert g.joint == pytest.approx(-SCALE.mean()) and names(g.top_terms[0][0]) == {"N1", "N2"}
    # the outside split: B alone carries it (Δ_B = −1), E carries D's ε, nothing is joint
    s = c.splits[0]
    assert s.outside_names[s.ranked()[0]] == "B"
    np.testing.assert_allclose(s.outside[:, 0], -SCALE, atol=1e-12)
    np.testing.assert_allclose(s.outside[:, 1], -0.05 * SCALE * ("D" in names(c.worst)), atol=1e-12)
    np.testing.assert_allclose(s.joint, 0, atol=1e-12)
    # where greedy falls furthest behind (k = 2), the worst K and greedy's K are split too: B carries the first,
    # only E (through D) the second
    assert [s.K for s in c.splits] == [c.worst, row.worst, row.greedy]
    np.testing.assert_allclose(c.splits[1].outside, np.stack([-SCALE, 0 * SCALE], 1), atol=1e-12)
    np.testing.assert_allclose(c.splits[2].outside, np.stack([0 * SCALE, -0.05 * SCALE], 1), atol=1e-12)


def additive(weights: dict, gap: float):
    """d(K) = gap + Σ_{v∈K} w_v exactly: each circuit unit's ablation interacts with the outside unit o2 alone."""
    def fn(A):
        return 1.0 + gap * ("o1" in A) + sum(w * (v in A) * ("o2" in A) for v, w in weights.items())
    return planted(fn, list(weights), ["o1", "o2"])


def test_greedy_gap_causes_offset_and_path():
    """No interactions among circuit units in either game, so neither gap is 'interaction'."""
    # offset: d(∅) = +0.5, a and b pull d down (alone to −0.1), c up; greedy takes c, the worst pair is a+b (−0.7)
    c = completeness(additive({"a": -0.6, "b": -0.6, "c": 0.3}, 0.5))
    (g,) = greedy_gaps(c)
    assert g.k == 2 and [c.circuit_names[i] for i in g.worst] == ["a", "b"] and g.greedy == (0, 2)
    assert g.empty == pytest.approx(0.5 * SCALE.mean()) and g.joint == pytest.approx(0, abs=1e-12)
    assert g.single == pytest.approx(-1.2 * SCALE.mean()) and g.cause == "offset"
    # path: d(∅) = 0; greedy takes a (+1.0) first, then any pair with a nearly cancels; the worst pair is b+c
    c = completeness(additive({"a": 1.0, "b": -0.9, "c": -0.9}, 0.0))
    (g,) = greedy_gaps(c)
    assert g.k == 2 and g.worst == (1, 2) and g.cause == "path"
    assert g.worst_value[0] == pytest.approx(-1.8 * SCALE.mean())


def test_greedy_and_exhaustive_against_brute_force_loops():
    """On a random game: the worst K of each size by itertools, greedy by an explicit loop."""
    rng = np.random.default_rng(3)
    table = rng.normal(size=1 << 6)
    names = ["c0", "c1", "c2", "c3", "o0", "o1"]

    def fn(A):
        return table[sum(1 << names.index(x) for x in A)]
    cg = planted(fn, names[:4], names[4:])
    c = completeness(cg, n_random=3)

    def d(K):
        C, O = set(K), {"o0", "o1"}
        return (fn(frozenset(C | O)) - fn(frozenset(C))) * SCALE.mean()
    for row in c.sizes:
        worst = max(itertools.combinations(names[:4], row.k), key=lambda K: abs(d(K)))
        assert [names[i] for i in row.worst] == list(worst)
        assert row.worst_value[0] == pytest.approx(d(worst))
        assert row.n_random == min(3, len(list(itertools.combinations(range(4), row.k))))
    K = []
    for step in range(4):
        K = sorted(K + [max((x for x in names[:4] if x not in K), key=lambda x: abs(d(K + [x])))])
        assert [names[i] for i in c.greedy[step]] == K
    # every K evaluated is in the table; each vertex swept once
    assert cg.n_vertices == len(cg._memo) <= 1 << 6


def test_minimality_flags_a_redundant_head_and_finds_the_partner_of_an_or_pair():
    def fn(A):  # R does nothing; P1 and P2 are redundant with each other; a·b is an AND
        return (kept("a", A) * kept("b", A) + max(kept("P1", A), kept("P2", A)) + 0.3 * kept("o", A)
                + 0 * kept("R", A))
    for max_exhaustive in (16, 0):  # the lattice, then ∅, C∖{v} and a greedy search
        cg = planted(fn, ["a", "b", "R", "P1", "P2"], ["o"])
        m = minimality(cg, max_exhaustive=max_exhaustive)
        assert m.exhaustive == (max_exhaustive == 16)
        FC = 2.0  # F(C): o ablated
        assert [m.names[i] for i in m.flagged] == ["R"] and m.share[2] == pytest.approx(0, abs=1e-12)
        assert m.confidently_flagged() == [2]
        assert m.share[0] == pytest.approx(1 / FC) and m.share[1] == pytest.approx(1 / FC)
        for v, partner in ((3, 4), (4, 3)):  # removing P1 changes nothing until P2 is gone too
            assert m.at_empty[v] == pytest.approx(0, abs=1e-12)
            assert partner in m.best[v] and m.share[v] == pytest.approx(1 / FC)
            np.testing.assert_allclose(m.change[:, v], -SCALE, atol=1e-12)
        assert m.share_ci[3, 0] <= m.share[3] <= m.share_ci[3, 1]


def test_non_exhaustive_completeness_keeps_greedy_and_random():
    c = completeness(planted(backup_game, *BACKUP), max_exhaustive=2, n_random=2)
    assert not c.exhaustive and c.lattice_terms is None and c.worst_ci_reselected is None
    assert all(r.worst is None and r.worst_value is None for r in c.sizes)
    assert len(c.greedy) == 4 and greedy_gaps(c) == []
    with pytest.raises(InputError, match="exhaustive"):
        c.single_and_joint((0, 1))


# ---------------------------------------------------------------------------
# identities (by construction) and CIs


def test_simultaneous_bound_tells_a_planted_backup_from_noise():
    """Noise alone (d = 0 for every K, per-prompt noise of sd 0.3): the worst of 16 K stays under the bound on
    most seeds; the missing backup (|d| = 1 at {N1, N2}) always exceeds it."""
    def flat(A):
        return kept("a", A) * kept("b", A)  # nothing outside matters: d(K) = 0 up to the noise
    below = 0
    circuit, outside = ["a", "b", "c", "e"], ["o1", "o2"]
    for seed in range(20):
        game = planted(flat, circuit, outside, noise=0.3, seed=seed)
        c = completeness(game, n_boot=400, seed=seed)
        below += not c.incomplete
        # brute force over the 15 non-empty K: d(K) = h(K ∪ O) − h(K), h straight from the planted table and noise
        def h(names):
            b = sum(1 << (circuit + outside).index(x) for x in names)
            return flat(frozenset(names)) * SCALE + game.game.noise[b]
        d = {K: (h([*K, *outside]) - h(list(K))).mean()
             for r in range(1, 5) for K in itertools.combinations(circuit, r)}
        worst = max(d, key=lambda K: abs(d[K]))
        assert {c.circuit_names[i] for i in c.worst} == set(worst)
        assert c.value(c.worst)[0] == pytest.approx(d[worst])
        assert c.simultaneous > 0.3 / np.sqrt(P)  # wider than one K's standard error
    assert below >= 15  # about 95% of seeds (≥ 15 of 20 fails with probability < 1e-3 if the level holds)
    c = completeness(planted(backup_game, *BACKUP, noise=0.3, seed=0), n_boot=400)
    assert c.incomplete and {c.circuit_names[i] for i in c.worst} >= {"N1", "N2"}


def test_outside_split_against_the_mobius_sums():
    """Every part of the split against brute-force sums of the Möbius terms I of h over all n + m units:
    d(∅) = Σ_{∅≠q⊆O} I_q, Δ_o(K) = Σ_{∅≠J⊆K} I_{J∪{o}}, R(K) = Σ over J ≠ ∅ and two or more outside units; and
    d(K) − d(∅) = Σ_{∅≠J⊆K} D_J over circuit units. Each part is checked on its own (none as a residual)."""
    rng = np.random.default_rng(7)
    n, m = 3, 3
    names = [f"u{i}" for i in range(n + m)]
    table = rng.normal(size=(1 << (n + m), P))
    game = SetGame(lambda A: 0.0, names)
    game.values = lambda masks: np.array([table[int(sum(1 << i for i in np.flatnonzero(r)))] for r in masks])
    cg = CircuitGame(game, names[:n], names[n:])
    I = fast_mobius(table.T)  # [P, 2^(n+m)]
    O = ((1 << m) - 1) << n
    for Kb in range(1 << n):
        K = tuple(i for i in range(n) if Kb >> i & 1)
        s = outside_split(cg, K)
        Js = [j for j in range(1, 1 << n) if j & Kb == j]
        for o in range(m):
            np.testing.assert_allclose(s.outside[:, o], sum((I[:, j | 1 << (n + o)] for j in Js), np.zeros(P)),
                                       atol=1e-10)
        multi = [q for q in range(1, 1 << m) if bin(q).count("1") >= 2]
        np.testing.assert_allclose(s.joint, sum((I[:, j | q << n] for j in Js for q in multi), np.zeros(P)),
                                   atol=1e-10)
        np.testing.assert_allclose(s.total, table[Kb | O] - table[Kb], atol=1e-12)
        np.testing.assert_allclose(s.empty, sum((I[:, q << n] for q in range(1, 1 << m)), np.zeros(P)), atol=1e-10)
    c = completeness(cg)
    for Kb in range(1, 1 << n):
        K = tuple(i for i in range(n) if Kb >> i & 1)
        single, joint = c.single_and_joint(K)
        np.testing.assert_allclose(single + joint, c.lattice[:, Kb] - c.lattice[:, 0], atol=1e-10)


def test_cis_against_explicit_bootstrap_loops():
    rng = np.random.default_rng(5)
    x = rng.normal(0.3, 1.0, size=(20, 6))
    scale = rng.normal(2.0, 0.1, size=20)
    counts = bootstrap_counts(20, 300, seed=2)
    idx = [np.repeat(np.arange(20), c.astype(int)) for c in counts]  # the same resamples as index lists
    point, lo, hi = abs_mean_ci(x[:, 0], counts, scale=scale)
    stats = [abs(x[i, 0].mean()) / abs(scale[i].mean()) for i in idx]
    assert point == pytest.approx(abs(x[:, 0].mean()) / abs(scale.mean()))
    assert (lo, hi) == pytest.approx(tuple(np.quantile(stats, [0.025, 0.975])))
    lo, hi = max_abs_mean_ci(x, counts, chunk=7)
    assert (lo, hi) == pytest.approx(tuple(np.quantile([np.abs(x[i].mean(0)).max() for i in idx], [0.025, 0.975])))
    centred = x - x.mean(0)
    assert simultaneous_bound(x, counts, chunk=7) == pytest.approx(
        np.quantile([np.abs(centred[i].mean(0)).max() for i in idx], 0.95))
    assert abs_bounds((0.5, -0.2, 1.0)) == (0.0, 1.0) and abs_bounds((-0.5, -0.9, -0.3)) == (0.3, 0.9)


def test_bad_input_is_refused(ioi_small_model):
    model, tok = ioi_small_model
    from intjax.ioi.task import ioi_prompts
    data = ioi_prompts(tok, 4, seed=0)
    with pytest.raises(InputError, match="unknown ablation"):
        circuit_game(model, tok, data, {"a": ["L0H1"]}, ablation="median")
    with pytest.raises(InputError, match="empty"):
        circuit_game(model, tok, data, {"a": []})
    with pytest.raises(InputError, match="not heads"):
        circuit_game(model, tok, data, {"a": ["L9H9"]})
    cg = planted(backup_game, *BACKUP)
    with pytest.raises(InputError, match="not units of the circuit"):
        cg.index(["N1", "B"])
    with pytest.raises(InputError, match="empty"):
        CircuitGame(SetGame(backup_game, ["B"]), [], ["B"])
    with pytest.raises(InputError, match="threshold"):
        minimality(cg, threshold=5)


# ---------------------------------------------------------------------------
# the shipped model against HuggingFace torch


@pytest.fixture(scope="module")
def ioi_small_model():
    import intjax

    return intjax.load_model("ioi-small")


def test_sides_match_hf_torch_loops(ioi_small_model):
    """F(C∖K) and F(M∖K) under mean and resample ablation, each head replaced explicitly in torch hooks."""
    from transformers import GPT2LMHeadModel

    from hf_patching import run as hf_run
    from intjax.loading.resolve import _ASSETS
    from intjax.ioi.task import ioi_prompts, template_reference

    model, tok = ioi_small_model
    hf = GPT2LMHeadModel.from_pretrained(_ASSETS / "ioi-small", attn_implementation="eager").eval()
    circuit = {"movers": ["L0H1", "L2H0", "L3H2"], "inhibition": ["L1H0"]}
    data = ioi_prompts(tok, 5, seed=0)
    d_head, H, L = model.config.d_head, model.config.n_heads, model.config.n_layers
    heads = [f"L{l}H{h}" for l in range(L) for h in range(H)]
    outside = [x for x in heads if x not in sum(circuit.values(), [])]
    Ks = [("L0H1",), ("L2H0", "L1H0")]
    reference, (keys, ref_keys) = template_reference(tok, data, 3, seed=0)
    ref_z = [hf_run(hf, x, record=True)[1] for x in reference.corrupted]
    for ablation in ("mean", "resample"):
        cg = circuit_game(model, tok, data, circuit, ablation=ablation, reference_per_template=3)
        assert cg.unit == "head" and set(cg.outside_names) == set(outside)
        cs, ms = cg.sides([cg.index(K) for K in Ks])
        for p, (c, x, t, f) in enumerate(zip(*(getattr(data.prompts, a) for a in
                                                ("clean", "corrupted", "target", "foil")))):
            if ablation == "mean":
                group = [r for r, key in enumerate(ref_keys) if key == keys[p]]
                source = {l: np.mean([ref_z[r][("z", l)].numpy() for r in group], 0) for l in range(L)}
            else:
                rec = hf_run(hf, x, record=True)[1]
                source = {l: rec[("z", l)].numpy() for l in range(L)}

            def replace(names):
                out = {}
                for name in names:
                    l, h = int(name[1]), int(name[3])
                    out[("z", l, h, None)] = (lambda v, k, l=l, h=h: __import__("torch").tensor(
                        source[l][:, h * d_head:(h + 1) * d_head]))
                return out
            for j, K in enumerate(Ks):
                for side, names in ((cs, [*K, *outside]), (ms, list(K))):
                    logits, _ = hf_run(hf, c, replace=replace(names))
                    assert side[p, j] == pytest.approx(float(logits[-1, t] - logits[-1, f]), abs=2e-3), (ablation, K)


# ---------------------------------------------------------------------------
# the report's words, each from a rule checked above


def test_report_words_follow_the_planted_truth():
    from intjax.report.completeness import build_completeness_scatter, completeness_markdown, completeness_summary_lines

    cg = planted(backup_game, *BACKUP)
    c, m = completeness(cg), minimality(cg)
    text = completeness_markdown(c, m)
    assert "the circuit is not complete" in text and "no K shows" not in text
    gap_line = next(line for line in text.splitlines() if line.startswith("- |K| = 2:"))
    assert "exhaustive worst N1+N2" in gap_line and "the CIs of |d| are apart" in gap_line
    assert "interaction terms among its members outweigh their single terms" in gap_line
    assert f"D[N1+N2] = {-SCALE.mean():+.3f}" in gap_line
    carry = next(line for line in text.splitlines() if line.startswith("- What carries d(N1+N2)"))
    assert "(largest B " in carry and "two or more outside units together give +0.000" in carry
    (summary,) = completeness_summary_lines(c, m)
    assert "beyond the 95% simultaneous bound" in summary and "most of it is B" in summary
    assert "at |K| = 2; their CIs are apart at 2 (interaction)" in summary
    ax = build_completeness_scatter(c).axes[0]
    assert {t.get_text() for t in ax.get_legend().get_texts()} >= {
        "K = ∅", "greedy K", "F(C∖K) = F(M∖K) (complete)", "± 95% simultaneous bound over all K",
        "normal 95% CI of d(K), every K"}
    (bars,) = [b for b in ax.containers if b.get_label() == "normal 95% CI of d(K), every K"]
    assert len(bars.lines[2][0].get_segments()) == len(c.sets)  # every K has its CI

    def complete(A):
        return kept("a", A) * kept("b", A) + 0.5 * kept("c", A) * 0 + max(kept("P1", A), kept("P2", A))
    cg = planted(complete, ["a", "b", "c", "P1", "P2"], ["o1"])
    c, m = completeness(cg), minimality(cg)
    text = completeness_markdown(c, m)
    assert "no K shows the circuit incomplete" in text and "the circuit is not complete" not in text
    assert "Greedy K reaches the exhaustive worst |d| at every size" in text
    assert "Below the 5% threshold: c (CI wholly below for c)" in text
    assert "P1, P2 change F(C) by less than 5% when removed from the full circuit" in text
    (summary,) = completeness_summary_lines(c, m)
    assert "within the 95% simultaneous bound" in summary and "heads below 5% of F(C): c." in summary

    for weights, gap, words in (({"a": -0.6, "b": -0.6, "c": 0.3}, 0.5, "has the sign opposite to d(∅)"),
                                ({"a": 1.0, "b": -0.9, "c": -0.9}, 0.0, "greedy's earlier picks")):
        cg = additive(weights, gap)
        text = completeness_markdown(completeness(cg), minimality(cg))
        assert words in text and "the CIs of |d| are apart" in text
        assert "No head lies below the 5% threshold: each matters for some K." in text
    cg = planted(backup_game, *BACKUP, noise=1.0)  # noise swamps the gap: the CIs overlap, no verdict
    c, m = completeness(cg, n_boot=400), minimality(cg, n_boot=400)
    text = completeness_markdown(c, m)
    assert "the CIs of |d| overlap, so the prompts do not separate the two" in text
    # a head above the threshold whose CI reaches below it is named as unsettled (planted CI)
    assert "reaches below" not in text
    i = next(i for i in range(len(m.names)) if i not in m.flagged)
    ci = m.share_ci.copy()
    ci[i, 0] = m.threshold / 2
    text = completeness_markdown(c, dataclasses.replace(m, share_ci=ci))
    assert f"The 95% CI of {m.names[i]} reaches below 5%: the prompts do not settle whether it matters." in text
    (summary,) = completeness_summary_lines(c, dataclasses.replace(m, share_ci=ci))
    assert f"(95% CI reaching below it: {m.names[i]})." in summary
    assert "reaching below" not in completeness_summary_lines(c, m)[0]


def test_summary_json_and_value_keys():
    """summary.json's completeness entries survive JSON and name K in words; values.npz keys follow the splits."""
    import json
    from types import SimpleNamespace

    from intjax.ioi.studies import completeness_summary, split_keys

    cg = planted(backup_game, *BACKUP)
    c, m = completeness(cg), minimality(cg)
    out = json.loads(json.dumps(completeness_summary(SimpleNamespace(completeness=c, minimality=m))))
    assert out["completeness"]["incomplete"] is True and out["completeness"]["worst"] == c.name(c.worst)
    assert out["completeness"]["sizes"][1]["worst"] == "N1+N2" and out["completeness"]["sizes"][1]["greedy_short"]
    assert out["completeness"]["greedy_gaps"] == [dict(k=2, cause="interaction", single=pytest.approx(0, abs=1e-12),
                                                       joint=pytest.approx(-SCALE.mean()), empty=pytest.approx(0),
                                                       significant=True)]
    assert out["minimality"]["units"] == ["N1", "N2", "D", "X"] and len(out["minimality"]["share_ci"]) == 4
    assert split_keys(c) == ["completeness_split_worst", "completeness_split_worst_k2", "completeness_split_greedy_k2"]
    assert completeness_summary(SimpleNamespace(completeness=None, minimality=None)) == {}


def test_a_gap_the_prompts_do_not_separate_gets_no_cause():
    """Offset game whose worst pair (a+b, |d| = 0.52) beats greedy's (|d| = 0.5 + 0.01) by less than the prompt
    noise (sd 0.3): the section and the summary state the gap but give no cause."""
    from intjax.report.completeness import completeness_markdown, completeness_summary_lines

    def fn(A):
        w = {"a": -0.51, "b": -0.51, "c": 0.01}
        return 1.0 + 0.5 * ("o1" in A) + sum(v * (k in A) * ("o2" in A) for k, v in w.items())
    c = completeness(planted(fn, ["a", "b", "c"], ["o1", "o2"], noise=0.3), n_boot=400)
    gaps = greedy_gaps(c)
    assert gaps and not any(g.significant for g in gaps)
    text = completeness_markdown(c, minimality(planted(fn, ["a", "b", "c"], ["o1", "o2"], noise=0.3)))
    gap_line = next(line for line in text.splitlines() if line.startswith(f"- |K| = {gaps[0].k}:"))
    assert gap_line.endswith("No cause is given: on these prompts greedy's K is not shown to fall short.")
    assert "Why greedy misses it" not in text
    (summary,) = completeness_summary_lines(c, minimality(planted(fn, ["a", "b", "c"], ["o1", "o2"], noise=0.3)))
    assert "their CIs are apart at none, so no shortfall (and no cause) is shown" in summary
    assert "offset" not in summary


def test_one_k_has_one_ci():
    """The summary's d(worst K) and the size table's d of the same K come from the same bootstrap draws (they
    were 2000 and 1000 draws: two CIs for one number)."""
    c = completeness(planted(backup_game, *BACKUP, noise=0.3, seed=0), n_boot=400, seed=3)
    for row in c.sizes:
        if row.worst is not None:
            assert c.value(row.worst) == row.worst_value
        if row.greedy:
            assert c.value(row.greedy) == row.greedy_value
