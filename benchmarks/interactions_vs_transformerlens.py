"""Exact interactions on a GPT-2-small-shaped model: intjax against TransformerLens brute force.

    python benchmarks/interactions_vs_transformerlens.py [--tl-pairs 24|all]

1. All pairwise interactions among 24 heads (layers 0-11, heads 0 and 1), 16
   prompts x 15 tokens, denoising (clean head outputs patched into the
   corrupted run), logit difference. intjax: `interactions(problem, order=2)`
   (each of the 1 + 24 + 276 subsets patched once). TransformerLens 4.x: the
   brute force people write, four `run_with_hooks` runs per pair
   (f(∅), f(i), f(j), f(ij)) on a TransformerBridge. `--tl-pairs 24` (default)
   times TransformerLens on the first 24 pairs and scales to all 276 (each
   pair costs the same four forward passes); `--tl-pairs all` runs every pair.
2. Third order among 16 heads: intjax time, patched runs, peak memory.
3. Linear estimates for all 144 heads: cost in forward-pass equivalents.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, gpt2_small_checkpoint, random_prompts  # noqa: E402

HEADS24 = [f"L{l}H{h}" for l in range(12) for h in (0, 1)]


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_intjax(ckpt: Path, data: Path) -> dict:
    """The three intjax measurements, in this process (after one warm-up per program)."""
    import equinox as eqx
    import jax.numpy as jnp

    import intjax
    from intjax.estimands import interactions, linear
    from intjax.patching import build_problem, parse_components, read_prompts

    model, _ = intjax.load_model(ckpt, tokenizer=False)
    prompts = read_prompts(data)
    out = {}
    problem = build_problem(model, prompts, parse_components(",".join(HEADS24), model.config),
                            direction="denoising")
    t0 = time.perf_counter()
    sets, ints, values = interactions(problem, order=2)
    out["pairs_first_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    interactions(problem, order=2)
    out["pairs_steady_s"] = time.perf_counter() - t0
    out["pairs_runs"] = len(values)
    out["pairs_int_mean"] = ints.mean(axis=0).tolist()

    problem16 = build_problem(model, prompts, parse_components(",".join(HEADS24[:16]), model.config),
                              direction="denoising")
    t0 = time.perf_counter()
    _, _, values3 = interactions(problem16, order=3)
    out["order3_s"] = time.perf_counter() - t0
    out["order3_runs"] = len(values3)
    out["order3_peak_rss_gb"] = peak_rss_gb()

    heads = build_problem(model, prompts, parse_components("heads", model.config), direction="denoising")
    linear(heads)  # compile
    t0 = time.perf_counter()
    linear(heads)
    out["linear_s"] = time.perf_counter() - t0
    forward = eqx.filter_jit(lambda p, a: p(a))
    zero = jnp.zeros(heads.n_components)
    forward(heads, zero).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(5):
        forward(heads, zero).block_until_ready()
    out["forward_s"] = (time.perf_counter() - t0) / 5
    return out


def run_tl(ckpt: Path, data: Path, n_pairs: int) -> dict:
    """TransformerLens brute force: four run_with_hooks per pair, on the first n_pairs pairs."""
    import torch
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import PreTrainedTokenizerFast

    rows = [json.loads(line) for line in data.read_text().splitlines()]
    clean = torch.tensor([r["clean_ids"] for r in rows])
    corrupted = torch.tensor([r["corrupted_ids"] for r in rows])
    target = torch.tensor([r["target_id"] for r in rows])
    foil = torch.tensor([r["foil_id"] for r in rows])
    batch = torch.arange(len(rows))
    tok = PreTrainedTokenizerFast(tokenizer_file=str(ckpt / "tokenizer.json"))
    model = TransformerBridge.boot_transformers(str(ckpt), device="cpu", tokenizer=tok)
    model.eval()
    heads = [(int(h[1:].split("H")[0]), int(h.split("H")[1])) for h in HEADS24]

    def metric(logits):
        last = logits[:, -1]
        return (last[batch, target] - last[batch, foil]).mean().item()

    def patch(layer, head):
        def hook(z, hook):
            z[:, :, head] = cache[f"blocks.{layer}.attn.hook_z"][:, :, head]
            return z
        return (f"blocks.{layer}.attn.hook_z", hook)

    t0 = time.perf_counter()
    with torch.no_grad():
        _, cache = model.run_with_cache(clean)
        pairs = list(itertools.combinations(range(len(heads)), 2))[:n_pairs]
        result = []
        for i, j in pairs:
            f0 = metric(model.run_with_hooks(corrupted, fwd_hooks=[]))
            fi = metric(model.run_with_hooks(corrupted, fwd_hooks=[patch(*heads[i])]))
            fj = metric(model.run_with_hooks(corrupted, fwd_hooks=[patch(*heads[j])]))
            fij = metric(model.run_with_hooks(corrupted, fwd_hooks=[patch(*heads[i]), patch(*heads[j])]))
            result.append(fij - fi - fj + f0)
    return dict(seconds=time.perf_counter() - t0, n_pairs=len(pairs), int_mean=result,
                forward_passes=4 * len(pairs))


def main() -> None:
    """Run intjax and TransformerLens and print the comparison."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tl-pairs", default="24", help="pairs TransformerLens runs: a number or 'all'")
    p.add_argument("--skip-tl", action="store_true")
    args = p.parse_args()
    ckpt = gpt2_small_checkpoint()
    data = random_prompts(CACHE / "prompts_16x15.jsonl")
    ij = run_intjax(ckpt, data)
    total_pairs = 24 * 23 // 2
    print("# Exact interactions, GPT-2-small shape, 16 prompts x 15 tokens")
    print(f"pairs among 24 heads: intjax {ij['pairs_first_s']:.1f} s first call (compiles), "
          f"{ij['pairs_steady_s']:.1f} s steady, {ij['pairs_runs']} patched runs "
          f"(brute force: {4 * total_pairs})")
    if not args.skip_tl:
        n = total_pairs if args.tl_pairs == "all" else min(int(args.tl_pairs), total_pairs)
        tl = run_tl(ckpt, data, n)
        full = tl["seconds"] * total_pairs / tl["n_pairs"]
        label = "measured" if tl["n_pairs"] == total_pairs else f"scaled from {tl['n_pairs']} pairs measured in {tl['seconds']:.1f} s"
        diff = np.abs(np.array(ij["pairs_int_mean"][: tl["n_pairs"]]) - np.array(tl["int_mean"])).max()
        print(f"TransformerLens brute force: {full:.1f} s for all {total_pairs} pairs ({label}); "
              f"speed-up {full / ij['pairs_first_s']:.1f}x (intjax first call), "
              f"{full / ij['pairs_steady_s']:.1f}x (steady)")
        print(f"agreement on the pairs both computed: max |difference| = {diff:.2e}")
    print(f"third order among 16 heads: {ij['order3_s']:.1f} s, {ij['order3_runs']} patched runs, "
          f"peak RSS {ij['order3_peak_rss_gb']:.2f} GB (whole process so far)")
    print(f"linear estimates, all 144 heads: {ij['linear_s']:.2f} s = "
          f"{ij['linear_s'] / ij['forward_s']:.1f} forward-pass equivalents "
          f"(one f(alpha) forward over the 16 prompts: {ij['forward_s']:.2f} s)")


if __name__ == "__main__":
    main()
