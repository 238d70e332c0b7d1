"""Typed results and their files: an `Estimate` is one estimand's values per prompt and item with
what it was computed with; `Results` names them; `values.npz` (arrays [n_prompts, n_items]) and
`summary.json` (item names and options per array) are written atomically."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Float

from intjax.bootstrap import standard_error


@dataclasses.dataclass(frozen=True)
class Estimate:
    """One estimand per prompt and item (a `values.npz` array): `values[p, k]` is item k on prompt p
    (one row when the value is not per prompt), `items` the item names (components, sets `A,B`, …),
    `options` what it was computed with (direction, semantics, order, …)."""

    values: Float[np.ndarray, "P K"]
    items: tuple[str, ...]
    options: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        values = np.asarray(self.values, np.float64)
        if values.ndim != 2 or values.shape[1] != len(self.items):
            raise ValueError(f"an Estimate needs values [P, K] with K = {len(self.items)} item names; "
                             f"got shape {values.shape}")
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "items", tuple(self.items))

    def mean(self) -> Float[np.ndarray, " K"]:
        """Mean over prompts per item."""
        return self.values.mean(axis=0)

    def standard_error(self) -> Float[np.ndarray, " K"]:
        """Standard error of the mean over prompts per item (nan with one prompt)."""
        return standard_error(self.values)

    def column(self, item: str) -> Float[np.ndarray, " P"]:
        """The values of one item over prompts."""
        if item not in self.items:
            raise KeyError(f"no item {item!r}; items: {list(self.items)[:10]}{' …' if len(self.items) > 10 else ''}")
        return self.values[:, self.items.index(item)]


class Results(dict):
    """Estimates by the name their array has in `values.npz` (`nie_noising`, `int2_denoising`, …)."""

    def add(self, name: str, values: np.ndarray, items, **options: Any) -> Estimate:
        """Store `Estimate(values, items, options)` under `name` and return it."""
        self[name] = Estimate(values, tuple(items), options)
        return self[name]


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


def write_results(out: str | Path, results: Results, summary: dict[str, Any]) -> Path:
    """Write `out/values.npz` (each estimate's values) and `out/summary.json` (with each array's
    shape, item names and options)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "values.npz", lambda fh: np.savez(fh, **{k: e.values for k, e in results.items()}))
    arrays = {k: {"shape": list(e.values.shape), "items": list(e.items), **({"options": e.options} if e.options else {})}
              for k, e in results.items()}
    full = {**summary, "arrays": arrays}
    _atomic_write(out / "summary.json", lambda fh: fh.write(json.dumps(full, indent=2).encode()))
    return out


def add_to_summary(out: str | Path, **fields: Any) -> None:
    """Add top-level fields to an existing `out/summary.json` (rewritten atomically)."""
    path = Path(out) / "summary.json"
    full = {**json.loads(path.read_text()), **fields}
    _atomic_write(path, lambda fh: fh.write(json.dumps(full, indent=2).encode()))


def read_results(out: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read back what `write_results` wrote: (arrays, summary)."""
    out = Path(out)
    with np.load(out / "values.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads((out / "summary.json").read_text())


def read_estimates(out: str | Path) -> Results:
    """Read back what `write_results` wrote as typed estimates (values, item names, options)."""
    arrays, summary = read_results(out)
    results = Results()
    for name, meta in summary["arrays"].items():
        results.add(name, arrays[name], meta["items"], **meta.get("options", {}))
    return results
