"""Compare two `intjax ioi`/`demo` output folders: the same arrays in values.npz (exactly, or within
--rtol), the same report.md once run times are masked, the same numbers in distance_scaling.json and
theorems.json. Prints each difference; exit 1 if there is one.

    python scripts/compare_runs.py BEFORE AFTER [--rtol 0]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

VOLATILE = [(re.compile(r"Run time [0-9.]+ s"), "Run time <t> s")]
VOLATILE_KEYS = {"timings", "seconds", "versions", "compilation", "measured_s", "vertex_cache"}


def _values(before: Path, after: Path, rtol: float) -> list[str]:
    """Differences between the two values.npz files."""
    with np.load(before / "values.npz") as a, np.load(after / "values.npz") as b:
        out = [f"values.npz: {k} only in {'before' if k in a.files else 'after'}"
               for k in sorted(set(a.files) ^ set(b.files))]
        for k in sorted(set(a.files) & set(b.files)):
            x, y = a[k], b[k]
            if x.shape != y.shape:
                out.append(f"values.npz: {k} shape {x.shape} != {y.shape}")
            elif not np.allclose(x, y, rtol=rtol, atol=0.0, equal_nan=True):
                out.append(f"values.npz: {k} differs by up to {np.nanmax(np.abs(x - y)):.3g}")
    return out


def _report(before: Path, after: Path) -> list[str]:
    """Lines of report.md that differ once run times are masked."""
    def lines(path: Path) -> list[str]:
        text = (path / "report.md").read_text()
        for pattern, mask in VOLATILE:
            text = pattern.sub(mask, text)
        return text.splitlines()

    a, b = lines(before), lines(after)
    out = [f"report.md line {i + 1}:\n  before: {x}\n  after:  {y}" for i, (x, y) in enumerate(zip(a, b)) if x != y]
    if len(a) != len(b):
        out.append(f"report.md: {len(a)} lines before, {len(b)} after")
    return out


def _strip(tree):
    """A JSON tree without the keys that change from run to run (times, versions)."""
    if isinstance(tree, dict):
        return {k: _strip(v) for k, v in tree.items() if k not in VOLATILE_KEYS}
    if isinstance(tree, list):
        return [_strip(v) for v in tree]
    return tree


def _json(before: Path, after: Path, name: str) -> list[str]:
    """Whether `name` holds the same tree in both folders (run times left out)."""
    a, b = before / name, after / name
    if not a.exists() and not b.exists():
        return []
    if a.exists() != b.exists():
        return [f"{name}: only in {'before' if a.exists() else 'after'}"]
    same = json.dumps(_strip(json.loads(a.read_text())), sort_keys=True) == json.dumps(
        _strip(json.loads(b.read_text())), sort_keys=True)
    return [] if same else [f"{name}: differs"]


def compare(before: Path, after: Path, rtol: float = 0.0) -> list[str]:
    """Every difference between the two runs' values, report and JSON files."""
    return [*_values(before, after, rtol), *_report(before, after),
            *(d for name in ("distance_scaling.json", "theorems.json") for d in _json(before, after, name))]


def main() -> int:
    """Compare the two folders named on the command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--rtol", type=float, default=0.0)
    args = p.parse_args()
    diffs = compare(args.before, args.after, args.rtol)
    print("\n".join(diffs) if diffs else "same values, report and JSON files")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
