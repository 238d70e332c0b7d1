"""The IOI analysis behind `intjax demo` and `intjax ioi`: NIE of every head in both
directions, exact pairwise and third-order interactions among the strongest heads,
linear versus exact NIE, the theorem table, figures and a report."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from intjax.model.gpt2 import GPT2
from intjax.estimands.theorems import theorem_rows
from intjax.patch_run import PatchOptions, run_patch, run_theorems
from intjax.patching.components import parse_components
from intjax.results import versions, write_results
from intjax.studies import figures, int_report
from intjax.studies.int_report import markdown_table
from intjax.studies.circuit import is_gpt2_small
from intjax.studies.distance_scaling import distance_scaling_study, ioi_distance_problems, plot_distance_scaling
from intjax.studies.ioi_int import IOIStudyOptions, run_ioi_studies, strongest_heads, studies_arrays
from intjax.tasks.ioi import ioi_prompts


@dataclasses.dataclass(frozen=True)
class IOIAnalysisOptions:
    """How large the IOI analysis is."""

    n_prompts: int = 32
    seed: int = 0
    corruption: str = "abc"  # or "s2_flip"
    pair_pool: int = 16  # pairs among this many strongest heads (by max mean |NIE|)
    triple_pool: int = 8  # third order among this many
    theorem_heads: int = 4  # theorem table over this many strongest heads (float64)
    theorem_order: int = 3
    theorem_prompts: int = 8  # the identities hold per prompt: a few prompts check them
    bound_order: int = 2  # the sampled-sup bound for sets up to this order (`intjax theorems` does all)
    distance_heads: int = 5  # the distance-scaling study over pairs and triples of this many heads (0 skips)
    distance_prompts: int = 16
    top: int = 10  # rows in the report's tables
    memory_gb: float = 1.0
    quiet: bool = False
    studies: IOIStudyOptions = IOIStudyOptions()  # faithfulness, invisible/inflated heads, search, remedies


def _float64(model: GPT2) -> GPT2:
    return jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a, model)


def run_ioi_analysis(model: GPT2, tokenizer: Any, out: str | Path, options: IOIAnalysisOptions = IOIAnalysisOptions(),
                     model_name: str = "") -> Path:
    """Run the analysis, write `out/report.md`, figures, values.npz and summary.json; returns the report."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    data = ioi_prompts(tokenizer, options.n_prompts, seed=options.seed, corruption=options.corruption)
    data.write_jsonl(out / "prompts.jsonl")
    heads = parse_components("heads", model.config)
    names = [h.name for h in heads]
    ckpt = out / "checkpoints"
    base = dict(memory_gb=options.memory_gb, quiet=options.quiet)

    arrays, items, timings = run_patch(model, data.prompts, heads, PatchOptions(linear=True, **base), ckpt / "heads")
    pie, pie_items, t = run_patch(model, data.prompts, heads, PatchOptions(semantics="frozen", **base),
                                  ckpt / "heads_frozen")
    for d in ("noising", "denoising"):
        arrays[f"pie_{d}"], items[f"pie_{d}"] = pie[f"pie_{d}"], pie_items[f"pie_{d}"]
    timings.update({f"pie_{k}": v for k, v in t.items()})
    pool2 = strongest_heads(arrays["nie_noising"], arrays["nie_denoising"], min(options.pair_pool, len(heads)))
    pool3 = strongest_heads(arrays["nie_noising"], arrays["nie_denoising"], min(options.triple_pool, len(heads)))
    for pool, order in ((pool2, 2), (pool3, 3)):
        comps = [heads[i] for i in pool]
        a, it, t = run_patch(model, data.prompts, comps, PatchOptions(order=order, **base), ckpt / f"order{order}")
        for d in ("noising", "denoising"):
            arrays[f"int{order}_{d}"], items[f"int{order}_{d}"] = a[f"int{order}_{d}"], it[f"int{order}_{d}"]
        timings.update({f"order{order}_{k}": v for k, v in t.items()})

    t0 = time.perf_counter()
    theorems = None  # theorem_heads = 0 skips the table (float64 on a large model's CPU run is slow)
    if options.theorem_heads > 0:
        thm_heads = [heads[i] for i in strongest_heads(arrays["nie_noising"], arrays["nie_denoising"],
                                                  options.theorem_heads)]
        x64 = jax.config.jax_enable_x64
        jax.config.update("jax_enable_x64", True)
        try:
            prompts = data.prompts.subset(range(min(options.theorem_prompts, len(data))))
            theorems = run_theorems(_float64(model), prompts, thm_heads, order=options.theorem_order, n_check=2,
                                    cut=parse_components("heads,mlps", model.config),
                                    bound_order=options.bound_order, bound_polish_starts=1)
        finally:
            jax.config.update("jax_enable_x64", x64)
    timings["theorems_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    distance = None
    if options.distance_heads > 1:
        dist_heads = [heads[i] for i in strongest_heads(arrays["nie_noising"], arrays["nie_denoising"],
                                                        min(options.distance_heads, len(heads)))]
        problems = ioi_distance_problems(model, tokenizer, dist_heads, min(options.distance_prompts, len(data)),
                                         seed=options.seed)
        distance = distance_scaling_study(problems)
        (out / "distance_scaling.json").write_text(json.dumps(dict(summary=distance.summary(),
                                                                   rows=distance.rows()), indent=1))
    timings["distance_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    te = float((arrays["metric_corrupted"] - arrays["metric_clean"]).mean())
    studies = run_ioi_studies(model, tokenizer, data, arrays["nie_noising"], arrays["nie_denoising"], te,
                              options.studies, seed=options.seed, checkpoints=ckpt,
                              memory_bytes=int(options.memory_gb * 2**30), quiet=options.quiet)
    study_arrays, study_items = studies_arrays(studies)
    arrays.update(study_arrays), items.update(study_items)
    timings.update(studies.seconds)
    timings["studies_s"] = time.perf_counter() - t0

    L, H = model.config.n_layers, model.config.n_heads
    figs = {
        "nie": figures.nie_heatmaps(arrays["nie_noising"].mean(0).reshape(L, H),
                                    arrays["nie_denoising"].mean(0).reshape(L, H), out / "nie_heads.png"),
        "linear": figures.linear_vs_exact(arrays["nie_noising"].mean(0), arrays["linear_noising"].mean(0),
                                          out / "linear_vs_exact.png"),
    }
    for order in (2, 3):
        mean = arrays[f"int{order}_noising"].mean(0)
        top = np.argsort(-np.abs(mean))[: options.top]
        figs[f"int{order}"] = figures.interaction_bars(
            [items[f"int{order}_noising"][i] for i in top], mean[top], out / f"interactions_order{order}.png",
            f"strongest order-{order} interactions (noising)")
    figs.update(int_report.write_figures(studies, out))
    if distance is not None:
        figs["distance"] = plot_distance_scaling(distance, out / "distance_scaling.png")
    timings["total_s"] = time.perf_counter() - t_start
    summary = dict(command="ioi", model=model_name, n_prompts=len(data), n_skipped_words=data.n_skipped,
                   options=dataclasses.asdict(options), pair_pool=[names[i] for i in pool2],
                   triple_pool=[names[i] for i in pool3], circuit=studies.circuit,
                   circuit_source=studies.circuit_source, timings=timings, versions=versions())
    write_results(out, arrays, items, summary)
    if theorems is not None:
        (out / "theorems.json").write_text(json.dumps(theorems, indent=2))
    report = out / "report.md"
    report.write_text(_report(model_name, data, arrays, items, theorems, figs, options, timings)
                      + "\n" + int_report.studies_report(studies, is_gpt2_small(model))
                      + "\n" + int_report.distance_section(distance))
    return report


def _fmt(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"order {k}: {_fmt(v)}" for k, v in value.items())
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _theorem_table(theorems: dict | None) -> list[str]:
    if theorems is None:
        return ["Skipped (`--theorem-heads 0`); `intjax theorems` runs it on its own.", ""]
    rows = [(r["check"], r["value"], r["tolerance"], r["verdict"], r["meaning"]) for r in theorem_rows(theorems)]
    slopes = [(", ".join(r["set"]), f"{r['frozen']:.2f}", str(r["predicted_frozen"]), f"{r['recompute']:.2f}",
               str(r.get("predicted_recompute", "—")), " → ".join(r.get("chain", [])) or "—")
              for r in theorems["slopes_by_set"]]
    return [markdown_table(rows, ("check", "value", "tolerance", "verdict", "what it compares")), "",
            f"Checked on {len(theorems['checked_sets'])} sets ({', '.join(theorems['checked_sets'][:3])}, …), "
            f"{theorems['n_components']} heads, float64. Distance-scaling slope per set (frozen: every analysed "
            "head pinned; recompute: a patched member blocks the paths of the members it reads, one order of t "
            "per chain of members):", "",
            markdown_table(slopes, ("set", "frozen", "predicted", "recompute", "predicted", "longest chain")), ""]


def _theorem_reading(theorems: dict | None) -> list[str]:
    if theorems is None:
        return []
    rows = {r["check"]: r for r in theorem_rows(theorems)}
    failed = [name for name, r in rows.items() if r["verdict"] == "fail"]
    frozen_dual = rows.get("duality (frozen)")
    recompute_dual = rows.get("duality (recompute)")
    lines = [f"- Theorem table: {sum(r['verdict'] == 'pass' for r in rows.values())} checks pass"
             + (f", {len(failed)} fail ({', '.join(failed)})." if failed else ", none fails.")]
    if frozen_dual is not None and recompute_dual is not None:
        lines.append(f"- Noising and denoising NIE are related through interactions only under frozen semantics "
                     f"over a complete cut (here: {frozen_dual['verdict']}, residual {frozen_dual['value']}); "
                     f"under recompute semantics denoising NIE and −Σ_{{T∋i}} INT_T (noising) differ by up to "
                     f"{recompute_dual['value']} of the effect scale, so neither direction's NIE can be read "
                     "off the other's.")
    return lines


def _report(model_name, data, arrays, items, theorems, figs, options, timings) -> str:
    clean = arrays["metric_clean"][:, 0]
    corrupted = arrays["metric_corrupted"][:, 0]
    names = items["nie_noising"]
    noise, denoise = arrays["nie_noising"].mean(0), arrays["nie_denoising"].mean(0)
    pie_n, pie_d = arrays["pie_noising"].mean(0), arrays["pie_denoising"].mean(0)
    lin = arrays["linear_noising"].mean(0)
    te = float((corrupted - clean).mean())
    k = options.top
    by_noise = np.argsort(noise)[:k]  # most negative: patching the head breaks the behaviour
    by_denoise = np.argsort(-denoise)[:k]  # most positive: the head restores it alone
    ratio = (np.abs(noise) + 1e-9) / (np.abs(denoise) + 1e-9)
    lopsided = [i for i in np.argsort(-np.abs(np.log(ratio))) if max(abs(noise[i]), abs(denoise[i])) > 0.05 * abs(te)][:5]
    pair_mean = arrays["int2_noising"].mean(0)
    top_pairs = np.argsort(-np.abs(pair_mean))[:k]
    trip_mean = arrays["int3_noising"].mean(0)
    top_trips = np.argsort(-np.abs(trip_mean))[:k]
    nie_of = dict(zip(names, noise))
    best_pair = items["int2_noising"][top_pairs[0]]
    members = best_pair.split(",")
    corr = float(np.corrcoef(noise, lin)[0, 1]) if np.std(lin) > 0 else float("nan")
    gap = np.abs(noise - lin)
    sum_nie = float(noise.sum())
    parts = [
        f"# IOI analysis: {model_name}",
        "",
        f"{len(data)} prompts (Wang et al. 2022 templates, {options.corruption.upper()} corruption, seed "
        f"{options.seed}); metric logit(IO) − logit(S) at the last position. Every number is a mean over "
        "prompts; per-prompt values are in `values.npz` (item names in `summary.json`).",
        "",
        f"- clean: mean logit difference {clean.mean():.3f}, IO preferred on {100 * (clean > 0).mean():.1f}% of prompts",
        f"- corrupted: mean logit difference {corrupted.mean():.3f}; total effect TE = {te:.3f}",
        f"- the sum of all single-head noising NIEs is {sum_nie:.3f}, against the {te:.3f} of patching "
        "everything: the difference is interactions (and the paths that avoid the heads).",
        "",
        "## NIE of every head",
        "",
        "![NIE heatmaps](nie_heads.png)",
        "",
        "PIE is the same patch with every other head pinned at its base-run value (frozen semantics): the "
        "head's effect through paths that avoid the other heads. NIE − PIE is what flows through the other "
        "heads' responses.",
        "",
        markdown_table([(names[i], f"{noise[i]:+.3f}", f"{pie_n[i]:+.3f}", f"{noise[i] - pie_n[i]:+.3f}",
                         f"{denoise[i]:+.3f}") for i in by_noise],
               ("head (strongest noising NIE)", "noising NIE", "noising PIE", "NIE − PIE", "denoising NIE")),
        "",
        markdown_table([(names[i], f"{denoise[i]:+.3f}", f"{pie_d[i]:+.3f}", f"{denoise[i] - pie_d[i]:+.3f}",
                         f"{noise[i]:+.3f}") for i in by_denoise],
               ("head (strongest denoising NIE)", "denoising NIE", "denoising PIE", "NIE − PIE", "noising NIE")),
        "",
        "Heads whose effect depends most on the direction (|noising| vs |denoising| NIE; the two directions "
        "are different games, not related by sums of interactions under recompute semantics: see the "
        "duality rows of the theorem table):",
        "",
        markdown_table([(names[i], f"{noise[i]:+.3f}", f"{denoise[i]:+.3f}") for i in lopsided],
               ("head", "noising NIE", "denoising NIE")),
        "",
        f"## Strongest interactions (exact, among the {len(set(','.join(items['int2_noising']).split(',')))} "
        "strongest heads)",
        "",
        "![pairwise](interactions_order2.png) ![third order](interactions_order3.png)",
        "",
        markdown_table([(items["int2_noising"][i], f"{pair_mean[i]:+.3f}",
                         f"{arrays['int2_denoising'].mean(0)[i]:+.3f}") for i in top_pairs],
                       ("pair", "INT noising", "INT denoising")),
        "",
        markdown_table([(items["int3_noising"][i], f"{trip_mean[i]:+.3f}",
                         f"{arrays['int3_denoising'].mean(0)[i]:+.3f}") for i in top_trips],
                       ("triple", "INT noising", "INT denoising")),
        "",
        "## Linear (attribution) estimate versus exact NIE",
        "",
        "![linear vs exact](linear_vs_exact.png)",
        "",
        f"Correlation over heads {corr:.3f}; largest gap {gap.max():.3f} at {names[int(gap.argmax())]} "
        f"(exact {noise[int(gap.argmax())]:+.3f}, linear {lin[int(gap.argmax())]:+.3f}).",
        "",
        "## Theorem table (float64)",
        "",
        *_theorem_table(theorems),
        "## Reading",
        "",
        f"- The heads that matter most when noised are {', '.join(names[i] for i in by_noise[:3])}; when "
        f"denoised, {', '.join(names[i] for i in by_denoise[:3])}. Where the two lists disagree, a head's "
        "single-patch effect is carried by its interactions with the rest of the circuit.",
        f"- The strongest pairwise interaction is {best_pair}: {pair_mean[top_pairs[0]]:+.3f}, against NIEs of "
        f"{', '.join(f'{m} {nie_of[m]:+.3f}' for m in members)}. "
        + ("Its sign is opposite to its members' effects: together they do less than the sum of their parts "
           "(redundancy/backup)." if np.sign(pair_mean[top_pairs[0]]) != np.sign(sum(nie_of[m] for m in members))
           else "Its sign matches its members' effects: together they do more than the sum of their parts."),
        *_theorem_reading(theorems),
        "",
        f"Run time {timings['total_s']:.1f} s. Files: values.npz, summary.json, theorems.json, prompts.jsonl, "
        "nie_heads.png, interactions_order2.png, interactions_order3.png, linear_vs_exact.png, faithfulness.png, "
        "search.png, visibility_noising.png, visibility_denoising.png.",
        "",
    ]
    return "\n".join(parts)
