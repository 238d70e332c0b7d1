"""The IOI analysis behind `intjax demo` and `intjax ioi`: NIE of every head in both
directions, exact pairwise and third-order interactions among the strongest heads,
linear versus exact NIE, the theorem table, figures and a report."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Optional

import jax.numpy as jnp
import numpy as np

from intjax.model.protocol import PatchableModel
from intjax.estimands.theorems import theorem_rows
from intjax.runs.patch import PatchOptions, run_patch
from intjax.runs.theorems import run_theorems
from intjax.patching.components import parse_components
from intjax.results import Results, versions, write_results
from intjax.runtime import cast_floats, x64
from intjax.ioi import report as ioi_report
from intjax.report.ioi_claims import claims_section, ioi_claim_tests, label_claims_of
from intjax.studies import figures
from intjax.studies.markdown import markdown_table
from intjax.ioi.circuit import ROLES, is_gpt2_small, read_circuit, stage_order
from intjax.errors import InputError
from intjax.ioi.options import IOIAnalysisOptions
from intjax.ioi.plan import Sizes, fit_budget, stage_seconds
from intjax.ioi.distance import ioi_distance_problems
from intjax.studies.distance_scaling import distance_scaling_study, plot_distance_scaling
from intjax.patching.problem import build_problem
from intjax.progress import Stages, mean_length, seconds_per_forward
from intjax.studies.order_split import order_split, order_split_sentence
from intjax.studies.readings import read_directions, read_pair_per_prompt, sign_box
from intjax.studies.heldout_search import split_indices
from intjax.studies.stats import standard_error as _se
from intjax.sweeps.context import SweepContext
from intjax.sweeps.vertex_cache import VertexCache
from intjax.ioi.studies import (completeness_summary, run_ioi_studies, strongest_heads,
                                studies_arrays)
from intjax.ioi.task import GPT2_SMALL_IOI_CIRCUIT, ioi_prompts


STAGE_NAMES = ("NIE, PIE and linear estimates of every head", "pairwise/higher split of the joint effect",
               "exact interactions (orders 2 and 3)", "theorem table", "distance scaling",
               "circuit, remedies, witnesses, search, faithfulness, completeness", "figures and report")


def analysis_sizes(options: IOIAnalysisOptions, n_prompts: int) -> Sizes:
    """The sizes of `options` that set the analysis's cost."""
    o, s = options, options.studies
    return Sizes(n_prompts=n_prompts, split_pairs=o.split_pairs, pair_pool=o.pair_pool, triple_pool=o.triple_pool,
                 theorem_heads=o.theorem_heads, theorem_order=o.theorem_order, theorem_prompts=o.theorem_prompts,
                 distance_heads=o.distance_heads, distance_prompts=o.distance_prompts, n_resamples=s.n_resamples,
                 faithfulness_prompts=s.faithfulness_prompts or n_prompts, n_ablations=len(s.ablations),
                 search_pool=s.search_pool, search_k=s.search_k)


def with_sizes(options: IOIAnalysisOptions, sizes: Sizes) -> IOIAnalysisOptions:
    """`options` with the analysis sizes of `sizes`."""
    studies = dataclasses.replace(options.studies, n_resamples=sizes.n_resamples, search_pool=sizes.search_pool,
                                  search_k=sizes.search_k, faithfulness_prompts=sizes.faithfulness_prompts)
    return dataclasses.replace(options, split_pairs=sizes.split_pairs, pair_pool=sizes.pair_pool,
                               triple_pool=sizes.triple_pool, theorem_heads=sizes.theorem_heads,
                               theorem_prompts=sizes.theorem_prompts, distance_prompts=sizes.distance_prompts,
                               studies=studies)


def _n_circuit_units(spec: str, model: PatchableModel) -> int:
    """Completeness units of the circuit of `spec`: its heads, or its classes beyond MAX_EXHAUSTIVE heads (a
    circuit still to be discovered: one more head than classes per two classes, as on ioi-small)."""
    from intjax.ioi.completeness import MAX_EXHAUSTIVE

    if spec == "wang2022" or (spec == "auto" and is_gpt2_small(model)):
        heads, classes = sum(len(v) for v in GPT2_SMALL_IOI_CIRCUIT.values()), len(GPT2_SMALL_IOI_CIRCUIT)
    elif spec not in ("auto", "discover"):
        circuit = read_circuit(spec)
        heads, classes = sum(len(v) for v in circuit.values()), len(circuit)
    else:
        heads = classes = len(ROLES) + len(ROLES) // 2
    return heads if heads <= MAX_EXHAUSTIVE else classes


def _n_classes(spec: str, model: PatchableModel) -> int:
    """How many classes the circuit of `spec` has (an estimate for a circuit still to be discovered)."""
    if spec == "wang2022" or (spec == "auto" and is_gpt2_small(model)):
        return len(GPT2_SMALL_IOI_CIRCUIT)
    if spec not in ("auto", "discover"):
        return len(read_circuit(spec))
    return len(ROLES)


def plan(model: PatchableModel, data_lengths: np.ndarray, n_prompts: int,
         options: IOIAnalysisOptions) -> tuple[IOIAnalysisOptions, list[float], list[str]]:
    """The options the run will use (fitted to the budget), each stage's estimated seconds, and notes."""
    L, H = model.config.n_layers, model.config.n_heads
    per_forward = seconds_per_forward(model, mean_length(data_lengths))
    n_classes = _n_classes(options.studies.circuit, model)
    n_units = _n_circuit_units(options.studies.circuit, model) if options.studies.completeness_ablation else 0

    def estimate(sizes: Sizes) -> list[float]:
        return stage_seconds(sizes, L, H, per_forward, n_classes, n_units)

    sizes = analysis_sizes(options, n_prompts)
    notes = []
    if options.budget_minutes > 0:
        budget = 60 * options.budget_minutes
        sizes, changed = fit_budget(sizes, budget, estimate, options.fixed)
        if changed:
            notes.append(f"to fit the {options.budget_minutes:g}-min budget (--budget-min; 0 keeps the full sizes): "
                         + ", ".join(changed))
        if sum(estimate(sizes)) > budget:
            notes.append(f"even at the floors of the sizes it may shrink, the estimate exceeds the "
                         f"{options.budget_minutes:g}-min budget")
    return with_sizes(options, sizes), estimate(sizes), notes


def _float64(model: PatchableModel) -> PatchableModel:
    return cast_floats(model, jnp.float64)


def run_sweeps(out: str | Path, memory_gb: float = 1.0, quiet: bool = True) -> SweepContext:
    """The sweep context of an analysis into `out`: checkpoints in `out/checkpoints`, one vertex cache
    (each f(1_S) once per run, across stages and studies) in `out/checkpoints/vertices`."""
    checkpoints = Path(out) / "checkpoints"
    return SweepContext.of(memory_gb=memory_gb, checkpoints=checkpoints, cache=VertexCache(checkpoints / "vertices"),
                           quiet=quiet)


def run_ioi_analysis(model: PatchableModel, tokenizer: Any, out: str | Path, options: IOIAnalysisOptions = IOIAnalysisOptions(),
                     model_name: str = "", sweeps: Optional[SweepContext] = None) -> Path:
    """Run the analysis, write `out/report.md`, figures, values.npz and summary.json; returns the report.
    `sweeps` (default: 1 GiB per chunk, checkpoints in `out/checkpoints`, quiet) sets how the sweeps run."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    sweeps = run_sweeps(out) if sweeps is None else sweeps
    data = ioi_prompts(tokenizer, options.n_prompts, seed=options.seed, corruption=options.corruption)
    data.write_jsonl(out / "prompts.jsonl")
    options, estimates, notes = plan(model, data.prompts.lengths, len(data), options)
    heads = parse_components("heads", model.config)
    names = [h.name for h in heads]
    cache = sweeps.cache
    stages = Stages(STAGE_NAMES, quiet=sweeps.quiet, title=f"intjax ioi ({len(data)} prompts, {len(heads)} heads)",
                    estimates=estimates, notes=notes)

    with stages.stage(STAGE_NAMES[0], f"{len(heads)} heads x 2 directions x 2 semantics"):
        res, timings = run_patch(model, data.prompts, heads, PatchOptions(linear=True), sweeps.child("heads"))
        pie, t = run_patch(model, data.prompts, heads, PatchOptions(semantics="frozen"), sweeps.child("heads_frozen"))
        res.update({f"pie_{d}": pie[f"pie_{d}"] for d in ("noising", "denoising")})
        timings.update({f"pie_{k}": v for k, v in t.items()})
    with stages.stage(STAGE_NAMES[1], f"up to {options.split_pairs} pairs x 2 directions"):
        splits = {}
        for d in ("noising", "denoising"):
            game = sweeps.child("order_split").game(build_problem(model, data.prompts, heads, direction=d), d,
                                                    desc=f"pairwise split ({d})",
                                                    options=dict(study="order_split", max_pairs=options.split_pairs))
            splits[d] = order_split(game, max_pairs=options.split_pairs, seed=options.seed)
    with stages.stage(STAGE_NAMES[2], f"pairs among {options.pair_pool}, triples among {options.triple_pool} heads"):
        pool2 = strongest_heads(res["nie_noising"].values, res["nie_denoising"].values, min(options.pair_pool, len(heads)))
        pool3 = strongest_heads(res["nie_noising"].values, res["nie_denoising"].values, min(options.triple_pool, len(heads)))
        for pool, order in ((pool2, 2), (pool3, 3)):
            comps = [heads[i] for i in pool]
            found, t = run_patch(model, data.prompts, comps, PatchOptions(order=order), sweeps.child(f"order{order}"))
            res.update({f"int{order}_{d}": found[f"int{order}_{d}"] for d in ("noising", "denoising")})
            timings.update({f"order{order}_{k}": v for k, v in t.items()})

    with stages.stage(STAGE_NAMES[3], f"{options.theorem_heads} heads, order {options.theorem_order}, float64"
                      if options.theorem_heads else "skipped (--theorem-heads 0)"):
        t0 = time.perf_counter()
        theorems = None  # theorem_heads = 0 skips the table (float64 on a large model's CPU run is slow)
        if options.theorem_heads > 0:
            thm_heads = [heads[i] for i in strongest_heads(res["nie_noising"].values, res["nie_denoising"].values,
                                                      options.theorem_heads)]
            with x64():
                prompts = data.prompts.subset(range(min(options.theorem_prompts, len(data))))
                theorems = run_theorems(_float64(model), prompts, thm_heads, order=options.theorem_order, n_check=2,
                                        cut=parse_components("heads,mlps", model.config),
                                        bound_order=options.bound_order, bound_polish_starts=1,
                                        step=stages.note)
        timings["theorems_s"] = time.perf_counter() - t0

    with stages.stage(STAGE_NAMES[4], f"pairs and triples of {options.distance_heads} heads"
                      if options.distance_heads > 1 else "skipped"):
        t0 = time.perf_counter()
        distance = None
        if options.distance_heads > 1:
            dist_heads = [heads[i] for i in strongest_heads(res["nie_noising"].values, res["nie_denoising"].values,
                                                            min(options.distance_heads, len(heads)))]
            problems = ioi_distance_problems(model, tokenizer, dist_heads, min(options.distance_prompts, len(data)),
                                             seed=options.seed)
            distance = distance_scaling_study(problems)
            (out / "distance_scaling.json").write_text(json.dumps(dict(summary=distance.summary(),
                                                                       rows=distance.rows()), indent=1))
        timings["distance_s"] = time.perf_counter() - t0

    with stages.stage(STAGE_NAMES[5], f"{options.studies.n_resamples} faithfulness resamples, search over "
                                      f"{options.studies.search_pool} heads, completeness and minimality"):
        t0 = time.perf_counter()
        te = float((res["metric_corrupted"].values - res["metric_clean"].values).mean())
        studies = run_ioi_studies(model, tokenizer, data, res["nie_noising"].values, res["nie_denoising"].values, te,
                                  options.studies, seed=options.seed, sweeps=sweeps, step=stages.note,
                                  tick=stages.tick)
        res.update(studies_arrays(studies))
        timings.update(studies.seconds)
        timings["studies_s"] = time.perf_counter() - t0

    with stages.stage(STAGE_NAMES[6]):
        L, H = model.config.n_layers, model.config.n_heads
        figs = {
            "nie": figures.nie_heatmaps(res["nie_noising"].values.mean(0).reshape(L, H),
                                        res["nie_denoising"].values.mean(0).reshape(L, H), out / "nie_heads.png",
                                        noising_se=_se(res["nie_noising"].values).reshape(L, H),
                                        denoising_se=_se(res["nie_denoising"].values).reshape(L, H)),
            "linear": figures.linear_vs_exact(res["nie_noising"].values.mean(0), res["linear_noising"].values.mean(0),
                                              out / "linear_vs_exact.png", names),
        }
        for order in (2, 3):  # run_patch lists the sets in the same order for both directions
            n, d = res[f"int{order}_noising"].values, res[f"int{order}_denoising"].values
            top = np.argsort(-np.abs(n.mean(0)))[: options.top]

            def ci(a):  # normal 95% interval of the mean over prompts, [K, 2]
                return np.stack([a.mean(0) - 1.96 * _se(a), a.mean(0) + 1.96 * _se(a)], axis=1)[top]

            figs[f"int{order}"] = figures.interaction_bars(
                [res[f"int{order}_noising"].items[i] for i in top], n.mean(0)[top], d.mean(0)[top],
                out / f"interactions_order{order}.png",
                f"strongest order-{order} interactions (ranked by |noising INT|; bars: means; whiskers: normal 95% CI)",
                noising_ci=ci(n), denoising_ci=ci(d))
        figs.update(ioi_report.write_figures(studies, out))
        if distance is not None:
            figs["distance"] = plot_distance_scaling(distance, out / "distance_scaling.png")
        timings["total_s"] = time.perf_counter() - t_start
        summary = dict(command="ioi", model=model_name, n_prompts=len(data), n_skipped_words=data.n_skipped,
                       options=dataclasses.asdict(options), pair_pool=[names[i] for i in pool2],
                       triple_pool=[names[i] for i in pool3], circuit=studies.circuit,
                       circuit_source=studies.circuit_source,
                       heldout_split=dict(select=studies.split[0], estimate=studies.split[1]),
                       order_split={d: dataclasses.asdict(sp) for d, sp in splits.items()},
                       search_pool_rule=studies.search_pool_rule, **completeness_summary(studies), timings=timings,
                       vertex_cache=dict(hits=cache.hits, misses=cache.misses) if cache else {},
                       versions=versions(),
                       plan=dict(budget_minutes=options.budget_minutes, notes=notes,
                                 estimated_s=dict(zip(STAGE_NAMES, estimates)), measured_s=stages.seconds))
        write_results(out, res, summary)
        if theorems is not None:
            (out / "theorems.json").write_text(json.dumps(theorems, indent=2))
        report = out / "report.md"
        lines, summary = _report(model_name, data, res, theorems, options, splits)
        summary += ioi_report.studies_summary(studies) + ioi_report.distance_summary(distance)
        n_labels = sum(len(label_claims_of(studies.remedy(e, "head"))) for e in ("noising", "denoising"))
        claims = claims_section(model_name, L, is_gpt2_small(model), stage_order(studies.circuit)[0],
                                ioi_claim_tests(splits, distance, studies),
                                n_readings=2 * min(options.top, len(res["int2_noising"].items)), n_labels=n_labels)
        head = "\n".join([*claims, "## Summary", "", *summary, "", sign_box(), ""])
        report.write_text("\n".join(lines).replace("@SUMMARY@", head)
                          + "\n" + ioi_report.studies_report(studies, is_gpt2_small(model))
                          + "\n" + ioi_report.distance_section(distance) + "\n" + _footer(figs, timings))
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
            f"{theorems['n_components']} heads, float64 (mixed partials for the face integral and the sampled sup in "
            f"{theorems.get('derivative_dtype', 'float64')}). Distance-scaling slope per set (frozen: every analysed "
            "head pinned; recompute: a patched member blocks the paths of the members it reads, one order of t "
            "per chain of members):", "",
            markdown_table(slopes, ("set", "frozen", "predicted", "recompute", "predicted", "longest chain")), ""]


def _theorem_reading(theorems: dict | None) -> list[str]:
    if theorems is None:
        return []
    rows = {r["check"]: r for r in theorem_rows(theorems)}
    failed = [name for name, r in rows.items() if r["verdict"] == "fail"]
    unsure = [name for name, r in rows.items() if r["verdict"] == "inconclusive"]
    frozen_dual = rows.get("duality (frozen)")
    recompute_dual = rows.get("duality (recompute)")
    lines = [f"- Theorem table: {sum(r['verdict'] == 'pass' for r in rows.values())} checks pass"
             + (f", {len(failed)} fail ({', '.join(failed)})" if failed else ", none fails")
             + (f"; {len(unsure)} inconclusive ({', '.join(unsure)}: the check's error bar is too wide to "
                "tell)." if unsure else ".")]
    gap = theorems.get("duality", {}).get("recompute", {}).get("max_rel_residual", 0.0)
    if frozen_dual is not None and recompute_dual is not None and gap > 1e-2:
        lines.append(f"- Noising and denoising NIE are related through interactions only under frozen semantics "
                     f"over a complete cut (here: {frozen_dual['verdict']}, residual {frozen_dual['value']}); "
                     f"under recompute semantics denoising NIE and −Σ_{{T∋i}} INT_T (noising) differ by up to "
                     f"{recompute_dual['value']} of the effect scale, so neither direction's NIE can be read "
                     "off the other's.")
    return lines


def _pm(mean: float, se: float) -> str:
    return f"{mean:+.3f} ± {se:.3f}"


def _pair_readings(res: Results, direction: str, rows, prompts: np.ndarray) -> list:
    """Reading of each pair index in `rows` (studies.readings), from per-prompt NIEs and INTs on `prompts`."""
    index = {n: i for i, n in enumerate(res[f"nie_{direction}"].items)}
    nie = res[f"nie_{direction}"].values[prompts]
    ints = res[f"int2_{direction}"].values[prompts]
    out = []
    for r in rows:
        a, b = res[f"int2_{direction}"].items[r].split(",")
        out.append(read_pair_per_prompt(a, b, nie[:, index[a]], nie[:, index[b]], ints[:, r], direction)[0])
    return out


def _report(model_name, data, res: Results, theorems, options, splits) -> tuple[list[str], list[str]]:
    """The analysis's own sections (header, NIE, interactions, linear, theorems) and their summary lines."""
    clean = res["metric_clean"].values[:, 0]
    corrupted = res["metric_corrupted"].values[:, 0]
    names = res["nie_noising"].items
    n_arr, d_arr = res["nie_noising"].values, res["nie_denoising"].values
    noise, denoise = n_arr.mean(0), d_arr.mean(0)
    se_n, se_d = _se(n_arr), _se(d_arr)
    pie_n, pie_d = res["pie_noising"].values.mean(0), res["pie_denoising"].values.mean(0)
    se_pn, se_pd = _se(res["pie_noising"].values), _se(res["pie_denoising"].values)
    gap_n_se = _se(n_arr - res["pie_noising"].values)
    gap_d_se = _se(d_arr - res["pie_denoising"].values)
    lin = res["linear_noising"].values.mean(0)
    te_p = corrupted - clean
    te = float(te_p.mean())
    k = options.top
    by_noise = np.argsort(noise)[:k]  # most negative: patching the head breaks the behaviour
    by_denoise = np.argsort(-denoise)[:k]  # most positive: the head restores it alone
    ratio = (np.abs(noise) + 1e-9) / (np.abs(denoise) + 1e-9)
    lopsided = [i for i in np.argsort(-np.abs(np.log(ratio))) if max(abs(noise[i]), abs(denoise[i])) > 0.05 * abs(te)][:5]
    # the top pairs are chosen on one half of the prompts and read (and shown) on the other
    select, score = (split_indices(len(clean), 0.5, options.seed) if options.studies.heldout
                     else (np.arange(len(clean)),) * 2)
    top_pairs = np.argsort(-np.abs(res["int2_noising"].values[select].mean(0)))[:k]
    pair_n, pair_d = res["int2_noising"].values[score], res["int2_denoising"].values[score]
    readings_n = _pair_readings(res, "noising", top_pairs, score)
    readings_d = _pair_readings(res, "denoising", top_pairs, score)
    trip_n, trip_d = res["int3_noising"].values, res["int3_denoising"].values
    top_trips = np.argsort(-np.abs(trip_n.mean(0)))[:k]
    corr = float(np.corrcoef(noise, lin)[0, 1]) if np.std(lin) > 0 else float("nan")
    gap = np.abs(noise - lin)
    sum_nie = float(noise.sum())
    header = [
        f"# IOI analysis: {model_name}",
        "",
        f"What was run: {len(data)} IOI prompts (Wang et al. 2022 templates, {options.corruption.upper()} "
        f"corruption, seed {options.seed}) through {model_name}; metric y = logit(IO) − logit(S) at the last "
        f"position. Clean y = {_pm(clean.mean(), _se(clean[:, None])[0])} (IO preferred on "
        f"{100 * (clean > 0).mean():.1f}% of prompts), corrupted y = {_pm(corrupted.mean(), _se(corrupted[:, None])[0])}, "
        f"total effect TE = {_pm(te, _se(te_p[:, None])[0])}. Means are over prompts, ± one standard error over "
        "prompts unless a 95% CI is given; per-prompt values are in `values.npz` (item names in `summary.json`).",
        "",
    ]
    nie_section = [
        "## NIE of every head",
        "",
        "![NIE heatmaps](nie_heads.png)",
        "",
        "PIE is the same patch with every other head pinned at its base-run value (frozen semantics): the "
        "head's effect through paths that avoid the other heads. NIE − PIE is what flows through the other "
        "heads' responses.",
        "",
        markdown_table([(names[i], _pm(noise[i], se_n[i]), _pm(pie_n[i], se_pn[i]), _pm(noise[i] - pie_n[i], gap_n_se[i]),
                         _pm(denoise[i], se_d[i])) for i in by_noise],
                       ("head (most negative noising NIE)", "noising NIE", "noising PIE", "NIE − PIE",
                        "denoising NIE")),
        "",
        markdown_table([(names[i], _pm(denoise[i], se_d[i]), _pm(pie_d[i], se_pd[i]),
                         _pm(denoise[i] - pie_d[i], gap_d_se[i]), _pm(noise[i], se_n[i])) for i in by_denoise],
                       ("head (most positive denoising NIE)", "denoising NIE", "denoising PIE", "NIE − PIE",
                        "noising NIE")),
        "",
        f"The single-head noising NIEs sum to {sum_nie:+.3f}, against TE = {te:+.3f} for patching everything "
        + (f"(patching every head together gives {splits['noising'].joint:+.3f}, TE itself: the heads are a "
           "complete cut here, no path avoids them). " if abs(splits["noising"].joint - te) <= 1e-3 * abs(te) else
           f"(patching every head together gives {splits['noising'].joint:+.3f}: the paths that avoid the heads "
           "carry the rest). ")
        + "Patching every head together, the gap between the joint "
        "effect and Σ NIE is exactly the sum of every interaction among the heads; split by order:",
        "",
        *[f"- {order_split_sentence(sp, d)}" for d, sp in splits.items()],
        "",
        "Heads whose effect depends most on the direction (|noising| vs |denoising| NIE; the two directions "
        "are different games, not related by sums of interactions under recompute semantics: see the "
        "duality rows of the theorem table):",
        "",
        markdown_table([(names[i], _pm(noise[i], se_n[i]), _pm(denoise[i], se_d[i])) for i in lopsided],
                       ("head", "noising NIE", "denoising NIE")),
        "",
    ]
    pool_size = len(set(",".join(res["int2_noising"].items).split(",")))
    interactions_section = [
        f"## Strongest interactions (exact, among the {pool_size} strongest heads)",
        "",
        "![pairwise](interactions_order2.png) ![third order](interactions_order3.png)",
        "",
        (f"The pairs are the strongest by |mean noising INT| on {len(select)} prompts; every number and reading "
         f"in this table comes from the other {len(score)} prompts. " if options.studies.heldout else "")
        + "Each pair's reading comes from the signs of its NIEs and INT relative to its joint effect, in each "
        "direction (rules in the sign box above). A quantity whose 95% CI includes 0 but reaches past its size "
        "floor is uncertain, not small: a reading that rests on it is 'undetermined' and names it. The last "
        "column joins the two directions where DESIGN's table names a mechanism (serial chain, AND, OR).",
        "",
        markdown_table([(res["int2_noising"].items[i], _pm(pair_n[:, i].mean(), _se(pair_n)[i]), rn.label(),
                         _pm(pair_d[:, i].mean(), _se(pair_d)[i]), rd.label(),
                         read_directions(rn, rd).split(":")[0] or "—")
                        for i, rn, rd in zip(top_pairs, readings_n, readings_d)],
                       ("pair", "INT noising", "reading (noising)", "INT denoising", "reading (denoising)",
                        "both directions")),
        "",
        markdown_table([(res["int3_noising"].items[i], _pm(trip_n[:, i].mean(), _se(trip_n)[i]),
                         _pm(trip_d[:, i].mean(), _se(trip_d)[i])) for i in top_trips],
                       ("triple", "INT noising", "INT denoising")),
        "",
    ]
    linear_section = [
        "## Linear (attribution) estimate versus exact NIE",
        "",
        "![linear vs exact](linear_vs_exact.png)",
        "",
        f"Correlation over heads {corr:.3f}; largest gap {gap.max():.3f} at {names[int(gap.argmax())]} "
        f"(exact {noise[int(gap.argmax())]:+.3f}, linear {lin[int(gap.argmax())]:+.3f}).",
        "",
    ]
    theorem_section = ["## Theorem table (float64)", "", *_theorem_table(theorems)]
    summary = [
        f"- NIE: noising hurts most at {', '.join(f'{names[i]} {_pm(noise[i], se_n[i])}' for i in by_noise[:3])}; "
        f"denoising restores most at {', '.join(f'{names[i]} {_pm(denoise[i], se_d[i])}' for i in by_denoise[:3])}.",
        f"- Strongest pair {res['int2_noising'].items[top_pairs[0]]}: {readings_n[0].sentence}; "
        f"{readings_d[0].sentence}"
        + (f"; together: {read_directions(readings_n[0], readings_d[0])}." if read_directions(readings_n[0], readings_d[0])
           else "."),
        "- All heads at once, the gap joint − Σ NIE and its pairwise and higher-order parts [95% CI]: "
        + "; ".join(f"{d} {sp.gap:+.2f}, pairwise {sp.pairwise:+.2f} [{sp.pairwise_ci[0]:+.2f}, "
                    f"{sp.pairwise_ci[1]:+.2f}], higher orders {sp.higher:+.2f} [{sp.higher_ci[0]:+.2f}, "
                    f"{sp.higher_ci[1]:+.2f}]" for d, sp in splits.items()) + ".",
        f"- Attribution patching (linear) against exact NIE: correlation {corr:.2f} over heads, largest gap "
        f"{gap.max():.2f} at {names[int(gap.argmax())]}.",
        *_theorem_reading(theorems),
    ]
    return [*header, "@SUMMARY@", *nie_section, *interactions_section, *linear_section, *theorem_section], summary


def _footer(figs: dict, timings: dict) -> str:
    files = ", ".join(["values.npz", "summary.json", "theorems.json", "prompts.jsonl", "distance_scaling.json",
                       *sorted(Path(p).name for p in figs.values())])
    return "\n".join(["## Files and run", "", f"Run time {timings['total_s']:.1f} s. Files: {files}. Versions and "
                       "every option are in `summary.json`.", ""])
