"""The circuit the studies use: its classes, heads, positions, and whether they come in Wang et al.'s order."""

from __future__ import annotations

from pathlib import Path

from intjax.ioi.circuit import STAGES, stage_order
from intjax.ioi.saved import IOIAnalysis
from intjax.report.section import Section
from intjax.report.markdown import markdown_table


def circuit_markdown(studies) -> str:
    """The circuit the studies use."""
    where = studies.faithfulness.class_positions or {}
    rows = [(cls, ", ".join(heads), where.get(cls, "every position")) for cls, heads in studies.circuit.items()]
    ordered, problems = stage_order(studies.circuit)
    order = ("Its classes come in Wang et al.'s layer order: every " + ", then every ".join(
        " / ".join(stage) for stage in STAGES) + " head sits in a later layer than the stage before."
             if ordered else "Its classes are not in Wang et al.'s layer order: " + "; ".join(problems) + ". Its "
             "class names are therefore " + ("path-patching names (the stage whose path made each head significant)"
                                             if studies.by_path() else
                                             "attention-role names (the attention pattern each head shows most)")
             + ", not Wang et al.'s functional classes.")
    return "\n".join(["## The circuit", "", f"Source: {studies.circuit_source}.", "",
                      markdown_table(rows, ("class", "heads", "kept at")), "", order, ""])


def section(analysis: IOIAnalysis, out: Path) -> Section:
    """The circuit section (no summary lines, no figures)."""
    return Section(circuit_markdown(analysis.studies))
