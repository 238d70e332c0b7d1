"""Estimands read off f (DESIGN.md §2): pure functions of a Game, never of the model."""

from intjax.estimands.bound import affinity_vs_interaction, bound_report, sampled_sup
from intjax.estimands.derivatives import (
    face_check, jvp, linear, linear_gap, local_affine_bound, mixed_partial, quadrature_interaction,
)
from intjax.estimands.effects import context_effects, nie, total_effect
from intjax.estimands.game import FunctionGame, Game
from intjax.estimands.mobius import (
    fast_mobius, full_lattice_interactions, interactions, mobius, n_subsets_up_to, set_name,
    subsets_up_to,
)
from intjax.estimands.scaling import loglog_slope, scaled_interactions, slopes_by_order, slopes_by_set
from intjax.estimands.theorems import duality_check, theorem_table

__all__ = [
    "affinity_vs_interaction", "bound_report", "sampled_sup",
    "face_check", "jvp", "linear", "linear_gap", "local_affine_bound", "mixed_partial", "quadrature_interaction",
    "context_effects", "nie", "total_effect", "FunctionGame", "Game", "fast_mobius",
    "full_lattice_interactions", "interactions", "mobius", "n_subsets_up_to", "set_name",
    "subsets_up_to", "loglog_slope", "scaled_interactions", "slopes_by_order", "slopes_by_set", "theorem_table",
    "duality_check",
]
