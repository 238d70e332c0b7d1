"""How long `intjax ioi` takes on GPT-2 small's shape, stage by stage.

    python benchmarks/ioi_analysis_gpt2_shape.py [--n-prompts 32] [--resamples 20] [--out DIR]

Real GPT-2 weights are not needed for timing: this runs the whole analysis
(`run_ioi_analysis` with its default options: Wang et al.'s circuit, kept at
its positions, 20 resamples × 3 ablations, exhaustive search over 12 heads,
the remedies table, the float64 theorem table) on random weights of GPT-2
small's shape, with IOI prompts from the shipped ioi-small tokenizer (its ids
are valid GPT-2 ids and its prompts have GPT-2's lengths, 14–20 tokens).
Prints the timings summary.json records; the numbers themselves mean nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import gpt2_small_checkpoint  # noqa: E402


def main() -> None:
    """Run the analysis and print its stage timings."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-prompts", type=int, default=32)
    p.add_argument("--resamples", type=int, default=20)
    p.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    args = p.parse_args()

    import dataclasses

    import intjax
    from intjax.studies import IOIAnalysisOptions, IOIStudyOptions, run_ioi_analysis

    model, _ = intjax.load_model(gpt2_small_checkpoint(), tokenizer=False)
    _, tokenizer = intjax.load_model("ioi-small")
    options = IOIAnalysisOptions(n_prompts=args.n_prompts, quiet=True,
                                 studies=dataclasses.replace(IOIStudyOptions(), n_resamples=args.resamples))
    out = Path(args.out or tempfile.mkdtemp(prefix="ioi-gpt2-shape-"))
    t0 = time.perf_counter()
    run_ioi_analysis(model, tokenizer, out, options, model_name="gpt2-shape-random")
    total = time.perf_counter() - t0
    timings = json.loads((out / "summary.json").read_text())["timings"]
    for key in sorted(timings, key=lambda k: -timings[k])[:14]:
        print(f"{key:32s} {timings[key]:8.1f} s")
    print(f"{'whole analysis':32s} {total:8.1f} s  ({args.n_prompts} prompts, {args.resamples} resamples); "
          f"report: {out / 'report.md'}")


if __name__ == "__main__":
    main()
