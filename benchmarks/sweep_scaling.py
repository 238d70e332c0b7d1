"""Sweep time against the number of components and the interaction order (GPT-2-small shape),
and the peak memory of the 10,440-subset sweep (all subsets of size <= 2 of the 144 heads).

    python benchmarks/sweep_scaling.py [--memory-seconds 300]

Part 1 times `interactions(problem, order)` for n heads (spread over the
layers) and orders 1-3, 16 prompts x 15 tokens, counting patched runs, and
plots seconds against patched runs to benchmarks/sweep_scaling.png. Part 2
runs the 10,440-subset sweep through the checkpointed sweep runner for at
most --memory-seconds (0: to the end) and reports the peak RSS of the process
(chunk size comes from the 1 GB default memory budget, so memory does not grow
with the number of masks), the patched-run rate and the projected total time.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, gpt2_small_checkpoint, random_prompts  # noqa: E402


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    """Run both parts and print a markdown table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--memory-seconds", type=float, default=300)
    p.add_argument("--sizes", default="4,8,12,16")
    args = p.parse_args()

    import intjax
    from intjax.estimands import interactions, n_subsets_up_to
    from intjax.estimands.mobius import subset_masks, subsets_up_to
    from intjax.patching import build_problem, parse_components, read_prompts
    from intjax.sweeps import run_sweep

    model, _ = intjax.load_model(gpt2_small_checkpoint(), tokenizer=False)
    prompts = read_prompts(random_prompts(CACHE / "prompts_16x15.jsonl"))
    rows = []
    for n in map(int, args.sizes.split(",")):
        heads = [f"L{(12 * i) // n}H{i % 12}" for i in range(n)]
        problem = build_problem(model, prompts, parse_components(",".join(heads), model.config))
        for order in (1, 2, 3):
            t0 = time.perf_counter()
            if order == 1:
                problem.values(np.concatenate([np.zeros((1, n)), np.eye(n)]))
            else:
                interactions(problem, order)
            rows.append((n, order, n_subsets_up_to(n, order), time.perf_counter() - t0))
            print(f"n={n:3d} order={order}: {rows[-1][2]:5d} patched runs, {rows[-1][3]:6.1f} s", flush=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4), constrained_layout=True)
    for order, marker in ((1, "o"), (2, "s"), (3, "^")):
        pts = [(r[2], r[3]) for r in rows if r[1] == order]
        ax.loglog(*zip(*pts), marker=marker, label=f"order ≤ {order}")
    ax.set(xlabel="patched runs (subsets evaluated)", ylabel="seconds (first call, compiles included)",
           title="GPT-2-small shape, 16 prompts x 15 tokens, CPU")
    ax.legend()
    fig.savefig(Path(__file__).resolve().parent / "sweep_scaling.png", dpi=110)

    heads = parse_components("heads", model.config)
    problem = build_problem(model, prompts, heads)
    masks = subset_masks(subsets_up_to(144, 2), 144)
    done = {"runs": 0}
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        worker = threading.Thread(target=lambda: run_sweep(problem, masks, folder, quiet=True), daemon=True)
        worker.start()
        worker.join(None if args.memory_seconds <= 0 else args.memory_seconds)
        elapsed = time.perf_counter() - t0
        log = Path(folder) / "chunks.log"
        n_chunks = len(log.read_text().splitlines()) if log.exists() else 0
        done["finished"] = not worker.is_alive()
    from intjax.patching.evaluate import chunk_size, plan_chunks

    chunks = plan_chunks(problem, masks, chunk_size(problem))
    runs_done = sum(len(c.rows) for c in chunks[:n_chunks])
    print()
    print("| n heads | order | patched runs | seconds |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.1f} |")
    print()
    print(f"10,440-subset sweep (144 heads, order <= 2, 16 prompts): {n_chunks}/{len(chunks)} chunks "
          f"({runs_done} masks) in {elapsed:.0f} s{' (finished)' if done['finished'] else ''}; "
          f"peak RSS {peak_rss_gb():.2f} GB; projected total {elapsed * len(masks) / max(runs_done, 1) / 60:.0f} min "
          "(chunks run in order of their start layer, so early chunks are the slowest)")
    sys.stdout.flush()
    os._exit(0)  # do not wait for an unfinished sweep thread


if __name__ == "__main__":
    main()
