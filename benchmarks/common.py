"""Shared by the benchmarks: a random GPT-2-small-shaped HF checkpoint, prompts, timing,
the `intjax patch` command run as a user runs it, and an expert's batched torch baseline."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

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


def progress(message: str) -> None:
    """A progress line on stderr, flushed at once (a run cut short by a time limit still shows it)."""
    print(message, file=sys.stderr, flush=True)


def intjax_executable() -> str:
    """The `intjax` console script of this Python environment (else the one on PATH)."""
    exe = Path(sys.executable).parent / "intjax"
    if exe.is_file():
        return str(exe)
    found = shutil.which("intjax")
    if found is None:
        raise RuntimeError("no `intjax` command: install intjax (bash scripts/install.sh test,bench)")
    return found


def timed_command(argv: list[str]) -> float:
    """Wall time of a command from spawn to exit (raises with its stderr if it fails)."""
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode:
        raise RuntimeError(f"{argv} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    return wall


def intjax_patch(ckpt: Path | str, data: Path | str, components: str, out: Path | str,
                 extra: Sequence[str] = ()) -> tuple[float, dict[str, np.ndarray], dict]:
    """`intjax patch --direction denoising` as a user runs it: (seconds spawn to exit, arrays, summary).

    The compilation cache is whatever $INTJAX_COMPILATION_CACHE names (the caller sets it);
    `out` must be a fresh folder, or the command resumes from its checkpoints.
    """
    from intjax.results import read_results

    wall = timed_command([intjax_executable(), "patch", "--model", str(ckpt), "--data", str(data),
                          "--components", components, "--direction", "denoising",
                          "--out", str(out), "--quiet", *extra])
    arrays, summary = read_results(out)
    return wall, arrays, summary


def read_token_prompts(path: Path | str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """clean, corrupted `[P, T]`, target, foil `[P]` of a PROMPTS.jsonl of equal-length token ids."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    lengths = {len(r["clean_ids"]) for r in rows} | {len(r["corrupted_ids"]) for r in rows}
    if len(lengths) != 1:
        raise ValueError(f"{path}: the torch baseline needs prompts of one length, got {sorted(lengths)}")
    clean = np.array([r["clean_ids"] for r in rows])
    corrupted = np.array([r["corrupted_ids"] for r in rows])
    return clean, corrupted, np.array([r["target_id"] for r in rows]), np.array([r["foil_id"] for r in rows])


def torch_device() -> str:
    """`cuda` when torch sees a GPU, else `cpu`."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def subsets_up_to(n: int, k: int) -> list[tuple[int, ...]]:
    """All subsets of range(n) with at most k members, by size then lexicographically."""
    return [s for j in range(min(k, n) + 1) for s in itertools.combinations(range(n), j)]


class TorchHeadPatcher:
    """An expert's batched head patching on `transformers.GPT2LMHeadModel`, written directly in torch.

    z = the input of `attn.c_proj` (every head's attention output, concatenated)
    is cached once from the source prompts. A sweep puts every patched run of
    every prompt in one batch row (row = run * P + prompt, base prompt tokens),
    and one forward pre-hook per layer on `attn.c_proj` overwrites, with index
    tensors, the head slices each row patches by the cached source values. Only
    the target and foil logits at the last position are computed.
    """

    def __init__(self, ckpt: Path | str, device: str, chunk_rows: int = 256) -> None:
        """Load the checkpoint (float32, eval mode) and register one pre-hook per layer."""
        from transformers import GPT2LMHeadModel

        self.device = device
        self.chunk_rows = chunk_rows
        self.model = GPT2LMHeadModel.from_pretrained(str(ckpt)).float().eval().to(device)
        cfg = self.model.config
        self.n_layers, self.n_heads = cfg.n_layer, cfg.n_head
        self.d_head = cfg.n_embd // cfg.n_head
        self.w_u = self.model.lm_head.weight  # [vocab, d_model], tied to the embedding
        self.source: list = []  # per layer: z of the source prompts [P, T, H, d_head]
        self.recording = False
        self.edits: list | None = None  # per layer: (rows, prompts, heads) index tensors of the running chunk
        for layer, block in enumerate(self.model.transformer.h):
            block.attn.c_proj.register_forward_pre_hook(self._hook(layer))

    def _hook(self, layer: int) -> Callable:
        """The pre-hook of one layer: record z, or overwrite the patched head slices of each row."""

        def hook(module, args: tuple) -> tuple | None:
            z = args[0].unflatten(-1, (self.n_heads, self.d_head))  # [B, T, H, d_head]
            if self.recording:
                self.source.append(z.clone())
                return None
            if self.edits is None:
                return None
            rows, prompts, heads = self.edits[layer]
            if len(rows):
                z = z.clone()
                z[rows, :, heads] = self.source[layer][prompts, :, heads]
            return (z.flatten(-2), *args[1:])

        return hook

    def cache_source(self, tokens: np.ndarray) -> None:
        """One forward pass over the source prompts, keeping every layer's z."""
        import torch

        self.source, self.recording = [], True
        try:
            with torch.no_grad():
                self.model.transformer(input_ids=torch.as_tensor(tokens, device=self.device), use_cache=False)
        finally:
            self.recording = False

    def values(self, subsets: Sequence[tuple[int, ...]], heads: Sequence[tuple[int, int]], base: np.ndarray,
               target: np.ndarray, foil: np.ndarray) -> np.ndarray:
        """Logit difference `[S, P]` of each patched run: subset s patches heads[i] (layer, head), i in s."""
        import torch

        P = base.shape[0]
        n_rows = len(subsets) * P
        # one edit per (run, member, prompt): batch row run * P + prompt gets head `member` patched
        run_of = np.array([s for s, members in enumerate(subsets) for _ in members], dtype=np.int64)
        member = np.array([i for members in subsets for i in members], dtype=np.int64)
        layer_of = np.array([heads[i][0] for i in member], dtype=np.int64).repeat(P)
        head_of = np.array([heads[i][1] for i in member], dtype=np.int64).repeat(P)
        row_of = (run_of[:, None] * P + np.arange(P)[None]).ravel()
        per_layer = []  # per layer: (rows, heads), sorted by row so that a chunk's edits are one slice
        for layer in range(self.n_layers):
            rows, hs = row_of[layer_of == layer], head_of[layer_of == layer]
            order = np.argsort(rows, kind="stable")
            per_layer.append((rows[order], hs[order]))

        base_t = torch.as_tensor(base, device=self.device)
        readout = torch.as_tensor(np.stack([target, foil], axis=1), device=self.device)  # [P, 2]
        out = torch.empty(n_rows, device=self.device)
        with torch.no_grad():
            for a in range(0, n_rows, self.chunk_rows):
                b = min(a + self.chunk_rows, n_rows)
                self.edits = []
                for rows, hs in per_layer:
                    lo, hi = np.searchsorted(rows, [a, b])
                    r = torch.as_tensor(rows[lo:hi] - a, device=self.device)
                    self.edits.append((r, torch.as_tensor(rows[lo:hi] % P, device=self.device),
                                       torch.as_tensor(hs[lo:hi], device=self.device)))
                prompt = torch.arange(a, b, device=self.device) % P
                try:
                    hidden = self.model.transformer(input_ids=base_t[prompt], use_cache=False).last_hidden_state
                finally:
                    self.edits = None
                logits = torch.einsum("bd,bkd->bk", hidden[:, -1], self.w_u[readout[prompt]])  # [B, 2]
                out[a:b] = logits[:, 0] - logits[:, 1]
        return out.cpu().numpy().astype(np.float64).reshape(len(subsets), P)


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


def speedup_line(peer_whole: float, peer_steady: float, cold: float, warm: float, intjax_steady: float) -> str:
    """The indented line giving intjax's speed-up over a peer: whole process (cold, warm) and steady state."""
    return (f"  speed-up of intjax: whole process {peer_whole / cold:.1f}x cold, {peer_whole / warm:.1f}x warm; "
            f"steady state {peer_steady / intjax_steady:.1f}x")
