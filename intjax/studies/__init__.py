"""Studies that work on any Game (a PatchProblem or a jax function of α): invisible and inflated
components (visibility.py), greedy against combinatorial search (search.py, heldout_search.py), the
pairwise/higher split of a joint effect (order_split.py), witness importance (witnesses.py), the
faithfulness variance split (faithfulness_variance.py), |INT_T| against the distance of the patch
(distance_scaling.py) and the pair readings (readings.py). IOI lives in `intjax.ioi`; reports in `intjax.report`.
"""

from intjax.studies.distance_scaling import (
    DistanceScaling, LogLogFit, distance_scaling_study, fit_loglog, plot_distance_scaling, set_distances,
)
from intjax.studies.search import SearchRow, beam_search, exhaustive_best, greedy_vs_best
from intjax.studies.visibility import Visibility, label_components, visibility
from intjax.studies.witnesses import WitnessImportance, witness_importance

__all__ = [
    "Visibility", "visibility", "label_components",
    "SearchRow", "greedy_vs_best", "exhaustive_best", "beam_search",
    "WitnessImportance", "witness_importance",
    "DistanceScaling", "LogLogFit", "distance_scaling_study", "fit_loglog", "plot_distance_scaling", "set_distances",
]
