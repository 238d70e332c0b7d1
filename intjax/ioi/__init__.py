"""Everything IOI (Wang et al. 2022): prompts, words and the known circuit (task.py), circuit
discovery and stage order (circuit.py), faithfulness (faithfulness.py), completeness and minimality
(completeness.py), the remedies table
(remedies.py), the interaction studies (studies.py), the distance problems (distance.py), the
analysis behind `intjax ioi`/`demo` (analysis.py) with its options (options.py) and plan (plan.py).

The names below are imported on first use, so that `intjax.ioi.options` (the command line's
defaults) loads without JAX.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "intjax.ioi.options": ("IOIAnalysisOptions", "IOIStudyOptions"),
    "intjax.ioi.analysis": ("run_ioi_analysis",),
    "intjax.ioi.completeness": ("CircuitGame", "Completeness", "Minimality", "circuit_game", "completeness",
                                "greedy_gaps", "minimality"),
    "intjax.ioi.distance": ("ioi_distance_problems",),
    "intjax.ioi.faithfulness": ("FaithfulnessStudy", "decompose", "faithfulness_study", "variance_shares"),
    "intjax.ioi.remedies": ("RemedyRow", "remedies_table"),
    "intjax.ioi.studies": ("IOIStudies", "run_ioi_studies"),
    "intjax.ioi.task": ("ABBA_TEMPLATES", "BABA_TEMPLATES", "CLASS_POSITIONS", "GPT2_SMALL_IOI_CIRCUIT",
                        "GPT2_SMALL_IOI_CIRCUIT_SOURCE", "HELDOUT_NAMES", "HELDOUT_PLACES", "IOI_METRIC", "NAMES",
                        "OBJECTS", "PLACES", "TRAIN_NAMES", "TRAIN_PLACES", "IOIPrompts", "circuit_heads",
                        "ioi_prompts", "single_token_words", "template_reference"),
}
_HOME = {name: module for module, names in _LAZY.items() for name in names}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    """Import a public name of the IOI package from its module when first read."""
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'intjax.ioi' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names, the lazy ones included."""
    return sorted(set(globals()) | set(_HOME))
