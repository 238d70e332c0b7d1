"""The report's last section: the run time and the files beside the report."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

VALUE_FILES = ("values.npz", "summary.json", "theorems.json", "prompts.jsonl", "distance_scaling.json")


def footer(figures: Mapping[str, Path], total_s: float) -> str:
    """`## Files and run`: the run's seconds and every file it wrote, figures sorted by name."""
    files = ", ".join([*VALUE_FILES, *sorted(Path(p).name for p in figures.values())])
    return "\n".join(["## Files and run", "", f"Run time {total_s:.1f} s. Files: {files}. Versions and "
                      "every option are in `summary.json`.", ""])
