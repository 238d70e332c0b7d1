"""The IOI analysis behind `intjax demo` and `intjax ioi`: NIE of every head in both
directions, exact pairwise and third-order interactions among the strongest heads,
linear versus exact NIE, the theorem table, the distance study and the interaction studies,
returned as one `IOIAnalysis` (intjax.ioi.saved writes it, intjax.report renders it)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable, Optional

import jax.numpy as jnp
import numpy as np

from intjax.ioi.circuit import ROLES, is_gpt2_small, read_circuit, resolve_circuit
from intjax.ioi.distance import ioi_distance_problems
from intjax.ioi.pair_screen import pair_screen
from intjax.ioi.path_discovery import PATH_CLASSES, path_discovery_seconds
from intjax.options import IOIAnalysisOptions
from intjax.ioi.plan import Sizes, compile_share, fit_budget, stage_compile_seconds, stage_seconds
from intjax.ioi.saved import IOIAnalysis
from intjax.ioi.studies import run_ioi_studies, strongest_heads, studies_arrays
from intjax.ioi.task import GPT2_SMALL_IOI_CIRCUIT, PromptBank
from intjax.model.protocol import PatchableModel
from intjax.patching.components import parse_components
from intjax.patching.problem import build_problem
from intjax.progress import Stages, mean_length, timed_forward
from intjax.report.ioi_claims import ioi_claim_tests
from intjax.runs.patch import PatchOptions, run_patch
from intjax.runs.theorems import TheoremTable, run_theorems
from intjax.runtime import cast_floats, x64
from intjax.studies.distance_scaling import distance_scaling_study
from intjax.studies.order_split import order_split
from intjax.sweeps.context import SweepContext
from intjax.sweeps.fingerprint import code_digest, hash_arrays, model_digest
from intjax.sweeps.stage_marks import StageMarks
from intjax.sweeps.vertex_cache import VertexCache


STAGE_NAMES = ("NIE, PIE and linear estimates of every head", "pairwise/higher split of the joint effect",
               "exact interactions (orders 2 and 3), Hessian screen of the pairs", "theorem table", "distance scaling",
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
         options: IOIAnalysisOptions) -> tuple[IOIAnalysisOptions, list[float], tuple[float, ...], list[str]]:
    """The options the run will use (fitted to the budget), each stage's estimated seconds and the compiling
    part of them, and notes."""
    L, H = model.config.n_layers, model.config.n_heads
    timing = timed_forward(model, mean_length(data_lengths))
    per_forward, compiling = timing.seconds, stage_compile_seconds(timing.from_cache)
    # under --discover path, path patching's classes are the studies' (at most PATH_CLASSES)
    n_classes = len(PATH_CLASSES) if options.studies.discover == "path" else _n_classes(options.studies.circuit, model)
    n_units = _n_circuit_units(options.studies.circuit, model) if options.studies.completeness_ablation else 0

    def estimate(sizes: Sizes) -> list[float]:
        stages = stage_seconds(sizes, L, H, per_forward, n_classes, n_units, compiling)
        if options.studies.discover == "path":  # in the studies' stage
            stages[5] += path_discovery_seconds(L, H, sizes.n_prompts, per_forward, compile_share(timing.from_cache))
        return stages

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
    return with_sizes(options, sizes), estimate(sizes), compiling, notes


def _float64(model: PatchableModel) -> PatchableModel:
    return cast_floats(model, jnp.float64)


def run_sweeps(out: str | Path, memory_gb: float = 1.0, quiet: bool = True) -> SweepContext:
    """The sweep context of an analysis into `out`: checkpoints in `out/checkpoints`, one vertex cache
    (each f(1_S) once per run, across stages and studies) in `out/checkpoints/vertices`."""
    checkpoints = Path(out) / "checkpoints"
    return SweepContext.of(memory_gb=memory_gb, checkpoints=checkpoints, cache=VertexCache(checkpoints / "vertices"),
                           quiet=quiet)


def run_ioi_analysis(model: PatchableModel, tokenizer: Any, options: IOIAnalysisOptions = IOIAnalysisOptions(),
                     sweeps: SweepContext = SweepContext(), model_name: str = "",
                     then: Optional[Callable[[IOIAnalysis], None]] = None) -> IOIAnalysis:
    """Run the analysis and return it; it writes nothing but its sweeps' checkpoints (in `sweeps`).
    `then(analysis)` runs as the plan's last stage (the command line saves and renders it there)."""
    t_start = time.perf_counter()
    bank = PromptBank(tokenizer)  # every prompt set of the run, each generated once
    data = bank.get(options.n_prompts, options.seed, options.corruption)
    options, estimates, compiling, notes = plan(model, data.prompts.lengths, len(data), options)
    heads = parse_components("heads", model.config)
    names = [h.name for h in heads]
    run_prompts = hash_arrays(list(data.prompts.clean), list(data.prompts.corrupted), data.prompts.target,
                              data.prompts.foil, data.prompts.positions)
    run_inputs = dict(model=model_digest(model), prompts=run_prompts, options=repr(options), code=code_digest("intjax"))
    marks = StageMarks(sweeps, STAGE_NAMES[:-1], run_inputs)  # every stage but the report, which is always redone
    stages = Stages(STAGE_NAMES, quiet=sweeps.quiet, title=f"intjax ioi ({len(data)} prompts, {len(heads)} heads)",
                    estimates=estimates, notes=notes, compiling=compiling, saved=marks.finished(STAGE_NAMES),
                    on_done=marks.mark)

    with stages.stage(STAGE_NAMES[0], f"{len(heads)} heads x 2 directions x 2 semantics"):
        res, timings = run_patch(model, data.prompts, heads, PatchOptions(linear=True), sweeps.child("heads"))
        pie, t = run_patch(model, data.prompts, heads, PatchOptions(semantics="frozen"), sweeps.child("heads_frozen"))
        res.update({f"pie_{d}": pie[f"pie_{d}"] for d in ("noising", "denoising")})
        timings.update({f"pie_{k}": v for k, v in t.items()})
        te_per_prompt = (res["metric_corrupted"].values - res["metric_clean"].values)[:, 0]
        te = float(te_per_prompt.mean())
        if options.studies.circuit in ("auto", "discover") and options.studies.discover != "path":  # a model that
            # singles out no heads stops here, not at stage 6 (under --discover path the roles are only compared)
            resolve_circuit(options.studies.circuit, model, data, res["nie_noising"].values,
                            res["nie_denoising"].values, te)
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
        screened, t = pair_screen(model, data.prompts, [heads[i] for i in pool2], sweeps.child("pair_screen"))
        res.update({k: v for k, v in screened.items() if k.startswith("int2_hessian_")})  # report/screen.py
        timings.update({f"screen_{k}": v for k, v in t.items()})

    with stages.stage(STAGE_NAMES[3], f"{options.theorem_heads} heads, order {options.theorem_order}, float64"
                      if options.theorem_heads else "skipped (--theorem-heads 0)"):
        t0 = time.perf_counter()
        theorems = None  # theorem_heads = 0 skips the table (float64 on a large model's CPU run is slow)
        if options.theorem_heads > 0:
            thm_heads = [heads[i] for i in strongest_heads(res["nie_noising"].values, res["nie_denoising"].values,
                                                      options.theorem_heads)]
            prompts = data.prompts.subset(range(min(options.theorem_prompts, len(data))))
            prompt_ids = hash_arrays(list(prompts.clean), list(prompts.corrupted), prompts.target, prompts.foil,
                                     prompts.positions)
            inputs = dict(model=model_digest(model), prompts=prompt_ids, heads=[h.name for h in thm_heads],
                          order=options.theorem_order, bound_order=options.bound_order, n_check=2,
                          code=code_digest("intjax.estimands", "intjax.runs.theorems"))

            def table() -> TheoremTable:
                with x64():
                    return run_theorems(_float64(model), prompts, thm_heads, order=options.theorem_order, n_check=2,
                                        cut=parse_components("heads,mlps", model.config),
                                        bound_order=options.bound_order, step=stages.note,
                                        tick=stages.tick)

            theorems = sweeps.saved("theorems", inputs, table)  # a resumed run does not redo it
        timings["theorems_s"] = time.perf_counter() - t0

    with stages.stage(STAGE_NAMES[4], f"pairs and triples of {options.distance_heads} heads"
                      if options.distance_heads > 1 else "skipped"):
        t0 = time.perf_counter()
        distance = None
        if options.distance_heads > 1:
            dist_heads = [heads[i] for i in strongest_heads(res["nie_noising"].values, res["nie_denoising"].values,
                                                            min(options.distance_heads, len(heads)))]
            n_distance = min(options.distance_prompts, len(data))
            inputs = dict(model=model_digest(model), heads=[h.name for h in dist_heads], prompts=n_distance,
                          seed=options.seed, code=code_digest("intjax.ioi", "intjax.studies.distance_scaling"))
            distance = sweeps.saved("distance", inputs, lambda: distance_scaling_study(  # a resumed run reads it
                ioi_distance_problems(model, tokenizer, dist_heads, n_distance, seed=options.seed, prompts=bank)))
        timings["distance_s"] = time.perf_counter() - t0

    with stages.stage(STAGE_NAMES[5], f"{options.studies.n_resamples} faithfulness resamples, search over "
                                      f"{options.studies.search_pool} heads, completeness and minimality"):
        t0 = time.perf_counter()
        studies = run_ioi_studies(model, tokenizer, data, res["nie_noising"].values, res["nie_denoising"].values,
                                  te_per_prompt, options.studies, seed=options.seed, sweeps=sweeps, prompts=bank,
                                  step=stages.note, tick=stages.tick)
        res.update(studies_arrays(studies))
        timings.update(studies.seconds)
        timings["studies_s"] = time.perf_counter() - t0

    with stages.stage(STAGE_NAMES[6]):
        timings["total_s"] = time.perf_counter() - t_start
        cache = sweeps.cache
        analysis = IOIAnalysis(
            model_name=model_name, n_layers=model.config.n_layers, n_heads=model.config.n_heads,
            gpt2_small=is_gpt2_small(model), options=options, prompts=data, results=res, splits=splits,
            theorems=theorems, distance=distance, studies=studies,
            claims=tuple(ioi_claim_tests(splits, distance, studies)), pair_pool=tuple(names[i] for i in pool2),
            triple_pool=tuple(names[i] for i in pool3), timings=timings,
            plan=dict(budget_minutes=options.budget_minutes, notes=notes,
                      estimated_s=dict(zip(STAGE_NAMES, estimates)), measured_s=dict(stages.seconds)),
            vertex_cache=dict(hits=cache.hits, misses=cache.misses) if cache is not None else {})
        if then is not None:
            then(analysis)
    return analysis
