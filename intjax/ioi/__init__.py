"""Everything IOI (Wang et al. 2022): prompts, words and the known circuit (task.py), circuit
discovery and stage order (circuit.py), faithfulness (faithfulness.py), completeness and minimality
(completeness.py), the remedies table
(remedies.py), the interaction studies (studies.py), the distance problems (distance.py), the
analysis behind `intjax ioi`/`demo` (analysis.py) with its plan (plan.py) and its files (saved.py); its
options are in `intjax.options` (no JAX) and its report in `intjax.report`.
"""

from intjax.ioi.analysis import run_ioi_analysis
from intjax.ioi.completeness import (
    CircuitGame, Completeness, Minimality, circuit_game, completeness, greedy_gaps, minimality)
from intjax.ioi.distance import ioi_distance_problems
from intjax.ioi.faithfulness import FaithfulnessStudy, decompose, faithfulness_study, variance_shares
from intjax.ioi.remedies import RemedyRow, remedies_table
from intjax.ioi.saved import IOIAnalysis, load_analysis, save_analysis
from intjax.ioi.studies import IOIStudies, run_ioi_studies
from intjax.options import IOIAnalysisOptions, IOIStudyOptions
from intjax.ioi.task import (
    ABBA_TEMPLATES, BABA_TEMPLATES, CLASS_POSITIONS, GPT2_SMALL_IOI_CIRCUIT, GPT2_SMALL_IOI_CIRCUIT_SOURCE,
    HELDOUT_NAMES, HELDOUT_PLACES, IOI_METRIC, NAMES, OBJECTS, PLACES, TRAIN_NAMES, TRAIN_PLACES, IOIPrompts,
    circuit_heads, ioi_prompts, single_token_words, template_reference,
)

__all__ = [
    "IOIAnalysisOptions", "run_ioi_analysis", "IOIAnalysis", "load_analysis", "save_analysis", "IOIStudyOptions",
    "IOIStudies", "run_ioi_studies",
    "FaithfulnessStudy", "faithfulness_study", "decompose", "variance_shares", "RemedyRow", "remedies_table",
    "CircuitGame", "Completeness", "Minimality", "circuit_game", "completeness", "greedy_gaps", "minimality",
    "ioi_distance_problems", "ABBA_TEMPLATES", "BABA_TEMPLATES", "CLASS_POSITIONS", "GPT2_SMALL_IOI_CIRCUIT",
    "GPT2_SMALL_IOI_CIRCUIT_SOURCE", "HELDOUT_NAMES", "HELDOUT_PLACES", "IOI_METRIC", "NAMES", "OBJECTS", "PLACES",
    "TRAIN_NAMES", "TRAIN_PLACES", "IOIPrompts", "circuit_heads", "ioi_prompts", "single_token_words",
    "template_reference",
]
