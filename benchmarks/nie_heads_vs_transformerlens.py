"""NIE of all 144 heads of a GPT-2-small-shaped model: the intjax command against an expert's
batched torch and against TransformerLens, side by side in one run.

    python benchmarks/nie_heads_vs_transformerlens.py [--prompts 16] [--tokens 15] [--skip-tl] [--skip-torch]

The same sweep in each tool: patch each head's output (all positions) from
the clean run into the corrupted run (intjax's denoising direction),
metric = logit difference at the last position.

- intjax: `intjax patch --components heads --direction denoising` run as a
  user runs it, timed from spawn to exit: once with an empty compilation cache
  (cold: $INTJAX_COMPILATION_CACHE points at a fresh folder) and once more
  with the programs the first run cached (warm; a fresh --out). Its values are
  read back with `intjax.results.read_results`. A library worker then times
  the same sweep in a warm process (steady state) and gives the efficiency:
  the sweep's minimal matmul FLOPs (`patched_run_flops`) divided by (this
  machine's float32 matmul FLOP/s, measured in that process, x the steady
  time of `evaluate`).
- torch: an expert's batched baseline on `transformers.GPT2LMHeadModel`
  (`common.TorchHeadPatcher`): one clean pass caches every head's z, then the
  144 x P patched runs (plus P unpatched rows for f(0)) go through in batches
  of a few hundred rows with one pre-hook per layer on `attn.c_proj`; on
  `cuda` when torch sees a GPU.
- TransformerLens 4.x: `get_act_patch_attn_head_out_all_pos` on a
  `TransformerBridge` (on `cuda` when torch sees a GPU).

Each baseline runs in a fresh Python process; its whole-process time runs
from spawn to its finished sweep (its exit is not counted, which favours it),
and its steady state is the same sweep again in that warm process. Needs the
bench extra (`bash scripts/install.sh test,bench`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    CACHE, gpt2_small_checkpoint, intjax_patch, matmul_flops_per_s, progress, random_prompts, speedup_line,
    timed_subprocess,
)


def worker_intjax_library(ckpt: str, prompts_path: str, spawn: float) -> dict:
    """The same sweep as library calls in a warm process: steady-state time, FLOPs, matmul peak."""
    import jax

    import intjax
    from intjax.runtime import enable_compilation_cache

    enable_compilation_cache()  # as the intjax command does; the folder comes from the parent
    from intjax.patching import build_problem, evaluate, parse_components, patched_run_flops, read_prompts

    model, _ = intjax.load_model(ckpt, tokenizer=False)
    prompts = read_prompts(prompts_path)
    heads = parse_components("heads", model.config)
    masks = np.eye(len(heads))

    def sweep():
        problem = build_problem(model, prompts, heads, direction="denoising")
        return problem, evaluate(problem, masks)

    problem, _ = sweep()
    t0 = time.perf_counter()
    sweep()
    steady = time.perf_counter() - t0
    t0 = time.perf_counter()
    evaluate(problem, masks)
    steady_eval = time.perf_counter() - t0
    return dict(steady_s=steady, steady_eval_s=steady_eval, flops=int(patched_run_flops(problem, masks)),
                peak=matmul_flops_per_s(), device=str(jax.devices()[0]))


def worker_torch(ckpt: str, prompts_path: str, spawn: float) -> dict:
    """The sweep as an expert writes it in torch on transformers' GPT2LMHeadModel, batched.

    One clean pass caches every head's z; then every (head, prompt) patched run
    is one batch row of the corrupted prompt, plus one unpatched row per prompt
    for f(0) (the NIE is f(head) - f(0), as intjax reports it).
    """
    import torch

    from common import TorchHeadPatcher, read_token_prompts, torch_device

    clean, corrupted, target, foil = read_token_prompts(prompts_path)
    device = torch_device()
    patcher = TorchHeadPatcher(ckpt, device)
    heads = [(layer, head) for layer in range(patcher.n_layers) for head in range(patcher.n_heads)]
    runs = [()] + [(i,) for i in range(len(heads))]

    def sweep() -> np.ndarray:
        patcher.cache_source(clean)
        values = patcher.values(runs, heads, corrupted, target, foil)  # [1 + 144, P]
        return (values[1:] - values[0]).T  # [P, 144]

    nie = sweep()  # values come back to the host: the sweep has finished
    whole = time.time() - spawn
    t0 = time.perf_counter()
    sweep()
    steady = time.perf_counter() - t0
    return dict(whole_s=whole, steady_s=steady, nie=nie.tolist(), torch=torch.__version__, device=device,
                threads=torch.get_num_threads(), rows=len(runs) * len(clean))


def worker_tl(ckpt: str, prompts_path: str, spawn: float) -> dict:
    """The sweep in TransformerLens 4.x: TransformerBridge + get_act_patch_attn_head_out_all_pos."""
    import torch
    from transformer_lens import patching
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import PreTrainedTokenizerFast

    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = [json.loads(line) for line in Path(prompts_path).read_text().splitlines()]
    clean = torch.tensor([r["clean_ids"] for r in rows], device=device)
    corrupted = torch.tensor([r["corrupted_ids"] for r in rows], device=device)
    target = torch.tensor([r["target_id"] for r in rows], device=device)
    foil = torch.tensor([r["foil_id"] for r in rows], device=device)
    batch = torch.arange(len(rows), device=device)
    tok = PreTrainedTokenizerFast(tokenizer_file=str(Path(ckpt) / "tokenizer.json"))
    model = TransformerBridge.boot_transformers(ckpt, device=device, tokenizer=tok)
    model.eval()

    def metric(logits):
        last = logits[:, -1]
        return (last[batch, target] - last[batch, foil]).mean()

    def sweep():
        with torch.no_grad():
            _, cache = model.run_with_cache(clean)
            return patching.get_act_patch_attn_head_out_all_pos(model, corrupted, cache, metric)

    values = sweep()
    whole = time.time() - spawn
    t0 = time.perf_counter()
    sweep()
    steady = time.perf_counter() - t0
    return dict(whole_s=whole, steady_s=steady, per_head=values.flatten().tolist(),
                torch=torch.__version__, threads=torch.get_num_threads(), device=device)


WORKERS = {"intjax-library": worker_intjax_library, "torch": worker_torch, "tl": worker_tl}


def run_worker(tool: str, ckpt: Path, data: Path) -> dict:
    """Run one worker in a fresh Python process and return its RESULT line."""
    _, out = timed_subprocess([__file__, "--worker", tool, "--spawn", str(time.time()),
                               "--ckpt", str(ckpt), "--data", str(data)])
    return json.loads(out.split("RESULT ", 1)[1])


def main() -> None:
    """Run the intjax command (cold, warm), the library, torch and TransformerLens workers; print the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--tokens", type=int, default=15)
    p.add_argument("--skip-tl", action="store_true", help="no TransformerLens run")
    p.add_argument("--skip-torch", action="store_true", help="no batched-torch baseline run")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    p.add_argument("--spawn", type=float, help=argparse.SUPPRESS)
    p.add_argument("--ckpt", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        from intjax.runtime import exact_matmuls

        with exact_matmuls():  # as the intjax command computes
            print("RESULT " + json.dumps(WORKERS[args.worker](args.ckpt, args.data, args.spawn)))
        return

    ckpt = gpt2_small_checkpoint()
    data = random_prompts(CACHE / f"prompts_{args.prompts}x{args.tokens}.jsonl", args.prompts, args.tokens)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["INTJAX_COMPILATION_CACHE"] = str(Path(tmp) / "xla")  # empty: the first run compiles all
        cold, arrays, summary = intjax_patch(ckpt, data, "heads", Path(tmp) / "cold")
        progress(f"[nie] intjax patch, cold compilation cache: {cold:.1f} s")
        warm, _, _ = intjax_patch(ckpt, data, "heads", Path(tmp) / "warm")  # same cache, fresh --out
        progress(f"[nie] intjax patch, warm compilation cache: {warm:.1f} s")
        if not args.skip_torch:
            results["torch"] = run_worker("torch", ckpt, data)
            progress(f"[nie] torch: whole process {results['torch']['whole_s']:.1f} s, max |intjax - torch| = "
                     f"{np.abs(arrays['nie_denoising'] - np.array(results['torch']['nie'])).max():.2e}")
        if not args.skip_tl:
            results["tl"] = run_worker("tl", ckpt, data)
            progress(f"[nie] TransformerLens: whole process {results['tl']['whole_s']:.1f} s")
        lib = run_worker("intjax-library", ckpt, data)
    nie = arrays["nie_denoising"]  # [P, 144]
    eff = lib["flops"] / (lib["peak"] * lib["steady_eval_s"])
    print(f"# NIE of 144 heads, GPT-2-small shape, {args.prompts} prompts x {args.tokens} tokens, "
          f"denoising, logit difference; intjax on {summary['devices'][0]}")
    print("whole process: the intjax command from spawn to exit; each baseline from spawn to its finished "
          "sweep (its exit not counted)")
    print(f"intjax patch (command line): {cold:.1f} s cold compilation cache, {warm:.1f} s warm "
          f"(second run, same cache, fresh --out)")
    print(f"intjax library in a warm process: sweep {lib['steady_s']:.2f} s (evaluate alone "
          f"{lib['steady_eval_s']:.2f} s); minimal FLOPs {lib['flops'] / 1e12:.3f} TFLOP, matmul peak "
          f"{lib['peak'] / 1e9:.0f} GFLOP/s (float32, JAX) -> efficiency {100 * eff:.0f}% of matmul peak")
    if "torch" in results:
        th = results["torch"]
        diff = np.abs(nie - np.array(th["nie"])).max()
        print(f"torch batched (GPT2LMHeadModel, torch {th['torch']}, {th['device']}, {th['threads']} threads, "
              f"{th['rows']} rows): whole process {th['whole_s']:.1f} s, steady state {th['steady_s']:.2f} s")
        print(speedup_line(th["whole_s"], th["steady_s"], cold, warm, lib["steady_s"]))
        print(f"  agreement: max |intjax - torch| over {nie.size} NIE values (prompts x heads) = {diff:.2e} "
              f"(largest |NIE| {np.abs(nie).max():.2f})")
    if "tl" in results:
        tl = results["tl"]
        patched = nie.mean(0) + arrays["metric_corrupted"].mean()  # mean over prompts of f(head), as TL reports
        diff = np.abs(patched - np.array(tl["per_head"])).max()
        print(f"TransformerLens (torch {tl['torch']}, {tl['device']}, {tl['threads']} threads): whole process "
              f"{tl['whole_s']:.1f} s, steady state {tl['steady_s']:.2f} s")
        print(speedup_line(tl["whole_s"], tl["steady_s"], cold, warm, lib["steady_s"]))
        print(f"  agreement: max |intjax - TransformerLens| over the 144 heads (mean over prompts) = {diff:.2e}")


if __name__ == "__main__":
    main()
