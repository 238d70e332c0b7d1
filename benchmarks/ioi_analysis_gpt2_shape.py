"""How long the IOI interaction studies take on GPT-2 small's shape, stage by stage.

    python benchmarks/ioi_analysis_gpt2_shape.py [--n-prompts 32] [--resamples 20]

Real GPT-2 weights are not needed for timing: this runs the stages of
`run_ioi_studies` with their default options (Wang et al.'s circuit kept at its
positions, the remedies table, exhaustive search over 12 heads up to k = 6,
20 resamples × 3 ablations of faithfulness) on random weights of GPT-2 small's
shape, with IOI prompts from the shipped ioi-small tokenizer (its ids are valid
GPT-2 ids and its prompts have GPT-2's lengths, 14–20 tokens). Each stage's
time is printed as it finishes; the values themselves mean nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import gpt2_small_checkpoint  # noqa: E402


def main() -> None:
    """Run the stages and print their timings."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-prompts", type=int, default=32)
    p.add_argument("--resamples", type=int, default=20)
    args = p.parse_args()

    import intjax
    from intjax.estimands import nie
    from intjax.patching import build_problem, parse_components
    from intjax.ioi import IOIStudyOptions, faithfulness_study, remedies_table
    from intjax.studies import greedy_vs_best
    from intjax.ioi.task import CLASS_POSITIONS, GPT2_SMALL_IOI_CIRCUIT, MeanSource, ioi_prompts, template_reference

    def stage(name, t0):
        print(f"{name:40s} {time.perf_counter() - t0:8.1f} s", flush=True)

    model, _ = intjax.load_model(gpt2_small_checkpoint(), tokenizer=False)
    _, tokenizer = intjax.load_model("ioi-small")
    options = IOIStudyOptions(n_resamples=args.resamples)
    data = ioi_prompts(tokenizer, args.n_prompts, seed=0)
    heads = parse_components("heads", model.config)
    circuit = GPT2_SMALL_IOI_CIRCUIT

    t0 = time.perf_counter()
    problem = build_problem(model, data.prompts, heads, direction="noising")
    nie_noising = nie(problem)
    stage("NIE of 144 heads (noising)", t0)

    t0 = time.perf_counter()
    reference, groups = template_reference(tokenizer, data, options.reference_per_template)
    te = float((problem.metric_corrupted - problem.metric_clean).mean())
    remedies_table(model, data.prompts, circuit, scale=abs(te), class_positions=CLASS_POSITIONS,
                   mean_source=MeanSource(reference, groups))
    stage("remedies table (3 estimators x 3 units)", t0)

    t0 = time.perf_counter()
    pool = np.argsort(-np.abs(nie_noising.mean(0)))[: options.search_pool]
    rows = greedy_vs_best(problem, options.search_k, pool, nie=nie_noising)
    stage(f"search, {rows[0].n_evaluated} sets ({rows[0].method})", t0)

    t0 = time.perf_counter()
    faithfulness_study(model, tokenizer, circuit, n_resamples=args.resamples, n_prompts=args.n_prompts,
                       class_positions=CLASS_POSITIONS, on_resample=lambda r: stage(f"  faithfulness resample {r}", t0))
    stage(f"faithfulness, {args.resamples} resamples x 3 ablations x 2^7", t0)


if __name__ == "__main__":
    main()
