"""The patch engine: components, prompts, metrics, f(α) and its evaluation at many masks."""

from intjax.patching.components import Component, Site, group, parse_component, parse_components
from intjax.patching.evaluate import chunk_size, evaluate, patched_run_flops
from intjax.patching.metrics import METRICS, Metric, get_metric
from intjax.patching.problem import PatchProblem, build_problem, run_model
from intjax.patching.prompts import PromptSet, make_prompt_set, read_prompts

__all__ = [
    "Component", "Site", "group", "parse_component", "parse_components", "chunk_size",
    "evaluate", "patched_run_flops", "METRICS", "Metric", "get_metric", "PatchProblem", "build_problem",
    "run_model", "PromptSet", "make_prompt_set", "read_prompts",
]
