"""Result files: `values.npz` (arrays [n_prompts, n_items]) and `summary.json`, written atomically."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np


def versions() -> dict[str, str]:
    """Versions of intjax and the packages its numbers depend on."""
    out = {"python": platform.python_version()}
    for pkg in ("intjax", "jax", "jaxlib", "equinox", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file renamed into place, with the permissions of any new file
    (mkstemp's are 0600)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_results(out: str | Path, arrays: dict[str, np.ndarray], items: dict[str, list[str]],
                  summary: dict[str, Any]) -> Path:
    """Write `out/values.npz` and `out/summary.json` (with each array's item names)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        if arr.ndim != 2 or arr.shape[1] != len(items[name]):
            raise ValueError(f"array {name} has shape {arr.shape} but {len(items[name])} item names")
    _atomic_write(out / "values.npz", lambda fh: np.savez(fh, **arrays))
    full = {**summary, "arrays": {k: {"shape": list(arrays[k].shape), "items": items[k]} for k in arrays}}
    _atomic_write(out / "summary.json", lambda fh: fh.write(json.dumps(full, indent=2).encode()))
    return out


def read_results(out: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read back what `write_results` wrote: (arrays, summary)."""
    out = Path(out)
    with np.load(out / "values.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads((out / "summary.json").read_text())
