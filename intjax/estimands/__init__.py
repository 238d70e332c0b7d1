"""Estimands read off f (DESIGN.md §2): pure functions of a PatchProblem's values."""

from intjax.estimands.nie import nie, single_masks

__all__ = ["nie", "single_masks"]
