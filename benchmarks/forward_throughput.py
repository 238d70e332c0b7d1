"""Forward throughput of intjax's GPT-2 (prompts/s), jit + vmap, on random weights.

    python benchmarks/forward_throughput.py [--shape gpt2] [--tokens 15] [--batch 16]

Shapes: gpt2 (124M, the real config), tiny. Weights are random (no hub needed):
throughput does not depend on their values.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from intjax.model import GPT2, Blocks, GPT2Config

SHAPES = {
    "gpt2": GPT2Config(),
    "gpt2-medium": GPT2Config(d_model=1024, n_layers=24, n_heads=16, d_mlp=4096),
    "tiny": GPT2Config(vocab_size=300, n_positions=32, d_model=64, n_layers=3, n_heads=4, d_mlp=256),
}


def random_model(cfg: GPT2Config, seed: int = 0) -> GPT2:
    """A GPT2 with N(0, 0.02) weights of the given shape."""
    L, H, D, Dh, M = cfg.n_layers, cfg.n_heads, cfg.d_model, cfg.d_head, cfg.d_mlp
    shapes = dict(
        ln1_w=(L, D), ln1_b=(L, D), W_Q=(L, H, D, Dh), b_Q=(L, H, Dh), W_K=(L, H, D, Dh),
        b_K=(L, H, Dh), W_V=(L, H, D, Dh), b_V=(L, H, Dh), W_O=(L, H, Dh, D), b_O=(L, D),
        ln2_w=(L, D), ln2_b=(L, D), W_in=(L, D, M), b_in=(L, M), W_out=(L, M, D), b_out=(L, D),
    )
    keys = iter(jax.random.split(jax.random.key(seed), len(shapes) + 4))

    def normal(shape):
        return 0.02 * jax.random.normal(next(keys), shape, jnp.float32)

    return GPT2(
        config=cfg, W_E=normal((cfg.vocab_size, D)), W_pos=normal((cfg.n_positions, D)),
        blocks=Blocks(**{k: normal(s) for k, s in shapes.items()}),
        lnf_w=1 + normal((D,)), lnf_b=normal((D,)),
    )


def main() -> None:
    """Time the jitted, vmapped forward pass and print prompts/s."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", default="gpt2", choices=sorted(SHAPES))
    p.add_argument("--tokens", type=int, default=15)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=20)
    args = p.parse_args()
    model = random_model(SHAPES[args.shape])
    fwd = jax.jit(jax.vmap(lambda t: model(t)[0]))
    tokens = np.random.default_rng(0).integers(0, model.config.vocab_size, (args.batch, args.tokens))
    t0 = time.perf_counter()
    fwd(tokens).block_until_ready()
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        fwd(tokens).block_until_ready()
        times.append(time.perf_counter() - t0)
    best, median = min(times), float(np.median(times))
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()})")
    print(f"shape {args.shape}, {model.n_params():,} parameters, batch {args.batch} x {args.tokens} tokens")
    print(f"first call (compile + run): {compile_s:.2f} s")
    print(f"steady state: median {median * 1e3:.1f} ms, best {best * 1e3:.1f} ms per batch")
    print(f"throughput: {args.batch / median:.1f} prompts/s (median), {args.batch / best:.1f} (best)")


if __name__ == "__main__":
    main()
