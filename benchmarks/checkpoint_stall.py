"""How long a resumable sweep's loop blocks in checkpoint saves (issue 26: saves must not stall
the sweep). Saves every chunk (save_every_s=0), the worst case; compare two checkouts with
`PYTHONPATH=<checkout> python benchmarks/checkpoint_stall.py MODEL PROMPTS.jsonl [CHUNK]`.
"""

import shutil
import sys
import tempfile
import time

from intjax.loading import load_model
from intjax.patching import parse_components, build_problem
from intjax.patching.prompts import read_prompts
from intjax.sweeps import runner
from intjax.estimands.mobius import subsets_up_to, subset_masks

model, _ = load_model(sys.argv[1], tokenizer=False)
prompts = read_prompts(sys.argv[2])
folder = tempfile.mkdtemp()
comps = parse_components("heads", model.config)
prob = build_problem(model, prompts, comps)
masks = subset_masks(subsets_up_to(len(comps), 3), len(comps))
blocked = {"t": 0.0, "n": 0}
orig = runner.SweepCheckpoint.chunk_done


def timed(self, k, values, done):
    """chunk_done, timed: what the sweep loop waits for after each chunk."""
    t = time.perf_counter()
    orig(self, k, values, done)
    blocked["t"] += time.perf_counter() - t
    blocked["n"] += 1


runner.SweepCheckpoint.chunk_done = timed
chunk = int(sys.argv[3]) if len(sys.argv) > 3 else 128
runner.run_sweep(prob, masks, None, chunk=chunk, quiet=True)
for rep in range(2):
    shutil.rmtree(folder, ignore_errors=True)
    blocked.update(t=0.0, n=0)
    t = time.perf_counter()
    runner.run_sweep(prob, masks, folder, chunk=chunk, quiet=True, save_every_s=0.0)
    per_chunk_ms = blocked["t"] / max(1, blocked["n"]) * 1e3
    print(f"chunks {blocked['n']}: sweep {time.perf_counter() - t:.2f} s, the loop blocked in checkpoint saves "
          f"{blocked['t']:.3f} s ({per_chunk_ms:.1f} ms a chunk)", flush=True)
