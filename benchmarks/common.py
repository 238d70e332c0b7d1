"""Shared by the benchmarks: a random GPT-2-small-shaped HF checkpoint, prompts, timing."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache"


def gpt2_small_checkpoint(folder: Path = CACHE / "gpt2-small-random", seed: int = 0) -> Path:
    """A GPT2LMHeadModel with the real gpt2 config and random weights (made once, cached).

    Weights use HF's own initialisation: speed does not depend on their values.
    """
    if (folder / "model.safetensors").is_file():
        return folder
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config()).eval()
    model.save_pretrained(folder, safe_serialization=True)
    tok = ByteLevelBPETokenizer()  # a small stand-in tokenizer; the benchmarks feed token ids
    tok.train_from_iterator(["When Mary and John went to the store"] * 4, vocab_size=300, show_progress=False)
    tok.save(str(folder / "tokenizer.json"))
    return folder


def random_prompts(path: Path, n_prompts: int = 16, n_tokens: int = 15, vocab: int = 50257, seed: int = 0) -> Path:
    """Write a PROMPTS.jsonl of random clean/corrupted token pairs."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        for _ in range(n_prompts):
            fh.write(json.dumps(dict(
                clean_ids=rng.integers(0, vocab, n_tokens).tolist(),
                corrupted_ids=rng.integers(0, vocab, n_tokens).tolist(),
                target_id=int(rng.integers(vocab)), foil_id=int(rng.integers(vocab)),
            )) + "\n")
    return path


def timed_subprocess(args: list[str]) -> tuple[float, str]:
    """Wall time of a fresh Python process (imports and model loading included), and its stdout."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode:
        raise RuntimeError(f"{args} failed:\n{r.stderr[-3000:]}")
    return wall, r.stdout


def matmul_flops_per_s(n: int = 2048, repeats: int = 10) -> float:
    """The machine's float32 matmul throughput as JAX sees it (best of `repeats`)."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = min(_time(lambda: f(a).block_until_ready()) for _ in range(repeats))
    return 2 * n**3 / best


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
