"""NIE of all 144 heads of a GPT-2-small-shaped model: intjax against TransformerLens.

    python benchmarks/nie_heads_vs_transformerlens.py [--prompts 16] [--tokens 15]

The same sweep in both tools, side by side in one run: patch each head's output
(all positions) from the clean run into the corrupted run (TransformerLens's
`get_act_patch_attn_head_out_all_pos` on a `TransformerBridge`; intjax's
denoising direction), metric = logit difference at the last position. Each tool
runs in a fresh Python process:

- whole process: from process start (imports, model loading, clean cache,
  compilation) to the finished sweep;
- steady state: the same sweep again in the warm process.

intjax runs twice: with an empty compilation cache (a first run) and again
with the programs the first run cached (what every later run of the same
command sees; `intjax` persists compiled programs in ~/.cache/intjax/xla).

intjax's efficiency = the sweep's minimal matmul FLOPs (`patched_run_flops`)
divided by (this machine's float32 matmul FLOP/s, measured in the same run, ×
intjax's steady-state time of the sweep). Needs the bench extra
(`bash scripts/install.sh test,bench`).
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
from common import CACHE, gpt2_small_checkpoint, matmul_flops_per_s, random_prompts, timed_subprocess  # noqa: E402


def worker_intjax(ckpt: str, prompts_path: str, spawn: float) -> dict:
    """The sweep in intjax, as a user would write it."""
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

    problem, values = sweep()
    whole = time.time() - spawn
    t0 = time.perf_counter()
    sweep()
    steady = time.perf_counter() - t0
    t0 = time.perf_counter()
    evaluate(problem, masks)
    steady_eval = time.perf_counter() - t0
    return dict(whole_s=whole, steady_s=steady, steady_eval_s=steady_eval,
                flops=int(patched_run_flops(problem, masks)), per_head=values.mean(1).tolist(),
                device=str(jax.devices()[0]))


def worker_tl(ckpt: str, prompts_path: str, spawn: float) -> dict:
    """The sweep in TransformerLens 4.x: TransformerBridge + get_act_patch_attn_head_out_all_pos."""
    import torch
    from transformer_lens import patching
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import PreTrainedTokenizerFast

    rows = [json.loads(line) for line in Path(prompts_path).read_text().splitlines()]
    clean = torch.tensor([r["clean_ids"] for r in rows])
    corrupted = torch.tensor([r["corrupted_ids"] for r in rows])
    target = torch.tensor([r["target_id"] for r in rows])
    foil = torch.tensor([r["foil_id"] for r in rows])
    batch = torch.arange(len(rows))
    tok = PreTrainedTokenizerFast(tokenizer_file=str(Path(ckpt) / "tokenizer.json"))
    model = TransformerBridge.boot_transformers(ckpt, device="cpu", tokenizer=tok)
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
                torch=torch.__version__, threads=torch.get_num_threads())


def main() -> None:
    """Run both workers and print the comparison table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--tokens", type=int, default=15)
    p.add_argument("--skip-tl", action="store_true", help="run intjax only")
    p.add_argument("--worker", choices=["intjax", "tl"], help=argparse.SUPPRESS)
    p.add_argument("--spawn", type=float, help=argparse.SUPPRESS)
    p.add_argument("--ckpt", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        fn = worker_intjax if args.worker == "intjax" else worker_tl
        print("RESULT " + json.dumps(fn(args.ckpt, args.data, args.spawn)))
        return

    ckpt = gpt2_small_checkpoint()
    data = random_prompts(CACHE / f"prompts_{args.prompts}x{args.tokens}.jsonl", args.prompts, args.tokens)
    peak = matmul_flops_per_s()
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        os.environ["INTJAX_COMPILATION_CACHE"] = cache  # empty: the first run compiles everything
        runs = ["intjax", "intjax"] + ([] if args.skip_tl else ["tl"])
        for n, tool in enumerate(runs):
            _, out = timed_subprocess([__file__, "--worker", tool, "--spawn", str(time.time()),
                                       "--ckpt", str(ckpt), "--data", str(data)])
            results["intjax_warm" if n == 1 else tool] = json.loads(out.split("RESULT ", 1)[1])
    ij, warm = results["intjax"], results["intjax_warm"]
    eff = ij["flops"] / (peak * ij["steady_eval_s"])
    print(f"# NIE of 144 heads, GPT-2-small shape, {args.prompts} prompts x {args.tokens} tokens, {ij['device']}")
    print(f"matmul peak measured: {peak / 1e9:.0f} GFLOP/s (float32, JAX)")
    print(f"intjax: whole process {ij['whole_s']:.1f} s (cold compilation cache), "
          f"{warm['whole_s']:.1f} s (warm: second run of the same command); "
          f"steady state {ij['steady_s']:.2f} s (evaluate alone {ij['steady_eval_s']:.2f} s)")
    print(f"intjax: minimal FLOPs {ij['flops'] / 1e12:.3f} TFLOP -> efficiency {100 * eff:.0f}% of matmul peak")
    if "tl" in results:
        tl = results["tl"]
        diff = np.abs(np.array(ij["per_head"]) - np.array(tl["per_head"])).max()
        print(f"TransformerLens (torch {tl['torch']}, {tl['threads']} threads): whole process "
              f"{tl['whole_s']:.1f} s, steady state {tl['steady_s']:.2f} s")
        print(f"speed-up: whole process {tl['whole_s'] / ij['whole_s']:.1f}x cold, "
              f"{tl['whole_s'] / warm['whole_s']:.1f}x warm; steady state {tl['steady_s'] / ij['steady_s']:.1f}x")
        print(f"agreement: max |intjax - TransformerLens| over the 144 heads = {diff:.2e}")


if __name__ == "__main__":
    main()
