"""Studies: end-to-end analyses built from the estimands (IOI first).

- ioi_analysis: per-head NIE, interactions, linear estimates and theorems, plus
- ioi_int: faithfulness (faithfulness.py), invisible/inflated heads (visibility.py),
  greedy vs combinatorial search (search.py) and the remedies table (remedies.py),
  on the circuit circuit.py resolves; reports in int_report.py, figures in figures.py;
- witnesses.py: witness importance (which components respond when a suspect is patched);
- distance_scaling.py: |INT_T| against the distance of the patch, across corruption kinds.
"""

from intjax.studies.distance_scaling import (
    DistanceScaling, LogLogFit, distance_scaling_study, fit_loglog, ioi_distance_problems, plot_distance_scaling,
    set_distances,
)
from intjax.studies.faithfulness import FaithfulnessStudy, decompose, faithfulness_study, variance_shares
from intjax.studies.ioi_analysis import IOIAnalysisOptions, run_ioi_analysis
from intjax.studies.ioi_int import IOIStudies, IOIStudyOptions, run_ioi_studies
from intjax.studies.remedies import RemedyRow, remedies_table
from intjax.studies.search import SearchRow, beam_search, exhaustive_best, greedy_vs_best
from intjax.studies.visibility import Visibility, label_components, visibility
from intjax.studies.witnesses import WitnessImportance, witness_importance

__all__ = [
    "IOIAnalysisOptions", "run_ioi_analysis", "IOIStudyOptions", "IOIStudies", "run_ioi_studies",
    "FaithfulnessStudy", "faithfulness_study", "decompose", "variance_shares",
    "Visibility", "visibility", "label_components",
    "SearchRow", "greedy_vs_best", "exhaustive_best", "beam_search",
    "RemedyRow", "remedies_table", "WitnessImportance", "witness_importance",
    "DistanceScaling", "LogLogFit", "distance_scaling_study", "fit_loglog", "ioi_distance_problems",
    "plot_distance_scaling", "set_distances",
]
