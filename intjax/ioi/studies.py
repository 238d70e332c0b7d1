"""The IOI interaction studies: circuit faithfulness and its decomposition, completeness and
minimality, invisible and inflated heads, greedy versus combinatorial search, and the remedies table.

`run_ioi_studies` runs them all on one model; `ioi_analysis` calls it after the
per-head NIE (which it reuses) and writes the results into the report.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Optional, Protocol, runtime_checkable

import numpy as np
from jaxtyping import Float

from intjax.model.protocol import PatchableModel
from intjax.patching.components import parse_components
from intjax.patching.problem import build_problem
from intjax.results import Results
from intjax.ioi.completeness import Completeness, Minimality, circuit_game, completeness, minimality
from intjax.ioi.path_circuit import choose_circuit
from intjax.ioi.path_discovery import PathDiscovery, run_path_discovery
from intjax.ioi.path_values import path_arrays
from intjax.ioi.faithfulness import FaithfulnessStudy, faithfulness_study
from intjax.options import IOIStudyOptions
from intjax.ioi.remedies import RemedyRow, remedies_table
from intjax.studies.heldout_search import HeldoutRow, context_pool, heldout_greedy_vs_best, pool_rule, split_indices
from intjax.studies.witnesses import WitnessImportance, witness_importance
from intjax.sweeps.context import SweepContext
from intjax.ioi.task import CLASS_POSITIONS, GPT2_SMALL_IOI_CIRCUIT, IOIPrompts, PromptBank, mean_source


def strongest_heads(nie_noising: np.ndarray, nie_denoising: np.ndarray, k: int) -> list[int]:
    """Indices (sorted) of the k heads with the largest max(|mean noising NIE|, |mean denoising NIE|)."""
    strength = np.maximum(np.abs(nie_noising.mean(0)), np.abs(nie_denoising.mean(0)))
    return sorted(np.argsort(-strength, kind="stable")[:k].tolist())


@dataclasses.dataclass(frozen=True)
class IOIStudies:
    """Everything the four studies found on one model."""

    circuit: dict[str, list[str]]
    circuit_source: str
    total_effect: float
    faithfulness: FaithfulnessStudy
    remedies: list[RemedyRow]
    search: list[HeldoutRow]  # selected on half the prompts, scored on the other half
    search_pool: list[str]
    search_pool_rule: str
    head_names: list[str]
    witnesses: WitnessImportance  # for the strongest suspect of the noising visibility study
    seconds: dict[str, float]
    completeness: Optional[Completeness] = None  # on the analysis's prompts (None: skipped)
    minimality: Optional[Minimality] = None
    split: tuple[int, int] = (0, 0)  # prompts that chose the circuit, prompts its estimates use (0, P: no split)
    path: Optional[PathDiscovery] = None  # Wang et al.'s path-patching discovery (--discover path), same split
    # under --discover path: the circuit --circuit names (attention roles, Wang et al.'s, a file), beside path's
    compared: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    compared_source: str = ""

    def by_path(self) -> bool:
        """Whether path patching chose the studies' circuit (`--discover path` found a class)."""
        return self.path is not None and bool(self.path.classes)

    def remedy(self, estimator: str, unit: str) -> RemedyRow:
        """The remedies row of this estimator and unit."""
        return next(r for r in self.remedies if r.estimator == estimator and r.unit == unit)


def run_ioi_studies(
    model: PatchableModel,
    tokenizer: Any,
    data: IOIPrompts,
    nie_noising: np.ndarray,
    nie_denoising: np.ndarray,
    total_effect: float | Float[np.ndarray, " P"],
    options: IOIStudyOptions = IOIStudyOptions(),
    *,
    n_prompts: Optional[int] = None,
    seed: int = 0,
    sweeps: SweepContext = SweepContext(),
    prompts: Optional[PromptBank] = None,
    step: Optional[Callable[[str], None]] = None,
    tick: Optional[Callable[[str], None]] = None,
) -> IOIStudies:
    """Run the four studies on `data` (faithfulness also on `n_resamples` fresh prompt sets).

    `nie_*` are `[P, L·H]` head NIEs on `data` (layer-major), reused for the
    circuit discovery and the search ranking; `total_effect` is per prompt `[P]` (a discovered circuit's
    threshold then uses only the selection prompts') or one number. With checkpoints in `sweeps`, every sweep is
    saved there (remedies/, search/, faithfulness/, completeness/) and a rerun resumes them; its
    vertex cache shares vertex values with the run's other sweeps; `prompts` (the run's prompt sets) lets the
    faithfulness resamples reuse any set the run already made. `step(text)` is
    called as each study starts, `tick(text)` as each faithfulness resample does.
    """
    say = step or (lambda text: None)
    tick = tick or say
    seconds: dict[str, float] = {}
    heads = parse_components("heads", model.config)
    names = [h.name for h in heads]

    t0 = time.perf_counter()
    # selection on one half, estimates on the other (the search below draws the same split)
    select_idx, score_idx = split_indices(len(data), 0.5, seed)
    full = data  # the search splits it itself, with the same indices

    def discover_paths(select: np.ndarray, held_out: np.ndarray) -> PathDiscovery:
        say("path patching: direct paths, then into name mover queries, S-inhibition values, induction keys")
        t1 = time.perf_counter()
        found = run_path_discovery(model, full, select, held_out, seed=seed, evaluate_masks=sweeps.evaluate)
        seconds["path_discovery_s"] = time.perf_counter() - t1
        return found

    choice = choose_circuit(options, model, data, nie_noising, nie_denoising, total_effect, select_idx, score_idx,
                            discover_paths)
    total_effect = float(np.mean(total_effect))  # the scale of the remedies and the report: every prompt
    circuit, source, held_out, path = choice.circuit, choice.source, choice.held_out, choice.path
    seconds["circuit_s"] = time.perf_counter() - t0 - seconds.get("path_discovery_s", 0.0)
    if held_out:
        data = data.subset(score_idx)
    split = (len(select_idx), len(score_idx)) if held_out else (0, len(data))
    positional = options.positional if options.positional is not None else circuit == GPT2_SMALL_IOI_CIRCUIT
    positions = CLASS_POSITIONS if positional else None

    t0 = time.perf_counter()
    mean = mean_source(tokenizer, data, options.reference_per_template, seed=seed)  # remedies and completeness
    rows = remedies_table(model, data.prompts, circuit, n_context=options.n_context, scale=abs(total_effect),
                          ratio=options.ratio, floor=options.floor, class_positions=positions, mean_source=mean,
                          sweeps=sweeps.child("remedies"), step=say)
    seconds["remedies_s"] = time.perf_counter() - t0

    say("witnesses of the strongest suspect")
    t0 = time.perf_counter()
    # held out: the suspect is chosen on the selection half (largest |mean noising NIE|), its witnesses estimated
    # on the other half; otherwise the strongest flagged head of the remedies row
    suspect = (int(np.argmax(np.abs(nie_noising[select_idx].mean(0)))) if held_out else
               strongest_suspect(next(r for r in rows if r.estimator == "noising" and r.unit == "head")))
    # Every head's own-layer MLP reads it, so there is always a candidate.
    witnesses = witness_importance(model, data.prompts, heads[suspect],
                                   [*heads, *parse_components("mlps", model.config)], sweeps=sweeps)
    seconds["witnesses_s"] = time.perf_counter() - t0

    say(f"search: greedy against the best k-set, k ≤ {options.search_k}, pool of {options.search_pool}")
    t0 = time.perf_counter()
    # select on half the prompts, score on the other half; the pool admits heads by context effect too
    games = {part: sweeps.child("search").game(build_problem(model, full.prompts.subset(idx), heads,
                                                             direction="noising"),
                                               part, desc=f"search (noising, {part})", options=dict(study="search"))
             for part, idx in (("select", select_idx), ("score", score_idx))}
    nie_select = nie_noising[select_idx]
    pool, context, _ = context_pool(games["select"], options.search_pool, options.n_context, nie=nie_select)
    search = heldout_greedy_vs_best(games["select"], games["score"], min(options.search_k, len(pool)), pool,
                                    nie=nie_select, beam_width=options.beam_width, seed=seed)
    rule = pool_rule(len(pool), [names[i] for i in context])
    seconds["search_s"] = time.perf_counter() - t0

    say(f"faithfulness: resample 1 of {options.n_resamples}")
    t0 = time.perf_counter()
    # fresh prompt sets; held out, they start one seed on so that none is the analysis's own prompts
    faith = faithfulness_study(model, tokenizer, circuit, n_resamples=options.n_resamples,
                               n_prompts=options.faithfulness_prompts or n_prompts or len(full),
                               seed=seed + 1 if held_out else seed, ablations=options.ablations,
                               reference_per_template=options.reference_per_template, class_positions=positions,
                               sweeps=sweeps.child("faithfulness"), prompts=prompts,
                               on_resample=lambda r: r + 1 < options.n_resamples and tick(
                                   f"faithfulness: resample {r + 2} of {options.n_resamples}"))
    seconds["faithfulness_s"] = time.perf_counter() - t0

    complete = minimal = None
    if options.completeness_ablation is not None:
        say(f"completeness and minimality ({options.completeness_ablation} ablation)")
        t0 = time.perf_counter()
        cg = circuit_game(model, tokenizer, data, circuit, ablation=options.completeness_ablation,
                          class_positions=positions, mean=mean, sweeps=sweeps.child("completeness"),
                          desc="completeness", options=dict(study="completeness"))
        complete = completeness(cg, n_random=options.completeness_random, seed=seed)
        minimal = minimality(cg, threshold=options.minimality_threshold, seed=seed)
        seconds["completeness_s"] = time.perf_counter() - t0
    return IOIStudies(circuit, source, float(total_effect), faith, rows, search, [names[i] for i in pool], rule,
                      names, witnesses, seconds, complete, minimal, split, path, *choice.compared)


def strongest_suspect(row: RemedyRow) -> int:
    """The flagged unit with the largest |NIE| or |context effect| (the largest |context − NIE| if none
    is flagged): the one whose witnesses the report lists."""
    v = row.visibility
    flagged = [i for i, label in enumerate(v.labels) if label]
    if flagged:
        return max(flagged, key=lambda i: max(abs(v.nie[i]), abs(v.context[i])))
    return int(np.argmax(np.abs(v.context - v.nie)))


def studies_arrays(studies: IOIStudies) -> Results:
    """The studies' numbers as values.npz estimates with their item names (one row where a value is
    not per prompt: the remedies' context effects)."""
    f, out = studies.faithfulness, Results()
    out.add("faithfulness", f.faithfulness.T, f.ablations, study="faithfulness", per="resample")
    out.add("faithfulness_model_metric", f.model_metric[:, None], ["F(M)"], study="faithfulness", per="resample")
    out.add("faithfulness_circuit_metric", f.circuit_metric.T, f.ablations, study="faithfulness", per="resample")
    for part, values in f.parts.items():
        out.add(f"faithfulness_part_{part}", values.T, f.ablations, study="faithfulness", per="resample")
    for row in studies.remedies:
        key = f"remedy_{row.estimator.replace(' ', '_')}_{row.unit}"
        how = dict(study="remedies", estimator=row.estimator, unit=row.unit)
        out.add(key + "_nie", row.nie, row.names, **how)
        out.add(key + "_context", row.visibility.context[None], row.names, per="mean over prompts", **how)
    c, m = studies.completeness, studies.minimality
    if c is not None and m is not None:
        sets = [c.name(K) for K in c.sets]
        out.add("completeness_circuit_side", c.circuit_side, sets, study="completeness")
        out.add("completeness_model_side", c.model_side, sets, study="completeness")
        for key, split in zip(split_keys(c), c.splits):
            out.add(key, np.column_stack([split.empty, split.outside, split.joint]),
                    ["F(C) - F(M)", *split.outside_names, "two or more outside units"], study="completeness")
        out.add("minimality_change", m.change, m.names, study="minimality")
        out.add("minimality_circuit", m.circuit[:, None], ["F(C)"], study="minimality")
    if studies.path is not None:
        out.update(path_arrays(studies.path))
    return out


def split_keys(c: Completeness) -> list[str]:
    """values.npz keys of the completeness outside splits: the worst K, then that size's worst and greedy K
    where greedy falls furthest behind."""
    keys = ["completeness_split_worst"]
    for split in c.splits[1:]:
        kind = "worst" if split.K in (r.worst for r in c.sizes) else "greedy"
        keys.append(f"completeness_split_{kind}_k{len(split.K)}")
    return keys


@runtime_checkable
class HasCompleteness(Protocol):
    """What `completeness_summary` reads: the completeness and minimality results (None when skipped)."""

    completeness: Optional[Completeness]
    minimality: Optional[Minimality]


def completeness_summary(studies: IOIStudies | HasCompleteness) -> dict:
    """Completeness and minimality for summary.json: K in words, means and 95% CIs over prompts."""
    c, m = studies.completeness, studies.minimality
    if c is None or m is None:
        return {}
    from intjax.ioi.completeness import greedy_gaps

    return dict(
        completeness=dict(
            unit=c.unit, ablation=c.ablation, exhaustive=c.exhaustive, circuit_units=list(c.circuit_names),
            outside_units=list(c.outside_names), gap_empty=c.value(())[0],
            worst=c.name(c.worst), worst_d=list(c.value(c.worst)),
            worst_abs_ci_reselected=list(c.worst_ci_reselected) if c.worst_ci_reselected else None,
            simultaneous_bound=c.simultaneous, incomplete=c.incomplete,
            sizes=[dict(k=r.k, greedy=c.name(r.greedy), greedy_d=list(r.greedy_value),
                        worst=c.name(r.worst) if r.worst is not None else None,
                        worst_d=list(r.worst_value) if r.worst_value is not None else None,
                        random_max_abs=r.random_max, n_random=r.n_random, greedy_short=r.greedy_short)
                   for r in c.sizes],
            greedy_gaps=[dict(k=g.k, cause=g.cause, single=g.single, joint=g.joint, empty=g.empty,
                              significant=g.significant) for g in greedy_gaps(c)],
            splits=dict(zip(split_keys(c), (s.name for s in c.splits))), n_vertices=c.n_vertices),
        minimality=dict(threshold=m.threshold, exhaustive=m.exhaustive, units=list(m.names),
                        best=[c.name(K) for K in m.best], share=m.share.tolist(), share_ci=m.share_ci.tolist(),
                        share_at_empty=m.at_empty.tolist(), flagged=[m.names[i] for i in m.flagged]))
