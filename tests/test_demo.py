"""`intjax demo` end to end in its small smoke mode: the report holds real numbers."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from intjax.cli import main
from intjax.results import read_results
from intjax.studies.heldout_search import split_indices
from intjax.studies.readings import read_pair_per_prompt


def test_demo_smoke_writes_report_figures_and_values(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--smoke", "--quiet"]) == 0
    assert f"report: {out / 'report.md'}" in capsys.readouterr().out
    report = (out / "report.md").read_text()
    for section in ("## NIE of every head", "## Strongest interactions", "## Linear (attribution)",
                    "## Theorem table", "## Summary", "## The circuit", "## Faithfulness",
                    "## Invisible and inflated heads", "## Greedy versus combinatorial search",
                    "## The remedies and where each fails", "## Interactions and distance on real prompts"):
        assert section in report
    residual, verdict = re.search(r"\| Möbius identity \| ([0-9.e+-]+) \| [^|]+ \| (\w+) \|", report).groups()
    assert float(residual) < 1e-9 and verdict == "pass"
    # the duality is claimed only under frozen semantics over a complete cut (every head and MLP here)
    assert re.search(r"\| duality \(frozen\) \| [^|]+ \| [^|]+ \| pass \|", report)
    assert re.search(r"\| duality \(recompute\) \| [^|]+ \| — \| measured \|", report)
    # the recompute gap the summary quotes is theorems.json's
    quoted = float(re.search(r"differ by up to ([0-9.e+-]+) rel", report).group(1))
    theorems = json.loads((out / "theorems.json").read_text())
    assert quoted == pytest.approx(theorems["duality"]["recompute"]["max_rel_residual"], rel=1e-2)
    assert "### Witnesses of" in report and "noising PIE" in report
    # summary and sign box first, the footer last; no reading claims redundancy from a sign alone
    assert report.index("## Summary") < report.index("How to read the signs") < report.index("## NIE of every head")
    assert report.rstrip().splitlines()[-1].startswith("Run time") and "## Files and run" in report
    assert report.index("## Claims of the paper") < report.index("## Summary")
    _check_claims_table(report)
    _check_pair_readings(report, out)
    for png in ("nie_heads.png", "interactions_order2.png", "interactions_order3.png", "linear_vs_exact.png",
                "faithfulness.png", "search.png", "visibility_noising.png", "visibility_denoising.png",
                "distance_scaling.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    arrays, summary = read_results(out)
    assert arrays["nie_noising"].shape == (8, 16) and np.isfinite(arrays["nie_noising"]).all()
    assert len(summary["arrays"]["int2_noising"]["items"]) == 15  # pairs among the 6 strongest heads
    # faithfulness: 2 resamples (smoke) × mean/resample/zero (values against HF in test_ioi_studies)
    assert arrays["faithfulness"].shape == (2, 3) and np.isfinite(arrays["faithfulness"]).all()
    assert summary["circuit"] and "discovered" in summary["circuit_source"]
    assert summary["heldout_split"] == dict(select=4, estimate=4)  # 8 smoke prompts, halved
    # the remedies' joint effect is the same whichever unit partitions the heads
    rows = re.findall(r"\| noising \| (head|class|layer) \| \d+ \| [^|]+ \| ([0-9.+-]+) ± [0-9.]+ \|", report)
    assert len(rows) == 3 and len({v for _, v in rows}) == 1
    # the shipped model does the task: IO preferred on the clean prompts
    assert (arrays["metric_clean"] > 0).mean() >= 0.75
    _check_rerender(out, tmp_path / "rendered", report)


def _check_rerender(out, again, report: str) -> None:
    """The saved analysis renders, without the model or any sweep, to the same report; its arrays are values.npz's."""
    from intjax.ioi.saved import load_analysis
    from intjax.report import render

    analysis = load_analysis(out)
    assert render(analysis, again).read_text() == report
    arrays, _ = read_results(out)
    assert set(arrays) == set(analysis.results)
    for key, values in arrays.items():
        np.testing.assert_array_equal(analysis.results[key].values, values)
    assert sorted(p.name for p in again.glob("*.png")) == sorted(p.name for p in out.glob("*.png"))


def _check_claims_table(report: str) -> None:
    """Every claims row's verdict agrees with its own numbers: 'supported' needs a CI on one side of its null
    (1 for the '> 1' row, else 0) and Holm p < 0.05; a CI across the null is never 'supported'."""
    cell = r"((?:[^|\\]|\\\|)+)"  # a table cell; '\|' inside it is an escaped bar
    rows = re.findall(rf"^\| {cell} \| {cell} \| ([-+0-9.%]+) \[([-+0-9.%]+), ([-+0-9.%]+)\] \| ([^|]+) \| "
                      r"(\w[\w ]+) \|$", report, flags=re.M)
    assert len(rows) >= 5
    for claim, test, _, lo, hi, p, verdict in rows:
        null = 1.0 if "(> 1" in test else 0.0
        lo, hi = (float(x.rstrip("%")) for x in (lo, hi))
        if verdict == "supported":
            assert (lo > null or hi < null) and float(p) < 0.05, (claim, lo, hi, p)
        if lo < null < hi:
            assert verdict == "inconclusive", (claim, lo, hi, verdict)
    assert "4-layer model trained on IOI, not GPT-2 small" in report


def _check_pair_readings(report: str, out) -> None:
    """The interactions table's pairs are the strongest on the selection half and its readings are those of
    the per-prompt values on the other half (values.npz, the same split)."""
    arrays, summary = read_results(out)
    items = summary["arrays"]["int2_noising"]["items"]
    names = summary["arrays"]["nie_noising"]["items"]
    select, score = split_indices(arrays["nie_noising"].shape[0], 0.5, 0)
    table = re.findall(r"^\| (L\dH\d,L\dH\d) \| [^|]+ \| ([^|]+) \| [^|]+ \| ([^|]+) \|", report, flags=re.M)
    top = np.argsort(-np.abs(arrays["int2_noising"][select].mean(0)))[:len(table)]
    assert table and [pair for pair, _, _ in table] == [items[i] for i in top]
    for (pair, cell_n, cell_d), i in zip(table, top):
        a, b = pair.split(",")
        for d, cell in (("noising", cell_n), ("denoising", cell_d)):
            nie = arrays[f"nie_{d}"][score]
            reading, _ = read_pair_per_prompt(a, b, nie[:, names.index(a)], nie[:, names.index(b)],
                                              arrays[f"int2_{d}"][score][:, i], d)
            assert cell.strip() == reading.label(), (pair, d, cell)


def test_ioi_without_theorems_and_its_rerun_reads_every_stage_back(tmp_path, capsys):
    """`--theorem-heads 0` skips the float64 table (slow on large models) and says so. The same command
    again plans stages 1-6 as saved by the first run (the report is redone) and writes the same values."""
    out = tmp_path / "ioi"
    args = ["ioi", "--model", "ioi-small", "--out", str(out), "--smoke", "--theorem-heads", "0",
            "--resamples", "2", "--search-pool", "4", "--search-k", "2"]
    assert main([*args, "--quiet"]) == 0
    report = (out / "report.md").read_text()
    assert "Skipped (`--theorem-heads 0`)" in report and not (out / "theorems.json").exists()
    arrays, _ = read_results(out)
    assert arrays["faithfulness"].shape == (2, 3)
    capsys.readouterr()
    assert main(args) == 0
    plan = [line for line in capsys.readouterr().err.splitlines() if line.startswith("  ")][:7]
    assert all("saved by an earlier run" in line for line in plan[:6]) and "saved" not in plan[6], plan
    again, _ = read_results(out)
    for key, value in arrays.items():
        np.testing.assert_array_equal(again[key], value, err_msg=key)
