"""The IOI problems of the distance-scaling study: one per kind of patch, over the same components
(`studies.distance_scaling` puts them on one log-log plane)."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from intjax.estimands.effects import nie
from intjax.ioi.studies import strongest_heads
from intjax.ioi.task import PromptBank, ioi_prompts, template_reference
from intjax.patching.components import Component, parse_components
from intjax.patching.problem import PatchProblem, build_problem
from intjax.runtime import x64
from intjax.studies.distance_scaling import SCALES


def ioi_distance_problems(
    model,
    tokenizer: Any,
    components: Sequence | str,
    n_prompts: int = 16,
    seed: int = 0,
    *,
    scales: Sequence[float] = SCALES,
    semantics: str = "recompute",
    direction: str = "noising",
    reference_per_template: int = 8,
    float64: bool = True,
    prompts: Optional[PromptBank] = None,
) -> dict[str, PatchProblem]:
    """One PatchProblem per kind of patch on IOI prompts, over the same components:

    "abc", "s2_flip", "random_token" (counterfactual sources from `ioi_prompts`
    with that corruption and the same seed; s2_flip and random_token share their
    clean prompts), "mean" (per-template mean of fresh ABC prompts, as the
    faithfulness study's mean ablation) and "zero" (both on the ABC prompts'
    clean side), and "abc t=…" (the ABC sources scaled toward the base by each
    of `scales`; t = 1 is "abc"). `components`: Component objects, names, or a
    spec string for `parse_components`.

    `float64` builds everything with the model cast to float64 (jax_enable_x64
    on while building; `distance_scaling_study` turns it on again to evaluate).
    In float32, f carries rounding errors near 1e-5 logits on ioi-small (a
    patched run restarts from cached activations and does not reproduce them
    to the last bit), as large as many S2-flip and random-token interactions:
    a noise floor under the plot. Casting float32 problems afterwards would not
    help: their caches would still disagree with a float64 recomputation.
    `prompts`: the run's prompt sets (made here when None).
    """

    if isinstance(components, str) or not all(isinstance(c, Component) for c in components):
        components = parse_components(components, model.config)
    kw = dict(direction=direction, semantics=semantics)
    bank = PromptBank(tokenizer) if prompts is None else prompts
    data = {c: bank.get(n_prompts, seed, c) for c in ("abc", "s2_flip", "random_token")}
    reference, groups = template_reference(tokenizer, data["abc"], reference_per_template, seed=seed)
    with x64(float64):
        if float64:
            import jax.numpy as jnp

            from intjax.runtime import cast_floats

            model = cast_floats(model, jnp.float64)
        out = {c: build_problem(model, d.prompts, components, **kw) for c, d in data.items()}
        out["mean"] = build_problem(model, data["abc"].prompts, components, source="mean", reference=reference,
                                    mean_groups=groups, **kw)
        out["zero"] = build_problem(model, data["abc"].prompts, components, source="zero", **kw)
        for t in scales:
            out[f"abc t={t:g}"] = out["abc"].with_source_scale(float(t))
    return out


def strongest_components(model, tokenizer, k: int = 6, n_prompts: int = 16, seed: int = 0,
                         spec: str = "heads") -> list[str]:
    """The k components of `spec` with the largest max(|mean noising NIE|, |mean denoising NIE|) on
    ABC prompts (the pool the IOI analysis draws its pairs and triples from)."""

    comps = parse_components(spec, model.config)
    prompts = ioi_prompts(tokenizer, n_prompts, seed=seed, corruption="abc").prompts
    nies = [nie(build_problem(model, prompts, comps, direction=d)) for d in ("noising", "denoising")]
    return [comps[i].name for i in strongest_heads(nies[0], nies[1], min(k, len(comps)))]


