"""Edges (path patching) against node patching: the whole `intjax patch` command, cold (no compilation
cache), with its programs and compile seconds from `summary.json`, the sweep's matmul FLOPs and the warm
sweep (`evaluate` once its programs are compiled, median of 3), on ioi-small and on GPT-2 small's shape
(random weights).

    python benchmarks/edges_vs_nodes.py [--rows ioi,gpt2,inputs]

Prompts: ioi-small's `ioi_prompts(tokenizer, 8, seed=0)` as token ids; for GPT-2 small's shape 8 prompts
of 16 random ids whose last 8 are corrupted. Noising only. BENCHMARKS.md has the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import gpt2_small_checkpoint  # noqa: E402

ROWS = {  # name -> (model, [(components, semantics, also the whole command)])
    "ioi": ("ioi-small", [("heads", "recompute", True), ("heads>heads.q", "frozen", True),
                          ("heads>heads.q", "recompute", True)]),
    "gpt2": ("gpt2-small-shape", [("heads", "recompute", True), ("heads>logits", "frozen", True),
                                  ("heads>logits", "recompute", True)]),
    "inputs": ("gpt2-small-shape", [("heads", "frozen", False), ("heads,L0H0>L11H0.q", "frozen", False),
                                    ("heads,L0H0>L11H0", "frozen", False)]),
}


def prompts_file(model: str, folder: Path) -> Path:
    """The benchmark's 8 prompts for `model`, as token ids."""
    path = folder / f"{model}.jsonl"
    rows = []
    if model == "ioi-small":
        import intjax
        from intjax.ioi import ioi_prompts

        ps = ioi_prompts(intjax.load_model("ioi-small")[1], 8, seed=0).prompts
        rows = [dict(clean_ids=[int(i) for i in c], corrupted_ids=[int(i) for i in x], target_id=int(t),
                     foil_id=int(f)) for c, x, t, f in zip(ps.clean, ps.corrupted, ps.target, ps.foil)]
    else:
        rng = np.random.default_rng(0)
        for _ in range(8):
            clean = rng.integers(0, 50257, 16)
            corrupted = clean.copy()
            corrupted[8:] = rng.integers(0, 50257, 8)
            rows.append(dict(clean_ids=clean.tolist(), corrupted_ids=corrupted.tolist(),
                             target_id=int(rng.integers(50257)), foil_id=int(rng.integers(50257))))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def whole_command(model: str, data: Path, components: str, semantics: str, out: Path) -> str:
    """One cold `intjax patch` process: wall seconds, programs and compile seconds."""
    env = {**os.environ, "INTJAX_COMPILATION_CACHE": "off"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "intjax", "patch", "--model", model, "--data", str(data), "--components",
                    components, "--semantics", semantics, "--direction", "noising", "--quiet", "--out", str(out)],
                   check=True, env=env, capture_output=True)
    wall = time.perf_counter() - t0
    c = json.loads((out / "summary.json").read_text())["compilation"]
    return f"whole process {wall:.1f} s, {c['programs']} programs ({c['compile_s']:.1f} s compiling)"


def warm_sweep(model, prompts, components: str, semantics: str) -> tuple[int, str]:
    """Median of 3 sweeps of every single-component mask, once the programs are compiled, and the sweep's
    matmul FLOPs (`patched_run_flops`: one mask at a time, prefix sharing not counted)."""
    from intjax.patching import build_problem, evaluate, parse_components, patched_run_flops

    comps = parse_components(components, model.config)
    problem = build_problem(model, prompts, comps, semantics=semantics)
    masks = np.eye(len(comps))
    evaluate(problem, masks)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        evaluate(problem, masks)
        times.append(time.perf_counter() - t0)
    flops = patched_run_flops(problem, masks)
    return len(comps), f"{flops / 1e9:.2f} GFLOP | warm sweep {np.median(times):.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="ioi,gpt2,inputs")
    args = parser.parse_args()
    import intjax
    from intjax.patching.prompts import make_prompt_set, read_prompt_rows

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for row in args.rows.split(","):
            name, cases = ROWS[row]
            model_path = "ioi-small" if name == "ioi-small" else str(gpt2_small_checkpoint())
            data = prompts_file(name, tmp)
            model = intjax.load_model(model_path, tokenizer=False)[0]
            prompts = make_prompt_set(read_prompt_rows(data))
            for k, (components, semantics, command) in enumerate(cases):
                n, warm = warm_sweep(model, prompts, components, semantics)
                cold = whole_command(model_path, data, components, semantics, tmp / f"{row}{k}") if command else ""
                print(f"{name} | {components} | {n} | {semantics} | {cold} | {warm}", flush=True)


if __name__ == "__main__":
    main()
