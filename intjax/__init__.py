"""intjax: activation patching and its interaction effects, at high throughput, in JAX.

`import intjax` loads no JAX: `load_model`, the model classes and the subpackages are imported
on first use, so that `intjax --help` and bad-input errors answer at once."""

from __future__ import annotations

import importlib
from typing import Any

from intjax.errors import ConfigError, InputError, IntjaxError, LoadError

__version__ = "0.1.0"

# public name -> the module that defines it, imported when the name is first read
_LAZY = {"load_model": "intjax.loading", "GPT2": "intjax.model", "GPT2Config": "intjax.model",
         "Activations": "intjax.model"}
_SUBMODULES = {"cli", "costs", "estimands", "ioi", "loading", "model", "outdir", "patching",
               "progress", "results", "runs", "runtime", "studies", "sweeps"}

__all__ = [
    "load_model", "GPT2", "GPT2Config", "Activations",
    "IntjaxError", "LoadError", "ConfigError", "InputError", "__version__",
]


def __getattr__(name: str) -> Any:
    """Import `load_model`, the model classes or a subpackage when first read."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"intjax.{name}")
    raise AttributeError(f"module 'intjax' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names, the lazy ones included."""
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
