"""The options of the IOI analysis and its studies: the only home of their defaults, checked as they are made.

No JAX and no numpy here: the command line builds its help from these defaults before it imports either.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

from intjax.errors import InputError

CORRUPTIONS: tuple[str, ...] = ("abc", "s2_flip", "random_token")
DISCOVERIES: tuple[str, ...] = ("roles", "path")  # how `intjax ioi --discover` finds classes
ABLATIONS = {"mean": "mean", "resample": "counterfactual", "zero": "zero"}  # name -> PatchProblem source
# the sizes --budget-min may shrink, each to no less than its floor (a floor keeps its statistic readable)
FLOORS = {"split_pairs": 200, "n_resamples": 8, "faithfulness_prompts": 16, "search_pool": 8, "theorem_prompts": 2,
          "pair_pool": 12, "triple_pool": 6, "search_k": 5, "distance_prompts": 8, "theorem_heads": 2}


@dataclasses.dataclass(frozen=True)
class IOIStudyOptions:
    """Sizes and thresholds of the IOI interaction studies."""

    circuit: str = "auto"  # auto (wang2022 on GPT-2 small, else discover), wang2022, discover, or a JSON file
    n_resamples: int = 20  # fresh prompt sets for the faithfulness spread
    faithfulness_prompts: Optional[int] = None  # prompts per resample (None: as many as the analysis has)
    ablations: tuple[str, ...] = ("mean", "resample", "zero")
    reference_per_template: int = 8  # fresh ABC prompts per template for the mean ablation
    # keep each class only at its position (tasks.ioi.CLASS_POSITIONS), as Wang et al.; None: only for
    # Wang et al.'s own circuit (a discovered circuit's classes say nothing about positions)
    positional: Optional[bool] = None
    search_pool: int = 12  # candidates (by |NIE| and by |context effect|); ≤ 24 is exhaustive, more is beam search
    search_k: int = 6
    beam_width: int = 16
    n_context: int = 2  # strongest units already patched for the context effect
    ratio: float = 3.0  # invisible / inflated threshold (see studies.visibility)
    floor: float = 0.05  # ... only for effects ≥ floor × |TE|
    completeness_ablation: Optional[str] = "mean"  # ablation of completeness and minimality (None skips them)
    completeness_random: int = 8  # random K of each size beside greedy's and the exhaustive worst
    minimality_threshold: float = 0.05  # heads whose best minimality share is below this are flagged
    heldout: bool = True  # discover the circuit on one half of the prompts, estimate on the other
    # roles: the circuit of `circuit`; path: Wang et al.'s path patching (intjax.ioi.path_discovery) chooses the
    # studies' circuit on the selection half (whatever `heldout` says), compared with the circuit of `circuit`
    discover: str = "roles"

    def __post_init__(self):
        _at_least(self, 2, "n_resamples", "a faithfulness spread needs two resamples or more")
        _at_least(self, 1, "reference_per_template", "the mean ablation averages at least one prompt per template")
        _at_least(self, 1, "search_pool", "the search needs at least one candidate head")
        _at_least(self, 1, "search_k", "the search's largest set has at least one head")
        _at_least(self, 1, "beam_width", "the beam search keeps at least one set")
        _at_least(self, 0, "n_context", "give 0 for no context")
        _at_least(self, 0, "completeness_random", "give 0 for no random sets")
        if self.faithfulness_prompts is not None:
            _at_least(self, 2, "faithfulness_prompts", "give None to use as many as the analysis has")
        if not self.ablations or any(a not in ABLATIONS for a in self.ablations):
            raise InputError(f"IOIStudyOptions.ablations={self.ablations!r}: give one or more of {list(ABLATIONS)}")
        if self.completeness_ablation is not None and self.completeness_ablation not in ABLATIONS:
            raise InputError(f"IOIStudyOptions.completeness_ablation={self.completeness_ablation!r}: give one of "
                             f"{list(ABLATIONS)}, or None to skip completeness and minimality")
        for name, low in (("ratio", 1.0), ("floor", 0.0), ("minimality_threshold", 0.0)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= low):
                raise InputError(f"IOIStudyOptions.{name}={value!r}: give a finite number >= {low:g}")
        if self.discover not in DISCOVERIES:
            raise InputError(f"IOIStudyOptions.discover={self.discover!r}: give one of {list(DISCOVERIES)}")
        if not isinstance(self.circuit, str) or not self.circuit.strip():
            raise InputError(f"IOIStudyOptions.circuit={self.circuit!r}: give auto, wang2022, discover or the path "
                             "of a JSON file {class: [heads]}")


def _at_least(options: Any, low: int, name: str, why: str) -> None:
    """Refuse `options.name` unless it is an integer >= low, naming the field, the value and the fix."""
    value = getattr(options, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"{type(options).__name__}.{name}={value!r}: give an integer >= {low} ({why})")


ANALYSIS_MINIMA = (  # (size, its least value, why)
    ("n_prompts", 2, "a standard error and the held-out split need two prompts or more"),
    ("pair_pool", 2, "pairs need two heads"), ("triple_pool", 3, "triples need three heads"),
    ("theorem_heads", 0, "0 skips the theorem table"), ("theorem_order", 2, "interactions start at order 2"),
    ("theorem_prompts", 1, "the identities are checked per prompt"), ("bound_order", 1, "sets have a member"),
    ("split_pairs", 1, "the pairwise split samples at least one pair"),
    ("distance_heads", 0, "0 or 1 skips the distance study"), ("distance_prompts", 1, "the fit needs prompts"),
    ("top", 1, "the report's tables show at least one row"),
)


@dataclasses.dataclass(frozen=True)
class IOIAnalysisOptions:
    """How large the IOI analysis is."""

    n_prompts: int = 32
    seed: int = 0
    corruption: str = "abc"  # or "s2_flip"
    pair_pool: int = 16  # pairs among this many strongest heads (by max mean |NIE|)
    triple_pool: int = 8  # third order among this many
    theorem_heads: int = 4  # theorem table over this many strongest heads (float64)
    theorem_order: int = 3
    theorem_prompts: int = 8  # the identities hold per prompt: a few prompts check them
    bound_order: int = 2  # the sampled-sup bound for sets up to this order (`intjax theorems` does all)
    split_pairs: int = 1000  # pairs of heads behind the pairwise/higher split of joint − Σ NIE (sampled beyond)
    distance_heads: int = 5  # the distance-scaling study over pairs and triples of this many heads (0 skips)
    distance_prompts: int = 16
    top: int = 10  # rows in the report's tables
    studies: IOIStudyOptions = IOIStudyOptions()  # faithfulness, invisible/inflated heads, search, remedies
    budget_minutes: float = 0.0  # > 0: shrink the sizes not in `fixed` (never below their floors) to fit
    fixed: tuple[str, ...] = ()  # Sizes fields the user set, which the budget leaves alone

    def __post_init__(self):
        for name, low, why in ANALYSIS_MINIMA:
            _at_least(self, low, name, why)
        if self.corruption not in CORRUPTIONS:
            raise InputError(f"IOIAnalysisOptions.corruption={self.corruption!r}: give one of {list(CORRUPTIONS)}")
        if not (isinstance(self.budget_minutes, (int, float)) and math.isfinite(self.budget_minutes)
                and self.budget_minutes >= 0):
            raise InputError(f"IOIAnalysisOptions.budget_minutes={self.budget_minutes!r}: give a finite number of "
                             "minutes >= 0 (0 keeps the full sizes)")
        unknown = [f for f in self.fixed if f not in FLOORS]
        if unknown:
            raise InputError(f"IOIAnalysisOptions.fixed names {unknown}, which the budget never shrinks; give "
                             f"some of {sorted(FLOORS)}")
        if not isinstance(self.studies, IOIStudyOptions):
            raise InputError(f"IOIAnalysisOptions.studies={self.studies!r}: give an IOIStudyOptions")
