"""Exact pairwise interactions on a GPT-2-small-shaped model: the intjax command against an expert's
batched torch and against TransformerLens brute force, side by side in one run.

    python benchmarks/interactions_vs_transformerlens.py [--prompts 16] [--tokens 15] [--pool 24]
        [--tl-pairs 24|all] [--skip-tl] [--skip-torch]

1. All pairwise interactions INT_ij = f(ij) - f(i) - f(j) + f(0) among a pool
   of 24 heads (layers 0-11, heads 0 and 1), 16 prompts x 15 tokens,
   denoising (clean head outputs patched into the corrupted run), logit
   difference at the last position.
   - intjax: `intjax patch --components L0H0,L0H1,... --order 2 --direction
     denoising` run as a user runs it (each of the 1 + 24 + 276 subsets
     patched once), timed from spawn to exit with an empty compilation cache
     (cold) and again with the programs the first run cached (warm, fresh
     --out); values read back with `intjax.results.read_results`. A library
     worker also times `interactions(problem, order=2)` in a warm process.
   - torch: an expert's batched baseline on `transformers.GPT2LMHeadModel`
     (`common.TorchHeadPatcher`): one clean pass caches every head's z, then
     the same 301 subsets x P prompts go through as batch rows, a few hundred
     at a time, with one pre-hook per layer on `attn.c_proj`; on `cuda` when
     torch sees a GPU.
   - TransformerLens 4.x: the brute force people write, four `run_with_hooks`
     runs per pair (f(0), f(i), f(j), f(ij)) on a TransformerBridge.
     `--tl-pairs 24` (default) times it on the first 24 pairs and scales to all
     pairs (each pair costs the same four forward passes); `--tl-pairs all` runs
     every pair.
   Each baseline runs in a fresh Python process; its whole-process time runs
   from spawn to its finished sweep (its exit is not counted, which favours it).
2. Third order among 16 heads of the pool: intjax library time, patched runs, peak memory.
3. Linear estimates for all 144 heads: cost in forward-pass equivalents (intjax library).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    CACHE, gpt2_small_checkpoint, intjax_patch, progress, random_prompts, speedup_line, timed_subprocess,
)

HEADS24 = [f"L{l}H{h}" for l in range(12) for h in (0, 1)]


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def layer_head(name: str) -> tuple[int, int]:
    """(layer, head) of a head name such as L9H6."""
    layer, head = name[1:].split("H")
    return int(layer), int(head)


def worker_intjax_library(ckpt: str, data: str, pool: list[str], spawn: float, n_pairs: int) -> dict:
    """The library measurements in a warm process: pairs (first call and steady), order 3, linear."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import intjax
    from intjax.estimands import interactions, linear
    from intjax.patching import build_problem, parse_components, read_prompts
    from intjax.runtime import enable_compilation_cache

    enable_compilation_cache()  # as the intjax command does; the folder comes from the parent
    model, _ = intjax.load_model(ckpt, tokenizer=False)
    prompts = read_prompts(data)
    out = {"device": str(jax.devices()[0])}
    problem = build_problem(model, prompts, parse_components(",".join(pool), model.config),
                            direction="denoising")
    t0 = time.perf_counter()
    interactions(problem, order=2)
    out["pairs_first_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    interactions(problem, order=2)
    out["pairs_steady_s"] = time.perf_counter() - t0

    pool3 = pool[:16]
    problem3 = build_problem(model, prompts, parse_components(",".join(pool3), model.config),
                             direction="denoising")
    t0 = time.perf_counter()
    _, _, values3 = interactions(problem3, order=3)
    out["order3_s"] = time.perf_counter() - t0
    out["order3_heads"] = len(pool3)
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


def worker_torch(ckpt: str, data: str, pool: list[str], spawn: float, n_pairs: int) -> dict:
    """Every subset of size <= 2 of the pool as batch rows of an expert's torch baseline; INT_ij per prompt."""
    import torch

    from common import TorchHeadPatcher, read_token_prompts, subsets_up_to, torch_device

    clean, corrupted, target, foil = read_token_prompts(data)
    device = torch_device()
    patcher = TorchHeadPatcher(ckpt, device)
    heads = [layer_head(name) for name in pool]
    runs = subsets_up_to(len(heads), 2)

    def sweep() -> np.ndarray:
        patcher.cache_source(clean)
        f = dict(zip(runs, patcher.values(runs, heads, corrupted, target, foil)))  # {subset: [P]}
        pairs = [s for s in runs if len(s) == 2]
        return np.stack([f[(i, j)] - f[(i,)] - f[(j,)] + f[()] for i, j in pairs], axis=1)  # [P, pairs]

    ints = sweep()  # values come back to the host: the sweep has finished
    whole = time.time() - spawn
    t0 = time.perf_counter()
    sweep()
    steady = time.perf_counter() - t0
    return dict(whole_s=whole, steady_s=steady, ints=ints.tolist(), torch=torch.__version__, device=device,
                threads=torch.get_num_threads(), rows=len(runs) * len(clean))


def worker_tl(ckpt: str, data: str, pool: list[str], spawn: float, n_pairs: int) -> dict:
    """TransformerLens brute force: four run_with_hooks per pair, on the first n_pairs pairs."""
    import torch
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import PreTrainedTokenizerFast

    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = [json.loads(line) for line in Path(data).read_text().splitlines()]
    clean = torch.tensor([r["clean_ids"] for r in rows], device=device)
    corrupted = torch.tensor([r["corrupted_ids"] for r in rows], device=device)
    target = torch.tensor([r["target_id"] for r in rows], device=device)
    foil = torch.tensor([r["foil_id"] for r in rows], device=device)
    batch = torch.arange(len(rows), device=device)
    tok = PreTrainedTokenizerFast(tokenizer_file=str(Path(ckpt) / "tokenizer.json"))
    model = TransformerBridge.boot_transformers(ckpt, device=device, tokenizer=tok)
    model.eval()
    heads = [layer_head(name) for name in pool]

    def metric(logits):
        last = logits[:, -1]
        return (last[batch, target] - last[batch, foil]).mean().item()

    def patch(layer, head):
        def hook(z, hook):
            z[:, :, head] = cache[f"blocks.{layer}.attn.hook_z"][:, :, head]
            return z
        return (f"blocks.{layer}.attn.hook_z", hook)

    setup = time.time() - spawn
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
    return dict(setup_s=setup, seconds=time.perf_counter() - t0, n_pairs=len(pairs), int_mean=result,
                forward_passes=4 * len(pairs), torch=torch.__version__, device=device)


WORKERS = {"intjax-library": worker_intjax_library, "torch": worker_torch, "tl": worker_tl}


def run_worker(tool: str, ckpt: Path, data: Path, pool: list[str], n_pairs: int = 0) -> dict:
    """Run one worker in a fresh Python process and return its RESULT line."""
    _, out = timed_subprocess([__file__, "--worker", tool, "--spawn", str(time.time()), "--ckpt", str(ckpt),
                               "--data", str(data), "--pool-names", ",".join(pool), "--n-pairs", str(n_pairs)])
    return json.loads(out.split("RESULT ", 1)[1])


def main() -> None:
    """Run the intjax command (cold, warm), the library, torch and TransformerLens workers; print the comparison."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--tokens", type=int, default=15)
    p.add_argument("--pool", type=int, default=24, help="heads in the pool: the first N of L0H0, L0H1, L1H0, ...")
    p.add_argument("--tl-pairs", default="24", help="pairs TransformerLens runs: a number or 'all'")
    p.add_argument("--skip-tl", action="store_true", help="no TransformerLens run")
    p.add_argument("--skip-torch", action="store_true", help="no batched-torch baseline run")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--spawn", type=float, help=argparse.SUPPRESS)
    p.add_argument("--ckpt", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--pool-names", help=argparse.SUPPRESS)
    p.add_argument("--n-pairs", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        from intjax.runtime import exact_matmuls

        with exact_matmuls():  # as the intjax command computes
            result = WORKERS[args.worker](args.ckpt, args.data, args.pool_names.split(","), args.spawn, args.n_pairs)
            print("RESULT " + json.dumps(result))
        return

    pool = HEADS24[: args.pool]
    n = len(pool)
    total_pairs = n * (n - 1) // 2
    ckpt = gpt2_small_checkpoint()
    data = random_prompts(CACHE / f"prompts_{args.prompts}x{args.tokens}.jsonl", args.prompts, args.tokens)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["INTJAX_COMPILATION_CACHE"] = str(Path(tmp) / "xla")  # empty: the first run compiles all
        spec, order = ",".join(pool), ["--order", "2"]
        cold, arrays, summary = intjax_patch(ckpt, data, spec, Path(tmp) / "cold", order)
        progress(f"[interactions] intjax patch --order 2, cold compilation cache: {cold:.1f} s")
        warm, _, _ = intjax_patch(ckpt, data, spec, Path(tmp) / "warm", order)  # same cache, fresh --out
        progress(f"[interactions] intjax patch --order 2, warm compilation cache: {warm:.1f} s")
        if not args.skip_torch:
            results["torch"] = run_worker("torch", ckpt, data, pool)
            progress(f"[interactions] torch: whole process {results['torch']['whole_s']:.1f} s, max |intjax - torch| "
                     f"= {np.abs(arrays['int2_denoising'] - np.array(results['torch']['ints'])).max():.2e}")
        if not args.skip_tl:
            n_tl = total_pairs if args.tl_pairs == "all" else min(int(args.tl_pairs), total_pairs)
            results["tl"] = run_worker("tl", ckpt, data, pool, n_tl)
            progress(f"[interactions] TransformerLens: {results['tl']['seconds']:.1f} s for {n_tl} pairs")
        lib = run_worker("intjax-library", ckpt, data, pool)
    ints = arrays["int2_denoising"]  # [P, pairs], pairs in itertools.combinations order
    expected = [f"{pool[i]},{pool[j]}" for i, j in itertools.combinations(range(n), 2)]
    if summary["arrays"]["int2_denoising"]["items"] != expected:
        raise RuntimeError("intjax's int2_denoising items are not the pool's pairs in combinations order")
    runs = 1 + n + total_pairs
    print(f"# Exact pairwise interactions among {n} heads, GPT-2-small shape, {args.prompts} prompts x "
          f"{args.tokens} tokens, denoising, logit difference; intjax on {summary['devices'][0]}")
    print("whole process: the intjax command from spawn to exit; each baseline from spawn to its finished "
          "sweep (its exit not counted)")
    print(f"intjax patch --order 2 (command line): {cold:.1f} s cold compilation cache, {warm:.1f} s warm "
          f"(second run, same cache, fresh --out); {runs} patched runs (brute force: {4 * total_pairs})")
    print(f"intjax library in a warm process: interactions(order=2) {lib['pairs_first_s']:.2f} s first call, "
          f"{lib['pairs_steady_s']:.2f} s steady")
    if "torch" in results:
        th = results["torch"]
        diff = np.abs(ints - np.array(th["ints"])).max()
        print(f"torch batched (GPT2LMHeadModel, torch {th['torch']}, {th['device']}, {th['threads']} threads, "
              f"{th['rows']} rows): whole process {th['whole_s']:.1f} s, steady state {th['steady_s']:.2f} s")
        print(speedup_line(th["whole_s"], th["steady_s"], cold, warm, lib["pairs_steady_s"]))
        print(f"  agreement: max |intjax - torch| over {ints.size} INT values (prompts x pairs) = {diff:.2e} "
              f"(largest |INT| {np.abs(ints).max():.2f})")
    if "tl" in results:
        tl = results["tl"]
        sweep = tl["seconds"] * total_pairs / tl["n_pairs"]
        full = tl["setup_s"] + sweep
        label = ("measured" if tl["n_pairs"] == total_pairs
                 else f"scaled from {tl['n_pairs']} pairs measured in {tl['seconds']:.1f} s")
        diff = np.abs(ints.mean(0)[: tl["n_pairs"]] - np.array(tl["int_mean"])).max()
        print(f"TransformerLens brute force (torch {tl['torch']}, {tl['device']}): {sweep:.1f} s for all "
              f"{total_pairs} pairs ({label}), whole process {full:.1f} s with {tl['setup_s']:.1f} s of start-up")
        print(speedup_line(full, sweep, cold, warm, lib["pairs_steady_s"]))
        print(f"  agreement on the pairs both computed (mean over prompts): max |difference| = {diff:.2e}")
    print(f"third order among {lib['order3_heads']} heads (library): {lib['order3_s']:.1f} s, "
          f"{lib['order3_runs']} patched runs, peak RSS {lib['order3_peak_rss_gb']:.2f} GB (whole process so far)")
    print(f"linear estimates, all 144 heads (library): {lib['linear_s']:.2f} s = "
          f"{lib['linear_s'] / lib['forward_s']:.1f} forward-pass equivalents "
          f"(one f(alpha) forward over the {args.prompts} prompts: {lib['forward_s']:.2f} s)")


if __name__ == "__main__":
    main()
