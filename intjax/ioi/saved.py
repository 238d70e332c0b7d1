"""The IOI analysis as data (`IOIAnalysis`) and its files: `save_analysis` writes values.npz, summary.json,
theorems.json, distance_scaling.json, prompts.jsonl and the whole analysis (analysis.json + analysis.npz);
`load_analysis` reads the last two back, so `intjax.report.render` can re-render a run without its model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Optional

from intjax import codec
from intjax.options import IOIAnalysisOptions
from intjax.ioi.studies import IOIStudies, completeness_summary
from intjax.ioi.task import IOIPrompts
from intjax.report.claims import ClaimTest
from intjax.results import Results, versions, write_results
from intjax.runs.theorems import TheoremTable
from intjax.studies.distance_scaling import DistanceScaling
from intjax.studies.order_split import OrderSplit

ANALYSIS = "analysis"  # analysis.json (the tree) and analysis.npz (its arrays)


@dataclasses.dataclass(frozen=True)
class IOIAnalysis:
    """Everything one IOI analysis found, and what a report needs to show it."""

    model_name: str
    n_layers: int
    n_heads: int
    gpt2_small: bool  # Wang et al.'s reference numbers apply
    options: IOIAnalysisOptions  # as run (fitted to the budget)
    prompts: IOIPrompts
    results: Results  # every values.npz estimate (NIE, PIE, linear, INT, the studies' arrays)
    splits: dict[str, OrderSplit]  # direction -> joint − Σ NIE split into pairwise and higher orders
    theorems: Optional[TheoremTable]  # the theorem table (None: skipped)
    distance: Optional[DistanceScaling]  # |INT_T| against distance (None: skipped)
    studies: IOIStudies
    claims: tuple[ClaimTest, ...]  # one row per claim of the paper
    pair_pool: tuple[str, ...]  # the heads whose pairs were patched
    triple_pool: tuple[str, ...]
    timings: dict[str, float]
    plan: dict[str, Any]  # budget, notes, estimated and measured seconds per stage
    vertex_cache: dict[str, int]  # hits and misses


def analysis_summary(a: IOIAnalysis) -> dict[str, Any]:
    """summary.json's fields (values.npz's arrays are added by `write_results`)."""
    s = a.studies
    return dict(command="ioi", model=a.model_name, n_prompts=len(a.prompts), n_skipped_words=a.prompts.n_skipped,
                options=dataclasses.asdict(a.options), pair_pool=list(a.pair_pool), triple_pool=list(a.triple_pool),
                circuit=s.circuit, circuit_source=s.circuit_source,
                heldout_split=dict(select=s.split[0], estimate=s.split[1]),
                order_split={d: dataclasses.asdict(sp) for d, sp in a.splits.items()},
                search_pool_rule=s.search_pool_rule, **completeness_summary(s), **path_summary(s), timings=a.timings,
                vertex_cache=a.vertex_cache, versions=versions(), plan=a.plan)


def path_summary(s: IOIStudies) -> dict[str, Any]:
    """summary.json's path-patching discovery (absent without --discover path): classes, split, notes, and the
    circuit of --circuit it was compared with."""
    p = s.path
    return {} if p is None else dict(path_discovery=dict(classes=p.classes, split=list(p.split), notes=list(p.notes),
                                                         min_share=p.min_share, compared_circuit=s.compared,
                                                         compared_source=s.compared_source))


def save_analysis(a: IOIAnalysis, out: str | Path) -> Path:
    """Write the analysis's files into `out` (see the module doc); returns `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    a.prompts.write_jsonl(out / "prompts.jsonl")
    write_results(out, a.results, analysis_summary(a))
    if a.theorems is not None:
        (out / "theorems.json").write_text(json.dumps(a.theorems.as_dict(), indent=2))
    if a.distance is not None:
        (out / "distance_scaling.json").write_text(json.dumps(dict(summary=a.distance.summary(),
                                                                   rows=a.distance.rows()), indent=1))
    codec.save(a, out / ANALYSIS)
    return out


def load_analysis(out: str | Path) -> IOIAnalysis:
    """The analysis `save_analysis` wrote into `out`."""
    analysis = codec.load(Path(out) / ANALYSIS)
    if not isinstance(analysis, IOIAnalysis):
        raise TypeError(f"{Path(out) / ANALYSIS}.json holds a {type(analysis).__name__}, not an IOIAnalysis")
    return analysis
