"""What one report section gives: its markdown, its lines for the summary, and the figures it drew."""

from __future__ import annotations

import dataclasses
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Section:
    """One section of a report: markdown ("" adds nothing), summary lines, figures by name."""

    markdown: str = ""
    summary: tuple[str, ...] = ()
    figures: dict[str, Path] = dataclasses.field(default_factory=dict)
