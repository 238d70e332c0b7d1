"""The path-patching discovery's per-prompt values for values.npz: each tested path's effect, each pair's INT
and each prompt's total effect, on every analysis prompt (prompts.jsonl's order), with the selection prompts
named, so that a reader recomputes every number of the report's path-patching section from the saved file."""

from __future__ import annotations

import numpy as np

from intjax.ioi.path_discovery import STAGE_WORDS, PathDiscovery
from intjax.results import Results

PREFIX = "path_"


def path_key(stage: str, kind: str = "") -> str:
    """values.npz key of one stage's path effects (`kind` "") or pair interactions (`kind` "int")."""
    return PREFIX + (f"{kind}_" if kind else "") + stage.replace(".", "_")


def path_arrays(path: PathDiscovery) -> Results:
    """values.npz estimates of `path` (module doc); empty for a discovery saved without per-prompt values."""
    out = Results()
    if not len(path.total_values):
        return out
    n = len(path.total_values)
    how = dict(study="path_discovery", per="prompt (every analysis prompt, prompts.jsonl order)",
               selection=[int(i) for i in path.select], held_out=[i for i in range(n) if i not in set(path.select)],
               bootstrap_seed=path.seed, semantics="frozen", direction="noising",
               metric="logit difference, f(patched) - f(clean)")
    out.add(PREFIX + "total_effect", np.asarray(path.total_values, np.float64)[:, None], ["TE"], **how)
    for stage, values in path.effects.items():
        rows = [r for r in path.rows if r.stage == stage]
        out.add(path_key(stage), values, [r.spec() for r in rows], stage=STAGE_WORDS[stage], **how)
    for stage, values in path.pair_values.items():
        pairs = [p for p in path.pairs if p.stage == stage]
        out.add(path_key(stage, "int"), values, [f"{p.a} & {p.b}" for p in pairs], stage=STAGE_WORDS[stage],
                estimand="INT = f(a+b) - f(a) - f(b) + f(0)", **how)
    return out
