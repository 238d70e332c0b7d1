"""Process-wide JAX settings intjax's commands use."""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import Iterator, Optional


def default_cache_dir() -> Optional[Path]:
    """Where compiled programs persist: $INTJAX_COMPILATION_CACHE ("off" disables),
    else ~/.cache/intjax/xla."""
    env = os.environ.get("INTJAX_COMPILATION_CACHE")
    if env == "off":
        return None
    return Path(env) if env else Path.home() / ".cache" / "intjax" / "xla"


def enable_compilation_cache(path: Optional[Path] = None) -> Optional[Path]:
    """Persist every compiled XLA program, so a repeated sweep skips compilation.

    Returns the folder used, or None when disabled. Safe to call more than once.
    """
    import jax

    path = path or default_cache_dir()
    if path is None:
        return None
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


@contextlib.contextmanager
def x64(on: bool = True) -> Iterator[None]:
    """JAX's 64-bit mode inside the block (when `on`), the previous setting restored after."""
    import jax

    before = jax.config.jax_enable_x64
    if on:
        jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", before)


def exact_matmuls() -> contextlib.AbstractContextManager:
    """Float32 matrix products in full float32 inside the block, unless $JAX_DEFAULT_MATMUL_PRECISION says otherwise.

    JAX multiplies float32 matrices in TF32 on NVIDIA GPUs by default (and in bf16 passes on TPUs):
    on an H200 that moved NIEs of GPT-2 small's shape by up to 1.4e-3 and pairwise interactions by up
    to 2.0e-3 against torch in float32. Interactions are differences of nearly equal values, so intjax's
    commands compute in full precision; CPUs are unaffected. JAX_DEFAULT_MATMUL_PRECISION=default restores
    JAX's choice (faster matrix units, TF32 errors).
    """
    import jax

    if os.environ.get("JAX_DEFAULT_MATMUL_PRECISION"):
        return contextlib.nullcontext()
    return jax.default_matmul_precision("highest")



def cast_floats(tree, dtype):
    """Every floating-point array of `tree` (a model, a problem) in `dtype`, in one compiled program
    per tree structure (an eager `astype` compiles one program per array shape)."""
    import jax.numpy as jnp

    return _cast_program()(tree, jnp.dtype(dtype))


@functools.cache
def _cast_program():
    """The jitted cast, made once (jax is imported only when a cast is asked for)."""
    import equinox as eqx
    import jax

    return eqx.filter_jit(lambda tree, dtype: jax.tree.map(
        lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, tree))
