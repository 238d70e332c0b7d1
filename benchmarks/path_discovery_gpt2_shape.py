"""The IOI plan's estimate for the path-patching discovery (`intjax ioi --discover path`) against its measured
time, on GPT-2 small's shape.

    python benchmarks/path_discovery_gpt2_shape.py [--n-prompts 16] [--checkpoint DIR]

Random weights of GPT-2 small's shape (`common.gpt2_small_checkpoint`) and IOI prompts from the shipped
ioi-small tokenizer (valid GPT-2 ids, GPT-2's lengths), as `ioi_analysis_gpt2_shape.py`. The estimate is
`path_discovery_seconds` at the plan's own timed forward (`seconds_per_forward`), the measure is
`run_path_discovery` on the studies' split, compiling included (run it with INTJAX_COMPILATION_CACHE=off for a
cold number). Which later stages run depends on what the weights make significant, so the paths each stage
tested are printed beside the times, with the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import gpt2_small_checkpoint  # noqa: E402


def main() -> None:
    """Print the plan's estimate, the measured stage and what the stage tested."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-prompts", type=int, default=16)
    p.add_argument("--checkpoint", type=Path, default=None, help="a GPT-2-small-shaped HF folder (default: made)")
    args = p.parse_args()

    import intjax
    from intjax.ioi.path_discovery import path_discovery_seconds, run_path_discovery
    from intjax.ioi.task import ioi_prompts
    from intjax.progress import mean_length, seconds_per_forward
    from intjax.studies.heldout_search import split_indices

    load_before = os.getloadavg()
    model, _ = intjax.load_model(args.checkpoint or gpt2_small_checkpoint(), tokenizer=False)
    _, tokenizer = intjax.load_model("ioi-small")
    data = ioi_prompts(tokenizer, args.n_prompts, seed=0)
    select, held_out = split_indices(len(data), 0.5, 0)
    cfg = model.config
    per_forward = seconds_per_forward(model, mean_length(data.prompts.lengths))
    estimate = path_discovery_seconds(cfg.n_layers, cfg.n_heads, len(data), per_forward)
    t0 = time.perf_counter()
    found = run_path_discovery(model, data, select, held_out)
    wall = time.perf_counter() - t0
    tested = {s: v.shape[1] for s, v in found.effects.items()}
    print(f"GPT-2 small shape, {len(data)} prompts ({found.split[0]} select / {found.split[1]} held out), "
          f"per forward {1e3 * per_forward:.2f} ms/prompt")
    print(f"plan estimate {estimate:.1f} s, measured {wall:.1f} s ({wall / estimate - 1:+.0%})")
    print(f"paths tested per stage {tested}, pairs {len(found.pairs)}, classes {found.classes}")
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
