"""The patch engine against an independent reference: HF torch GPT-2, one run per patch."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import hf_patching as ref
from intjax.errors import InputError
from intjax.patching import (
    build_problem, evaluate, make_prompt_set, parse_component, parse_components,
)

SPEC = "L0H1,L1H2@3,L2MLP,L1MLP@2,L1RESID@4,grp=L0H0+L2H3,L1ATTN@5"
LENGTHS = (7, 9, 8)


def prompt_rows(vocab, lengths=LENGTHS, seed=0):
    rng = np.random.default_rng(seed)
    return [
        dict(clean_ids=rng.integers(0, vocab, n).tolist(), corrupted_ids=rng.integers(0, vocab, n).tolist(),
             target_id=int(rng.integers(vocab)), foil_id=int(rng.integers(vocab)))
        for n in lengths
    ]


def site_keys(component):
    return [(s.kind, s.layer, s.head, s.pos) for s in component.sites]


def mean_values(hf_model, token_lists, keys, d_head):
    """Per-position mean of each site's recorded value over prompts covering the position."""
    recs = [ref.run(hf_model, t, record=True)[1] for t in token_lists]
    T = max(len(t) for t in token_lists)
    means = {}
    for key in {(k, l) for k, l, _, _ in keys}:
        total = torch.zeros(T, *recs[0][key].shape[1:-1], T if key[0] == "pattern" else recs[0][key].shape[-1])
        count = torch.zeros(T, *[1] * (total.ndim - 1))
        for r in recs:
            value = r[key]
            if key[0] == "pattern":  # [T_p, H, T_p]: pad the key axis with zero weights
                value = torch.nn.functional.pad(value, (0, T - value.shape[-1]))
            total[: value.shape[0]] += value
            count[: value.shape[0]] += 1
        means[key] = total / count
    return means


def reference_values(hf_model, rows, components, masks, direction, source, semantics, metric="logit_diff",
                     mean_rows=None):
    """`mean_rows[p]`: the rows prompt p's mean source averages (default: all rows)."""
    d_head = hf_model.config.n_embd // hf_model.config.n_head
    keys = [k for c in components for k in site_keys(c)]
    base_side, src_side = ("clean_ids", "corrupted_ids") if direction == "noising" else ("corrupted_ids", "clean_ids")
    out = np.zeros((len(masks), len(rows)))
    for p, row in enumerate(rows):
        _, base_rec = ref.run(hf_model, row[base_side], record=True)
        if source == "counterfactual":
            _, src_rec = ref.run(hf_model, row[src_side], record=True)
        elif source == "mean":
            averaged = rows if mean_rows is None else mean_rows[p]
            mean = mean_values(hf_model, [r[src_side] for r in averaged], keys, d_head)
            n = len(row[base_side])
            src_rec = {k: v[:n, ..., :n] if k[0] == "pattern" else v[:n] for k, v in mean.items()}
        else:
            src_rec = {k: torch.zeros_like(v) for k, v in base_rec.items()}
        src_vals = {k: ref.site_value(src_rec, k, d_head) for k in keys}
        base_vals = {k: ref.site_value(base_rec, k, d_head) for k in keys}
        comps = [site_keys(c) for c in components]
        for m, alpha in enumerate(masks):
            logits = ref.patched_logits(hf_model, row[base_side], src_vals, comps, alpha, semantics, base_vals)
            last = logits[len(row[base_side]) - 1]
            t, f = row["target_id"], row["foil_id"]
            if metric == "logit_diff":
                out[m, p] = last[t] - last[f]
            elif metric == "logprob":
                out[m, p] = torch.log_softmax(torch.tensor(last), -1)[t].item()
            else:
                out[m, p] = torch.softmax(torch.tensor(last), -1)[t].item()
    return out


def some_masks(n, rng):
    eye = np.eye(n)
    sets = np.array([[1 if i in s else 0 for i in range(n)] for s in ({0, 2}, {1, 3, 5}, set(range(n)))])
    frac = rng.uniform(0, 1, (2, n)) * (rng.uniform(0, 1, (2, n)) < 0.5)
    return np.concatenate([np.zeros((1, n)), eye, sets, frac])


@pytest.mark.parametrize("semantics", ["recompute", "frozen"])
@pytest.mark.parametrize("source", ["counterfactual", "mean", "zero"])
@pytest.mark.parametrize("direction", ["noising", "denoising"])
def test_f_matches_one_run_per_patch_reference(tiny, tiny_model, semantics, source, direction):
    hf_model = tiny[1]
    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size)
    components = parse_components(SPEC, model.config)
    problem = build_problem(model, make_prompt_set(rows), components, direction=direction,
                            source=source, semantics=semantics)
    masks = some_masks(len(components), np.random.default_rng(1))
    got = evaluate(problem, masks, chunk=4)
    expected = reference_values(hf_model, rows, components, masks, direction, source, semantics)
    np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-4)


def test_mean_within_groups_matches_reference(tiny, tiny_model):
    """Each prompt gets the mean over its own group of a separate reference set (per-template means)."""
    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size, (7, 9, 7, 9), seed=4)
    refs = prompt_rows(model.config.vocab_size, (7, 7, 9, 9, 9), seed=5)
    groups, ref_groups = ["a", "b", "a", "b"], ["a", "a", "b", "b", "b"]
    components = parse_components("L0H1,L1MLP,L2H3", model.config)
    problem = build_problem(model, make_prompt_set(rows), components, source="mean",
                            reference=make_prompt_set(refs), mean_groups=(groups, ref_groups))
    masks = some_masks(len(components), np.random.default_rng(6))
    mean_rows = [[r for r, g in zip(refs, ref_groups) if g == group] for group in groups]
    expected = reference_values(tiny[1], rows, components, masks, "noising", "mean", "recompute",
                                mean_rows=mean_rows)
    np.testing.assert_allclose(evaluate(problem, masks), expected, atol=2e-4, rtol=1e-4)
    with pytest.raises(InputError, match="no reference prompt is in group"):
        build_problem(model, make_prompt_set(rows), components, source="mean", reference=make_prompt_set(refs),
                      mean_groups=(["a", "b", "c", "b"], ref_groups))
    with pytest.raises(InputError, match="covering every position"):  # group b's references are too short
        build_problem(model, make_prompt_set(rows), components, source="mean", reference=make_prompt_set(refs),
                      mean_groups=(groups, ["b", "b", "a", "a", "a"]))


def _resolved(component, row):
    """The component with role positions replaced by this prompt's indices (a tuple for ~ROLE)."""
    from types import SimpleNamespace

    roles = {"END": len(row["clean_ids"]) - 1, **row["positions"]}

    def where(pos):
        if not isinstance(pos, str):
            return pos
        if pos.startswith("~"):
            return tuple(i for i in range(len(row["clean_ids"])) if i != roles[pos[1:]])
        return roles[pos]
    # the reference takes sites at several positions (a tuple), which intjax's Site does not model
    return SimpleNamespace(name=component.name, sites=tuple(SimpleNamespace(**{**vars(s), "pos": where(s.pos)})
                                                            for s in component.sites))


@pytest.mark.parametrize("semantics", ["recompute", "frozen"])
def test_role_positions_match_reference(tiny, tiny_model, semantics):
    """`L0H1@S2` patches each prompt at its own S2; `@~X` everywhere but X; END is the last token."""
    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size, (7, 9, 8), seed=7)
    for row, (s2, x) in zip(rows, [(2, 5), (6, 3), (4, 7)]):
        row["positions"] = {"S2": s2, "X": x}
    components = parse_components("L0H1@S2,L1H2@~X,L2MLP@END,L1RESID@S2,grp=L0H0@X+L2H3@S2", model.config)
    problem = build_problem(model, make_prompt_set(rows), components, semantics=semantics)
    masks = some_masks(len(components), np.random.default_rng(8))
    got = evaluate(problem, masks)
    for p, row in enumerate(rows):
        expected = reference_values(tiny[1], [row], [_resolved(c, row) for c in components], masks,
                                    "noising", "counterfactual", semantics)
        np.testing.assert_allclose(got[:, p], expected[:, 0], atol=2e-4, rtol=1e-4)


def test_role_position_errors(tiny_model):
    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size, (7, 9), seed=7)
    with pytest.raises(InputError, match="positions"):  # no prompt names S2
        build_problem(model, make_prompt_set(rows), parse_components("L0H1@S2", model.config))
    rows[0]["positions"], rows[1]["positions"] = {"S2": 3}, {"IO": 3}
    with pytest.raises(InputError, match="same roles"):
        make_prompt_set(rows)
    rows[1]["positions"] = {"S2": 9}
    with pytest.raises(InputError, match="token indices"):
        make_prompt_set(rows)
    with pytest.raises(InputError, match="share sites"):  # L0H1@S2 lies inside L0H1
        rows[1]["positions"] = {"S2": 4}
        build_problem(model, make_prompt_set(rows), parse_components("L0H1,x=L0H1@S2", model.config))


def test_whole_layers_and_mlps_match_reference(tiny, tiny_model):
    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size, (6, 6))
    components = parse_components("layers,mlps", model.config)
    problem = build_problem(model, make_prompt_set(rows), components)
    masks = some_masks(len(components), np.random.default_rng(2))
    expected = reference_values(tiny[1], rows, components, masks, "noising", "counterfactual", "recompute")
    np.testing.assert_allclose(evaluate(problem, masks), expected, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("metric", ["logprob", "prob"])
def test_metrics_match_reference(tiny, tiny_model, metric):
    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size, (5, 7))
    components = parse_components("L0H0,L1MLP", model.config)
    problem = build_problem(model, make_prompt_set(rows), components, metric=metric)
    masks = np.array([[0, 0], [1, 0], [0, 1], [1, 1]])
    expected = reference_values(tiny[1], rows, components, masks, "noising", "counterfactual", "recompute", metric)
    np.testing.assert_allclose(evaluate(problem, masks), expected, atol=2e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def problem(tiny_model):
    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size, (7, 9, 8, 9, 7))
    components = parse_components("heads,mlps,L1RESID@3", model.config)
    return build_problem(model, make_prompt_set(rows), components, semantics="recompute"), rows


def test_chunked_evaluator_equals_full_scan_path_and_base_metric_equals_hf(tiny, problem):
    problem, rows = problem
    rng = np.random.default_rng(3)
    n = problem.n_components
    masks = (rng.uniform(size=(23, n)) < 0.1) * rng.uniform(size=(23, n))
    masks[0] = 0
    full_run = eqx.filter_jit(lambda p, a: p(a, start=0))  # the scan over every layer
    full = np.stack([np.asarray(full_run(problem, jnp.asarray(m, jnp.float32))) for m in masks])
    np.testing.assert_allclose(evaluate(problem, masks), full, atol=1e-5)
    np.testing.assert_allclose(evaluate(problem, masks, chunk=1), full, atol=1e-5)
    np.testing.assert_allclose(evaluate(problem, masks, chunk=5), full, atol=1e-5)
    # the all-zero mask (masks[0]) skips every layer and returns the cached base metric: against torch
    base_hf = reference_values(tiny[1], rows, problem.components, masks[:1], "noising", "counterfactual",
                               "recompute")[0]
    np.testing.assert_allclose(problem.metric_base, base_hf, atol=2e-5, rtol=1e-4)
    assert problem.start_layers(masks[:1])[0] == problem.model.config.n_layers


def test_shared_prefixes_equal_one_mask_at_a_time(tiny_model):
    """Subsets that share their early components run those layers once: values must not change."""
    from intjax.estimands.mobius import subset_masks, subsets_up_to
    from intjax.patching.evaluate import layer_touch, prefix_plan

    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size, (7, 9, 8))
    components = parse_components("L0H1,L0MLP,L1H2,g=L0H3+L2H0,L1RESID@3,L2MLP@4,L2H1", model.config)
    problem = build_problem(model, make_prompt_set(rows), components)
    masks = subset_masks(subsets_up_to(len(components), 3), len(components))
    masks[-5:] *= 0.5  # fractional values make distinct prefixes too
    full_run = eqx.filter_jit(lambda p, a: p(a, start=0))
    full = np.stack([np.asarray(full_run(problem, jnp.asarray(m, jnp.float32))) for m in masks])
    for chunk in (None, 7):
        np.testing.assert_allclose(evaluate(problem, masks, chunk=chunk), full, atol=1e-5)
    # the plan: one run per distinct prefix, and every mask's chain of parents follows its own prefix
    touch = layer_touch(problem)
    sub = masks[problem.start_layers(masks) == 0]
    plan = prefix_plan(touch, sub, 0)
    assert len(plan[0][0]) == len({tuple(m[touch[:, 0]]) for m in sub}) < len(sub)
    for layer in range(1, len(plan)):
        reps, parents = plan[layer]
        prev_reps = plan[layer - 1][0]
        active = touch[:, :layer].any(1)
        np.testing.assert_array_equal(sub[reps][:, active], sub[prev_reps[parents]][:, active])


def test_mixed_lengths_equal_one_prompt_at_a_time(tiny_model, problem):
    model, _ = tiny_model
    problem, rows = problem
    masks = np.eye(problem.n_components)[::3]
    together = evaluate(problem, masks)
    for p, row in list(enumerate(rows))[1:4]:
        alone = build_problem(model, make_prompt_set([row]), problem.components)
        np.testing.assert_allclose(evaluate(alone, masks)[:, 0], together[:, p], atol=1e-5)


def test_f_is_differentiable_in_alpha(problem):
    problem, _ = problem
    n = problem.n_components
    alpha = jnp.full(n, 0.3)
    direction = jnp.asarray(np.random.default_rng(4).normal(size=n), jnp.float32)

    def total(a):
        return problem(a).sum()

    jax.config.update("jax_enable_x64", False)
    _, tangent = jax.jvp(total, (alpha,), (direction,))
    eps = 1e-2
    fd = (total(alpha + eps * direction) - total(alpha - eps * direction)) / (2 * eps)
    np.testing.assert_allclose(tangent, fd, rtol=2e-2, atol=2e-3)
    np.testing.assert_allclose(jnp.dot(jax.grad(total)(alpha), direction), tangent, rtol=1e-4, atol=1e-4)


def test_component_names_round_trip(tiny_model):
    cfg = tiny_model[0].config
    for text in ["L0H1", "L2H3@5", "L1MLP", "L1MLP@0", "L2RESID@4", "L1ATTN", "nm=L0H1+L2H3@2"]:
        c = parse_component(text, cfg)
        assert str(c) == text
        assert parse_component(str(c), cfg) == c
    assert len(parse_components("heads", cfg)) == cfg.n_layers * cfg.n_heads
    assert [c.name for c in parse_components("mlps", cfg)] == ["L0MLP", "L1MLP", "L2MLP"]


@pytest.mark.parametrize("text, message", [
    ("L9H0", "layer 9 is out of range 0..2"),
    ("L0H7", "head 7 is out of range 0..3"),
    ("L0RESID", "needs a position"),
    ("head0", "valid forms: L{layer}H{head}"),
    ("L0H1=L1H1", "must be a word"),
])
def test_bad_component_names(tiny_model, text, message):
    with pytest.raises(InputError, match=message.replace("{", r"\{").replace("}", r"\}")):
        parse_components(text, tiny_model[0].config)


def test_bad_inputs(tiny_model):
    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size, (6, 6))
    rows[1]["corrupted_ids"] = rows[1]["corrupted_ids"][:-1]
    with pytest.raises(InputError, match="line 2: clean prompt has 6 tokens but corrupted has 5"):
        make_prompt_set(rows)
    rows = prompt_rows(model.config.vocab_size, (6, 4))
    with pytest.raises(InputError, match="patches position 5, but the shortest prompt has 4"):
        build_problem(model, make_prompt_set(rows), parse_components("L0H0@5", model.config))
    with pytest.raises(InputError, match="share sites"):
        build_problem(model, make_prompt_set(rows), parse_components("L0H0,L0ATTN", model.config))
    problem = build_problem(model, make_prompt_set(rows), parse_components("L0H0,L1H1", model.config))
    with pytest.raises(InputError, match=r"shape \[n_masks, 2\]"):
        evaluate(problem, np.zeros((3, 3)))
    with pytest.raises(InputError, match="unknown semantics"):
        build_problem(model, make_prompt_set(rows), parse_components("L0H0", model.config), semantics="x")


def corrupted_from(rows, positions, seed):
    """Rows whose corrupted prompt is the clean one with the tokens at `positions` (per row) replaced."""
    rng = np.random.default_rng(seed)
    out = []
    for row, pos in zip(rows, positions):
        corrupted = list(row["clean_ids"])
        for i in pos:
            corrupted[i] = (corrupted[i] + 1 + int(rng.integers(50))) % 100
        out.append({**row, "corrupted_ids": corrupted})
    return out


@pytest.mark.parametrize("direction, semantics", [("noising", "recompute"), ("denoising", "frozen")])
def test_shared_prefix_runs_match_hf_for_single_token_and_ioi_style_corruptions(tiny, tiny_model, direction,
                                                                              semantics):
    """Positions before the first differing token come from the base run (keys and values too):
    against HF torch runs with hooks, and against the same problem recomputing every position."""
    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size, (8, 10, 9), seed=11)
    cases = {"single token (an S2 flip)": corrupted_from(rows, [[5], [7], [6]], 12),
             "IOI-style (names at 3 positions)": corrupted_from(rows, [[3, 5, 6], [4, 7, 8], [4, 6, 7]], 13)}
    spec = "L0H1,L0MLP,L1H2,L1RESID@2,L1RESID@6,L2H3,L2MLP,g=L0H0+L2H1"  # sites before, at and after S
    components = parse_components(spec, model.config)
    masks = some_masks(len(components), np.random.default_rng(14))
    for what, case in cases.items():
        prompts = make_prompt_set(case)
        problem = build_problem(model, prompts, components, direction=direction, semantics=semantics)
        assert problem.shared_prefix == min(min(p) for p in ([[5], [7], [6]] if "single" in what
                                                              else [[3, 5, 6], [4, 7, 8], [4, 6, 7]])), what
        got = evaluate(problem, masks, chunk=4)
        expected = reference_values(tiny[1], case, components, masks, direction, "counterfactual", semantics)
        np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-4, err_msg=what)
        whole = build_problem(model, prompts, components, direction=direction, semantics=semantics,
                              shared_prefix=False)
        assert whole.shared_prefix == 0
        np.testing.assert_allclose(got, evaluate(whole, masks, chunk=4), atol=1e-5, err_msg=what)


def test_shared_prefix_stops_at_the_read_position_and_only_for_counterfactual_sources(tiny_model):
    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size, (8, 6), seed=15)
    same = [{**r, "corrupted_ids": list(r["clean_ids"])} for r in rows]  # nothing differs
    components = parse_components("L0H1,L2MLP", model.config)
    with pytest.warns(UserWarning, match="clean and corrupted are the same tokens"):
        problem = build_problem(model, make_prompt_set(same), components)
    assert problem.shared_prefix == 5  # the shortest prompt's last position is still computed
    np.testing.assert_allclose(evaluate(problem, np.eye(2)), np.asarray(problem.metric_clean)[None].repeat(2, 0),
                               atol=1e-5)
    late = corrupted_from(rows, [[6], [4]], 16)
    assert build_problem(model, make_prompt_set(late), components).shared_prefix == 4
    assert build_problem(model, make_prompt_set(late), components, source="mean").shared_prefix == 0
