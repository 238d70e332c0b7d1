"""XLA programs and seconds of `intjax patch` and `intjax demo --smoke`, whole process, cold and warm.

Runs each command as a user runs it (a fresh process, `python -m intjax` of the tree under test),
first with an empty persistent compilation cache (cold), then again with the cache it filled
(warm), and reads the programs built and the seconds compiling from JAX_LOG_COMPILES's lines
(so an older tree without `summary.json`'s `compilation` block is measured the same way). With
`--baseline TREE` (a checkout of an earlier commit, e.g. `git worktree add /tmp/before <commit>`)
every row is also run with that tree, side by side in the same run.

    python benchmarks/compiled_programs.py [--baseline /tmp/before] [--rows nie,order2,order2_chunk87,demo_smoke]

The model: a 12-layer, 12-head GPT-2 of width 48 (144 heads, random weights), 4 prompts of 12
random tokens; the rows are issue 26's table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ROWS = {
    "nie": ["patch", "--components", "heads", "--direction", "noising"],
    "order2": ["patch", "--components", "heads", "--direction", "noising", "--order", "2", "--force"],
    "order2_chunk87": ["patch", "--components", "heads", "--direction", "noising", "--order", "2", "--force",
                       "--chunk", "87"],
    "demo_smoke": ["demo", "--smoke"],
}


def make_inputs(folder: Path) -> tuple[Path, Path]:
    """The 12 x 12 width-48 GPT-2 checkpoint and 4 prompts (made once per run)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import save_hf_gpt2

    model = folder / "gpt2-12x12-w48"
    hf = save_hf_gpt2(model, n_layer=12, n_head=12, n_embd=48, n_positions=64)
    rng = np.random.default_rng(0)
    vocab = hf.config.vocab_size
    data = folder / "prompts.jsonl"
    data.write_text("".join(json.dumps(dict(
        clean_ids=rng.integers(0, vocab, 12).tolist(), corrupted_ids=rng.integers(0, vocab, 12).tolist(),
        target_id=int(rng.integers(vocab)), foil_id=int(rng.integers(vocab)))) + "\n" for _ in range(4)))
    return model, data


def run(tree: Path, argv: list[str], cache: Path, out: Path) -> dict:
    """One command in a fresh process: wall seconds, programs and compile seconds from the log lines."""
    shutil.rmtree(out, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(tree), JAX_LOG_COMPILES="1", INTJAX_COMPILATION_CACHE=str(cache))
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "intjax", *argv, "--out", str(out), "--quiet"],
                       capture_output=True, text=True, env=env, cwd=tree)
    wall = time.perf_counter() - t0
    if r.returncode:
        raise RuntimeError(f"{argv} failed in {tree}:\n{r.stderr[-3000:]}")
    seconds = [float(s) for s in re.findall(r"Finished XLA compilation of .* in ([0-9.e-]+) sec", r.stderr)]
    return dict(wall_s=round(wall, 1), programs=len(seconds), compile_s=round(sum(seconds), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="an earlier checkout, run side by side")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of {', '.join(ROWS)}")
    args = parser.parse_args()
    trees = [("this tree", ROOT)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, data = make_inputs(tmp)
        print("| row | tree | programs cold | compile s cold | wall s cold | programs warm | wall s warm |")
        print("|---|---|---|---|---|---|---|")
        for row in args.rows.split(","):
            argv = ROWS[row] + ([] if row == "demo_smoke" else ["--model", str(model), "--data", str(data)])
            for label, tree in trees:
                cache = tmp / f"cache-{label}-{row}"
                cold = run(tree, argv, cache, tmp / "out")
                warm = run(tree, argv, cache, tmp / "out")
                print(f"| {row} | {label} | {cold['programs']} | {cold['compile_s']} | {cold['wall_s']} | "
                      f"{warm['programs']} | {warm['wall_s']} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
