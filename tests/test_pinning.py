"""Witness pinning and PIE against HF torch GPT-2 with explicit hooks, one run per patch."""

from __future__ import annotations

import numpy as np
import pytest

import hf_patching as ref
from intjax.errors import InputError
from intjax.patching import build_problem, evaluate, make_prompt_set, parse_components
from test_patching import prompt_rows, site_keys, some_masks


def pinned_reference(hf_model, rows, components, witnesses, masks, direction, semantics):
    """f at each mask with the witnesses' sites set to their base-run values, one HF run per patch."""
    d_head = hf_model.config.n_embd // hf_model.config.n_head
    comps = [site_keys(c) for c in components]
    pins = [k for w in witnesses for k in site_keys(w)]
    keys = [k for c in comps for k in c] + pins
    base_side, src_side = ("clean_ids", "corrupted_ids") if direction == "noising" else ("corrupted_ids", "clean_ids")
    out = np.zeros((len(masks), len(rows)))
    for p, row in enumerate(rows):
        _, base_rec = ref.run(hf_model, row[base_side], record=True)
        _, src_rec = ref.run(hf_model, row[src_side], record=True)
        src = {k: ref.site_value(src_rec, k, d_head) for k in keys}
        base = {k: ref.site_value(base_rec, k, d_head) for k in keys}
        for m, alpha in enumerate(masks):
            logits = ref.patched_logits(hf_model, row[base_side], src, comps, alpha, semantics, base, pins)
            last = logits[len(row[base_side]) - 1]
            out[m, p] = last[row["target_id"]] - last[row["foil_id"]]
    return out


def assert_matches_s2_witness(tiny, model, rows, components, masks, got):
    """`got` [M, P] equals HF hooks with L1H2 pinned at each prompt's own S2 position (noising)."""
    for p, row in enumerate(rows):
        w = parse_components(f"L1H2@{row['positions']['S2']}", model.config)
        expected = pinned_reference(tiny[1], [row], components, w, masks, "noising", "recompute")
        np.testing.assert_allclose(got[:, p], expected[:, 0], atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("direction", ["noising", "denoising"])
@pytest.mark.parametrize("semantics", ["recompute", "frozen"])
def test_witness_pinning_matches_hf_hooks(tiny, tiny_model, direction, semantics):
    """Heads and an MLP as witnesses, held at the base run's values while the rest recomputes."""
    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size)
    components = parse_components("L0H1,L1H2,L2MLP,L0MLP@3", model.config)
    witnesses = parse_components("L1H0,L1MLP,L2H3@4", model.config)
    problem = build_problem(model, make_prompt_set(rows), components, direction=direction,
                            semantics=semantics, pin=witnesses)
    masks = some_masks(len(components), np.random.default_rng(3))
    expected = pinned_reference(tiny[1], rows, components, witnesses, masks, direction, semantics)
    np.testing.assert_allclose(evaluate(problem, masks, chunk=3), expected, atol=2e-4, rtol=1e-4)
    # The differentiable path agrees with the chunked evaluator under pinning.
    np.testing.assert_allclose(np.asarray(problem(masks[5].astype(np.float32))), expected[5], atol=2e-4, rtol=1e-4)
    # Pinning changes the answer here (else the test could not tell a dropped pin).
    free = build_problem(model, make_prompt_set(rows), components, direction=direction, semantics=semantics)
    assert np.abs(evaluate(free, masks) - expected).max() > 1e-2


def test_pinning_every_other_component_is_pie(tiny_model):
    """Recompute semantics with every other analysed component pinned = frozen semantics (PIE) for NIE."""
    model, _ = tiny_model
    rows = make_prompt_set(prompt_rows(model.config.vocab_size))
    components = parse_components("L0H1,L1H2,L2MLP", model.config)
    frozen = build_problem(model, rows, components, semantics="frozen")
    pie = evaluate(frozen, np.eye(3)) - evaluate(frozen, np.zeros((1, 3)))
    for i, comp in enumerate(components):
        others = [c for j, c in enumerate(components) if j != i]
        pinned = build_problem(model, rows, [comp], pin=others)
        got = evaluate(pinned, np.ones((1, 1))) - evaluate(pinned, np.zeros((1, 1)))
        np.testing.assert_allclose(got[0], pie[i], atol=2e-4, rtol=1e-4)


def test_role_position_witnesses_match_hf(tiny, tiny_model):
    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size, (7, 9, 8), seed=7)
    for row, s2 in zip(rows, (2, 6, 4)):
        row["positions"] = {"S2": s2}
    components = parse_components("L0H1,L2MLP", model.config)
    witnesses = parse_components("L1H2@S2", model.config)
    problem = build_problem(model, make_prompt_set(rows), components, pin=witnesses)
    masks = some_masks(2, np.random.default_rng(4))
    got = evaluate(problem, masks)
    assert_matches_s2_witness(tiny, model, rows, components, masks, got)


def test_pin_errors(tiny_model):
    model, _ = tiny_model
    rows = make_prompt_set(prompt_rows(model.config.vocab_size))
    comps = parse_components("L0H1,L1H2", model.config)
    with pytest.raises(InputError, match=r"\['L1H2'\] are both patched and pinned"):
        build_problem(model, rows, comps, pin=parse_components("L1H2,L2MLP", model.config))
    with pytest.raises(InputError, match="share sites"):  # L1H2@3 lies inside L1H2
        build_problem(model, rows, comps, pin=parse_components("L1H2@3", model.config))


def test_cli_pin_and_pie_against_hf(tiny, tmp_path, capsys):
    """`intjax patch --pin` keeps the nie_* contract; `--semantics frozen` writes pie_*; both against HF hooks."""
    import intjax
    from intjax.cli import main
    from intjax.results import read_results
    from test_cli_patch import write_jsonl

    folder, hf_model = tiny
    rows = prompt_rows(300, (6, 8))
    data = write_jsonl(tmp_path / "p.jsonl", rows)
    config = intjax.load_model(folder)[0].config
    spec, pin = "L0H1,L2MLP", "L1H0,L1MLP"
    assert main(["patch", "--model", str(folder), "--data", str(data), "--components", spec, "--pin", pin,
                 "--order", "2", "--out", str(tmp_path / "w"), "--quiet"]) == 0
    arrays, summary = read_results(tmp_path / "w")
    assert summary["pinned"] == pin
    masks = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float)
    comps, wits = parse_components(spec, config), parse_components(pin, config)
    for direction in ("noising", "denoising"):
        f = pinned_reference(hf_model, rows, comps, wits, masks, direction, "recompute")
        np.testing.assert_allclose(arrays[f"nie_{direction}"], (f[1:3] - f[:1]).T, atol=2e-4)
        np.testing.assert_allclose(arrays[f"int2_{direction}"][:, 0], f[3] - f[1] - f[2] + f[0], atol=2e-4)
    assert main(["patch", "--model", str(folder), "--data", str(data), "--components", spec,
                 "--semantics", "frozen", "--direction", "noising", "--out", str(tmp_path / "f"), "--quiet"]) == 0
    arrays, _ = read_results(tmp_path / "f")
    assert "nie_noising" not in arrays
    f = pinned_reference(hf_model, rows, comps, [], masks[:3], "noising", "frozen")
    np.testing.assert_allclose(arrays["pie_noising"], (f[1:3] - f[:1]).T, atol=2e-4)
    assert main(["patch", "--model", str(folder), "--data", str(data), "--components", spec, "--pin", "L2MLP",
                 "--out", str(tmp_path / "e"), "--quiet"]) == 2
    assert "['L2MLP'] are both patched and pinned" in capsys.readouterr().err


def test_witness_importance_matches_hf_and_skips_upstream(tiny, tiny_model):
    """|NIE with w pinned| − |NIE| per candidate, against HF hooks; an upstream candidate is skipped
    because pinning it is exactly a no-op (checked in HF too)."""
    from intjax.studies.witnesses import witness_importance

    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size, (7, 9, 8))
    suspect = parse_components("L1H0", model.config)[0]
    candidates = parse_components("L0H2,L1H3,L1MLP,L2H1,L2MLP", model.config)
    for direction in ("noising", "denoising"):
        got = witness_importance(model, make_prompt_set(rows), suspect, candidates, direction=direction)
        assert got.witnesses == ("L1MLP", "L2H1", "L2MLP") and got.skipped == ("L0H2", "L1H3")
        masks = np.array([[0.0], [1.0]])
        free = pinned_reference(tiny[1], rows, [suspect], [], masks, direction, "recompute")
        nie = free[1] - free[0]
        np.testing.assert_allclose(got.nie, nie, atol=2e-4)
        for j, name in enumerate(got.witnesses):
            w = parse_components(name, model.config)
            f = pinned_reference(tiny[1], rows, [suspect], w, masks, direction, "recompute")
            expected = abs((f[1] - f[0]).mean()) - abs(nie.mean())
            np.testing.assert_allclose(got.importance[j], expected, atol=3e-4)
        lo, hi = got.ci().T
        assert np.all(lo <= got.importance + 1e-12) and np.all(got.importance <= hi + 1e-12)
    unpinned = pinned_reference(tiny[1], rows, [suspect], [], masks, "noising", "recompute")
    upstream = pinned_reference(tiny[1], rows, [suspect], parse_components("L0H2", model.config), masks,
                                "noising", "recompute")
    np.testing.assert_allclose(upstream, unpinned, atol=1e-5)


def test_with_pin_swaps_role_position_witnesses_against_hf(tiny, tiny_model):
    """A problem built with one witness, then given another (at a role position, so per prompt) by
    `with_pin` without rerunning its base runs, against HF hooks; a site kind it does not hold is refused."""
    model, _ = tiny_model
    rows = prompt_rows(model.config.vocab_size, (7, 9, 8), seed=8)
    for row, s2 in zip(rows, (2, 6, 4)):
        row["positions"] = {"S2": s2}
    prompts = make_prompt_set(rows)
    components = parse_components("L0H1,L2MLP", model.config)
    holder = build_problem(model, prompts, components, pin=parse_components("L2H3", model.config))
    swapped = holder.with_pin(prompts, parse_components("L1H2@S2", model.config))
    masks = some_masks(2, np.random.default_rng(5))
    got = evaluate(swapped, masks)
    assert_matches_s2_witness(tiny, model, rows, components, masks, got)
    with pytest.raises(InputError, match=r"holds no \['resid_pre'\] sites"):
        holder.with_pin(prompts, parse_components("L1RESID@3", model.config))
