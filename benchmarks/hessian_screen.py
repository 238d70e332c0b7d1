"""The Hessian screen of pair interactions (`intjax patch --order 2 --estimate hessian`) against the exact
answer: rank correlation and recall@k of its strongest pairs against the exact all-pairs sweep, its error
on the t-scaled family (source = base + t·(source − base)) with the fitted log-log slopes, and its time
against the NIE sweep and the exact sweep, each a whole `intjax patch` process run cold.

    python benchmarks/hessian_screen.py ioi       # ioi-small, all 16 heads, both directions
    python benchmarks/hessian_screen.py scaling   # ioi-small, error against t (float64, in process)
    python benchmarks/hessian_screen.py gpt2      # GPT-2 small's shape, random weights, 144 heads
    python benchmarks/hessian_screen.py gpt2_timing   # only its timing (16 prompts)
    python benchmarks/hessian_screen.py llama     # Llama-3.2-1B's shape cut to 2 layers, every head, timed
    python benchmarks/hessian_screen.py llama4    # the same cut to 4 layers
    python benchmarks/hessian_screen.py blocks    # one block's time by start layer, both HVP paths

Each part prints one JSON object (and writes it to OUT/PART.json).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import gpt2_small_checkpoint, intjax_executable, progress, random_prompts, timed_command  # noqa: E402

OUT = Path(os.environ.get("HESSIAN_BENCH_OUT", "/tmp/hessian-screen-bench"))


def patch(model: str, data: Path, out: Path, *args: str) -> tuple[float, dict]:
    """`intjax patch --components heads` as a user runs it, cold: (seconds spawn to exit, its estimates)."""
    from intjax.results import read_estimates

    env_cache = os.environ.setdefault("INTJAX_COMPILATION_CACHE", "off")
    assert env_cache == "off", "run the benchmark cold: INTJAX_COMPILATION_CACHE=off"
    wall = timed_command([intjax_executable(), "patch", "--model", model, "--data", str(data), "--components",
                          "heads", "--out", str(out), "--quiet", "--restart", *args])
    return wall, read_estimates(out)


def accuracy(screen, exact) -> dict:
    """Spearman (signed means and |means|), recall@10/50 of the screen's strongest pairs, errors."""
    from intjax.estimands.screen import recall_at, screen_check, spearman

    assert screen.items == exact.items
    s, e = screen.mean(), exact.mean()
    check = screen_check(screen.values, exact.values)
    return dict(pairs=len(s), spearman=spearman(s, e), spearman_abs=spearman(np.abs(s), np.abs(e)),
                recall_at_10=recall_at(screen.values, exact.values, 10),
                recall_at_50=recall_at(screen.values, exact.values, 50),
                max_abs_error=check["max_abs_error"], mean_abs_error=check["mean_abs_error"],
                exact_scale=check["exact_scale"], sign_agreement=check["sign_agreement"],
                worst=[(screen.items[k], round(float(e[k]), 4), round(float(s[k]), 4))
                       for k in np.argsort(-np.abs(s - e))[:5]])


def screen_against_exact(model: str, data: Path, folder: Path, directions: tuple[str, ...],
                         verify_top: int = 10) -> dict:
    """Per direction: the NIE sweep, the exact all-pairs sweep and the screen (with --verify-top), timed."""
    out = {}
    for d in directions:
        nie_s, _ = patch(model, data, folder / f"nie-{d}", "--direction", d)
        exact_s, exact = patch(model, data, folder / f"exact-{d}", "--direction", d, "--order", "2", "--force")
        screen_s, screen = patch(model, data, folder / f"screen-{d}", "--direction", d, "--order", "2",
                                 "--estimate", "hessian", "--verify-top", str(verify_top))
        check = dict(zip(screen[f"screen_check_{d}"].items, screen[f"screen_check_{d}"].values[0]))
        out[d] = dict(accuracy(screen[f"int2_hessian_{d}"], exact[f"int2_{d}"]), verify_top=check,
                      seconds=dict(nie=nie_s, exact=exact_s, screen=screen_s))
        progress(f"{d}: {json.dumps(out[d])}")
    return out


def ioi() -> dict:
    """ioi-small, its 16 heads, 16 IOI prompts (ABC corruption), both directions."""
    import intjax
    from intjax.ioi.task import ioi_prompts

    _, tokenizer = intjax.load_model("ioi-small")
    data = ioi_prompts(tokenizer, 16, seed=0).write_jsonl(OUT / "ioi16.jsonl")
    result = screen_against_exact("ioi-small", data, OUT / "ioi", ("noising", "denoising"))
    for d in result:  # the pair the issue names as strongly non-affine
        exact, screen = (read(OUT / "ioi" / f"{kind}-{d}", f"int2{suffix}_{d}")
                         for kind, suffix in (("exact", ""), ("screen", "_hessian")))
        result[d]["L0H1,L1H0"] = dict(exact=float(exact.column("L0H1,L1H0").mean()),
                                      screen=float(screen.column("L0H1,L1H0").mean()))
    return result


def read(folder: Path, name: str):
    from intjax.results import read_estimates

    return read_estimates(folder)[name]


def scaling(ts=(1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125), strongest: int = 20) -> dict:
    """|INT_ij(t)| and |H_ij(t) − INT_ij(t)| on the t-scaled family of ioi-small's heads (float64, noising,
    16 prompts), under frozen and recompute semantics: log-log slopes per pair over t ≤ 0.25 (the local
    regime), medians over the pairs strongest at t = 1."""
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    import intjax
    from intjax.estimands import interactions, loglog_slope
    from intjax.estimands.hessian import base_hessian, pair_values
    from intjax.ioi.task import ioi_prompts
    from intjax.patching import build_problem, parse_components

    model, tokenizer = intjax.load_model("ioi-small", dtype=jnp.float64)
    prompts = ioi_prompts(tokenizer, 16, seed=0).prompts
    heads = parse_components("heads", model.config)
    out = {}
    for semantics in ("frozen", "recompute"):
        problem = build_problem(model, prompts, heads, semantics=semantics)
        ints, errs = [], []
        for t in ts:
            scaled = problem.with_source_scale(t)
            exact = interactions(scaled, 2)[1].mean(0)
            ints.append(np.abs(exact))
            errs.append(np.abs(pair_values(base_hessian(scaled)).mean(0) - exact))
        ints, errs = np.array(ints), np.array(errs)  # [t, pairs]
        top = np.argsort(-ints[0])[:strongest]
        local = np.array(ts) <= 0.25
        slope_int = [loglog_slope(np.array(ts)[local], ints[local, k]) for k in top]
        slope_err = [loglog_slope(np.array(ts)[local], errs[local, k]) for k in top]
        out[semantics] = dict(
            t=list(ts), median_abs_int=np.median(ints[:, top], axis=1).tolist(),
            median_abs_error=np.median(errs[:, top], axis=1).tolist(),
            median_relative_error=np.median(errs[:, top] / ints[:, top], axis=1).tolist(),
            median_slope_int=float(np.median(slope_int)), median_slope_error=float(np.median(slope_err)),
            median_slope_gap=float(np.median(np.array(slope_err) - np.array(slope_int))))
        progress(f"{semantics}: {json.dumps(out[semantics])}")
    return out


def gpt2(accuracy_prompts: int = 4, timing_prompts: int = 16) -> dict:
    """GPT-2 small's shape with random weights (HF's initialisation), 144 heads, noising: accuracy of the
    screen against the exact all-pairs sweep on a few prompts, and the screen's time against the NIE sweep
    on 16 prompts."""
    ckpt = str(gpt2_small_checkpoint(OUT / "gpt2-small-random"))
    few = random_prompts(OUT / f"gpt2-{accuracy_prompts}.jsonl", accuracy_prompts, 15)
    out = dict(accuracy=screen_against_exact(ckpt, few, OUT / "gpt2-accuracy", ("noising",)))
    return dict(out, **gpt2_timing(timing_prompts))


def gpt2_timing(timing_prompts: int = 16) -> dict:
    """The screen's time against the NIE sweep at GPT-2 small's shape (144 heads, noising), cold processes."""
    ckpt = str(gpt2_small_checkpoint(OUT / "gpt2-small-random"))
    many = random_prompts(OUT / f"gpt2-{timing_prompts}.jsonl", timing_prompts, 15)
    nie_s, _ = patch(ckpt, many, OUT / "gpt2-nie16", "--direction", "noising")
    screen_s, screen = patch(ckpt, many, OUT / "gpt2-screen16", "--direction", "noising", "--order", "2",
                             "--estimate", "hessian")
    out = dict(nie=nie_s, screen=screen_s, ratio=screen_s / nie_s)
    progress(f"timing: {json.dumps(out)}")
    return dict(timing_16_prompts=out)


def blocks(prompts: int = 4, block: int = 8) -> dict:
    """In process, GPT-2 small's shape: seconds of one block of `block` unit tangents (the heads of its start
    layer) by start layer, through the layer-by-layer products and through reverse mode over the evaluator's
    traced-start loop (`_hvp_from_layer`, the path games with edges take), the second call of each (the
    first compiles), and their largest difference."""
    import time

    import jax

    import intjax
    from intjax.estimands import hessian
    from intjax.estimands.layerwise_hvp import layerwise_hvp
    from intjax.patching import build_problem, parse_components, read_prompts
    from intjax.patching.evaluate import compile_view

    model, _ = intjax.load_model(str(gpt2_small_checkpoint(OUT / "gpt2-small-random")), tokenizer=False)
    data = read_prompts(random_prompts(OUT / f"gpt2-{prompts}.jsonl", prompts, 15))
    problem = build_problem(model, data, parse_components("heads", model.config), direction="noising")
    game, width, H = compile_view(problem), problem.slots, model.config.n_heads
    alpha = jax.device_put(np.zeros((prompts, width), np.float32))

    def twice(fn, *args):
        jax.block_until_ready(fn(*args))
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        return np.asarray(out), time.perf_counter() - t0

    out = {}
    for start in (0, 6, model.config.n_layers - 1):
        tangents = np.zeros((block, width), np.float32)
        tangents[np.arange(block), H * start + np.arange(block)] = 1
        tangents, at = jax.device_put(tangents), np.int32(start)
        new, new_s = twice(layerwise_hvp, game, tangents, at)
        old, old_s = twice(hessian._hvp_from_layer, game, alpha, tangents, at)
        rows = np.flatnonzero(problem.first_layers() >= start)
        out[f"start_{start}"] = dict(layerwise_s=new_s, reverse_over_loop_s=old_s,
                                     max_abs_difference=float(np.abs(new[..., rows] - old[..., rows]).max()))
        progress(f"start {start}: {json.dumps(out[f'start_{start}'])}")
    return dict(prompts=prompts, block=block, **out)


def llama_checkpoint(folder: Path, layers: int) -> Path:
    """Llama-3.2-1B's shape (width 2048, 32 query and 8 key/value heads, MLP 8192, vocabulary 128,256,
    llama3 RoPE, tied unembedding) with `layers` layers and random weights (HF's initialisation)."""
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=layers, num_attention_heads=32,
                         num_key_value_heads=8, head_dim=64, vocab_size=128256, max_position_embeddings=131072,
                         tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, rope_parameters=dict(
                             rope_type="llama3", rope_theta=500000.0, factor=32.0, low_freq_factor=1.0,
                             high_freq_factor=4.0, original_max_position_embeddings=8192))
    LlamaForCausalLM(config).eval().save_pretrained(folder)
    return folder


def llama(layers: int = 2, prompts: int = 16) -> dict:
    """The screen over every head of a Llama-3.2-1B-shaped model cut to `layers` layers, against its NIE
    sweep (cold processes, noising)."""
    ckpt = str(llama_checkpoint(OUT / f"llama-1b-shape-{layers}l", layers))
    data = random_prompts(OUT / f"llama-{prompts}.jsonl", prompts, 15, vocab=128256)
    nie_s, _ = patch(ckpt, data, OUT / f"llama{layers}-nie", "--direction", "noising")
    screen_s, _ = patch(ckpt, data, OUT / f"llama{layers}-screen", "--direction", "noising", "--order", "2",
                        "--estimate", "hessian")
    out = dict(layers=layers, heads=32 * layers, nie=nie_s, screen=screen_s, ratio=screen_s / nie_s)
    progress(f"llama: {json.dumps(out)}")
    return out


if __name__ == "__main__":
    part = sys.argv[1] if len(sys.argv) > 1 else "ioi"
    OUT.mkdir(parents=True, exist_ok=True)
    parts = {"ioi": ioi, "scaling": scaling, "gpt2": gpt2, "gpt2_timing": gpt2_timing, "llama": llama,
             "llama4": lambda: llama(4), "blocks": blocks}
    result = dict(part=part, load_average_before=os.getloadavg(), **parts[part]())
    result["load_average_after"] = os.getloadavg()
    (OUT / f"{part}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
