"""`intjax patch` end to end: files, item names, and values against the HF reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from intjax.cli import main
from intjax.results import read_estimates, read_results
from test_patching import prompt_rows, reference_values
from intjax.patching import parse_components


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_patch_writes_nie_matching_reference(tiny, tmp_path):
    folder, hf_model = tiny
    rows = prompt_rows(300, (6, 8))
    data = write_jsonl(tmp_path / "p.jsonl", rows)
    spec = "L0H1,L2MLP,L1H3@2"
    assert main(["patch", "--model", str(folder), "--data", str(data), "--components", spec,
                 "--out", str(tmp_path / "out"), "--quiet"]) == 0
    arrays, summary = read_results(tmp_path / "out")
    (tmp_path / "probe").touch()  # result files get the permissions of any new file (not mkstemp's 0600)
    for name in ("values.npz", "summary.json"):
        assert (tmp_path / "out" / name).stat().st_mode == (tmp_path / "probe").stat().st_mode
    assert summary["arrays"]["nie_noising"]["items"] == ["L0H1", "L2MLP", "L1H3@2"]
    assert summary["arrays"]["metric_clean"]["shape"] == [2, 1]
    assert set(arrays) == {"metric_clean", "metric_corrupted", "nie_noising", "nie_denoising"}
    import intjax

    comps = parse_components(spec, intjax.load_model(folder)[0].config)
    masks = np.concatenate([np.zeros((1, 3)), np.eye(3)])
    for direction in ("noising", "denoising"):
        ref = reference_values(hf_model, rows, comps, masks, direction, "counterfactual", "recompute")
        np.testing.assert_allclose(arrays[f"nie_{direction}"], (ref[1:] - ref[:1]).T, atol=2e-4)
    ref = reference_values(hf_model, rows, comps, masks[:1], "noising", "counterfactual", "recompute")
    np.testing.assert_allclose(arrays["metric_clean"][:, 0], ref[0], atol=2e-5)
    # the same files read back as typed estimates: values, item names and what they were computed with
    estimates = read_estimates(tmp_path / "out")
    nie = estimates["nie_denoising"]
    assert nie.items == ("L0H1", "L2MLP", "L1H3@2") and nie.options["direction"] == "denoising"
    assert nie.options["semantics"] == "recompute" and nie.options["source"] == "counterfactual"
    np.testing.assert_array_equal(nie.column("L2MLP"), arrays["nie_denoising"][:, 1])
    np.testing.assert_allclose(nie.standard_error(), arrays["nie_denoising"].std(0, ddof=1) / np.sqrt(2))


def test_estimates_refuse_values_that_do_not_match_their_items():
    from intjax.results import Estimate

    with pytest.raises(ValueError, match="K = 2 item names"):
        Estimate(np.zeros((4, 3)), ("a", "b"))
    with pytest.raises(KeyError, match="no item 'c'"):
        Estimate(np.zeros((4, 2)), ("a", "b")).column("c")


def test_patch_reads_text_prompts(tiny, tiny_model, tmp_path, capsys):
    folder, _ = tiny
    tok = tiny_model[1]
    row = dict(clean="When Mary and John went to the store, John gave a drink to",
               corrupted="When Anna and Bob went to the store, Bob gave a drink to",
               target="x", foil="y")  # single bytes: one token in any byte-level BPE
    assert len(tok.encode(row["clean"]).ids) == len(tok.encode(row["corrupted"]).ids)
    data = write_jsonl(tmp_path / "p.jsonl", [row])
    assert main(["patch", "--model", str(folder), "--data", str(data), "--components", "heads",
                 "--direction", "denoising", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    arrays, _ = read_results(tmp_path / "o")
    assert arrays["nie_denoising"].shape == (1, 12) and "nie_noising" not in arrays
    data = write_jsonl(tmp_path / "q.jsonl", [dict(row, target=" Mary and John")])
    assert main(["patch", "--model", str(folder), "--data", str(data), "--components", "heads",
                 "--out", str(tmp_path / "o2"), "--quiet"]) == 2
    assert "line 1: ' Mary and John' is" in capsys.readouterr().err


def test_patch_reports_bad_line(tiny, tmp_path, capsys):
    rows = prompt_rows(300, (6, 6))
    rows[1]["corrupted_ids"] = rows[1]["corrupted_ids"][:4]
    data = write_jsonl(tmp_path / "p.jsonl", rows)
    assert main(["patch", "--model", str(tiny[0]), "--data", str(data), "--components", "heads",
                 "--out", str(tmp_path / "o")]) == 2
    assert "line 2: clean prompt has 6 tokens but corrupted has 4" in capsys.readouterr().err


def test_patch_order_and_linear_arrays(tiny, tmp_path, capsys):
    folder, hf_model = tiny
    rows = prompt_rows(300, (6, 8))
    data = write_jsonl(tmp_path / "p.jsonl", rows)
    spec = "L0H1,L2MLP,L1H3@2"
    assert main(["patch", "--model", str(folder), "--data", str(data), "--components", spec,
                 "--direction", "noising", "--order", "3", "--linear", "--out", str(tmp_path / "o")]) == 0
    # the plan counts every subset of 3 components (2^3 = 8) on each of the 2 prompts before it starts
    err = capsys.readouterr().err
    assert "8 subsets x 2 prompts = 16 patched runs, linear estimates" in err
    assert err.index("estimated") < err.index("[1/1] patching (noising)") < err.index("done in")
    arrays, summary = read_results(tmp_path / "o")
    assert summary["arrays"]["int2_noising"]["items"] == ["L0H1,L2MLP", "L0H1,L1H3@2", "L2MLP,L1H3@2"]
    assert summary["arrays"]["int3_noising"]["items"] == ["L0H1,L2MLP,L1H3@2"]
    assert arrays["linear_noising"].shape == (2, 3)
    import intjax
    from intjax.estimands.mobius import subset_masks, subsets_up_to

    comps = parse_components(spec, intjax.load_model(folder)[0].config)
    subsets = subsets_up_to(3, 3)
    ref = reference_values(hf_model, rows, comps, subset_masks(subsets, 3), "noising", "counterfactual", "recompute")
    f = dict(zip(subsets, ref))
    np.testing.assert_allclose(arrays["int2_noising"][:, 0], f[(0, 1)] - f[(0,)] - f[(1,)] + f[()], atol=2e-4)
    triple = f[(0, 1, 2)] - f[(0, 1)] - f[(0, 2)] - f[(1, 2)] + f[(0,)] + f[(1,)] + f[(2,)] - f[()]
    np.testing.assert_allclose(arrays["int3_noising"][:, 0], triple, atol=3e-4)


def test_theorems_command_writes_table(tiny, tmp_path, capsys):
    rows = prompt_rows(300, (7, 7))
    for r in rows:  # IOI-like: clean and corrupted end in the same token
        r["corrupted_ids"][-1] = r["clean_ids"][-1]
    data = write_jsonl(tmp_path / "p.jsonl", rows)
    try:
        assert main(["theorems", "--model", str(tiny[0]), "--data", str(data), "--components",
                     "L0H1,L1MLP,L2H0", "--order", "2", "--n-check", "2", "--out", str(tmp_path / "t")]) == 0
    finally:
        import jax

        jax.config.update("jax_enable_x64", False)
    table = json.loads((tmp_path / "t" / "theorems.json").read_text())
    # fresh scan path vs chunked sweep (a code-path check), slopes against the causal structure
    assert table["identity_max_residual"] < 1e-9
    by_set = {tuple(r["set"]): r for r in table["slopes_by_set"]}
    for members, row in by_set.items():
        assert abs(row["frozen"] - 2) < 0.15 and abs(row["recompute"] - row["predicted_recompute"]) < 0.15
    for members, row in by_set.items():  # every pair of these three is a chain (later layers, or an MLP)
        assert row["chain"] == list(members) and row["predicted_recompute"] == 1
    # the default cut (every head and MLP) with a shared last token: duality claimed under frozen only
    assert table["duality"]["frozen"]["holds"] and not table["duality"]["recompute"]["holds"]
    captured = capsys.readouterr()
    assert "duality (frozen)" in captured.out and "  measured  " in captured.out and "  fail  " not in captured.out
    # the plan with its estimate first, then each part of the table as it starts
    err = captured.err
    assert err.index("intjax theorems (3 components, order 2, 2 prompts, float64), estimated") \
        < err.index("integral of nested-JVP") < err.index("sampled sup on face 2 of 2 (order 2)") \
        < err.index("[1/1] theorem table: done in")  # a line per face of the sampled sup: no long silence
