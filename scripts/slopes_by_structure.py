"""Distance-scaling slope of chosen interaction sets against the slope their causal structure
predicts (DESIGN.md §2), in float64, as a markdown table.

    .venv/bin/python scripts/slopes_by_structure.py                 # ioi-small, IOI prompts
    .venv/bin/python scripts/slopes_by_structure.py --model DIR --sets "L0H0,L1H0;L0MLP,L2H1"

Components in a set must not share sites (L0H1 and L0H1@S2 cannot be in one run).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

SETS = ("L0H0,L0H1;L1H0,L1H2;L0H1,L1H0;L0H1,L3H2;L1H0,L1MLP;L0MLP,L2H0;L0H1,L1H0,L3H2;L0H0,L0H1,L2H0;"
        "L1H0,L1H2,L3H2;L0H0,L0H1,L1H0,L1H2;L0H1,L1H0,L2H0,L3H2;L0H2@S2,L2H3@S1;L0H2@S2,L2H1@S2;"
        "L1H1@END,L2MLP;L0H1,L1H0,L2MLP")


def main() -> None:
    """Print measured frozen/recompute slopes beside the chain-cover prediction and the old conjecture."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="ioi-small")
    p.add_argument("--sets", default=SETS, help="sets separated by ';', members by ','")
    p.add_argument("--n-prompts", type=int, default=8)
    args = p.parse_args()
    jax.config.update("jax_enable_x64", True)
    import intjax
    from intjax.estimands.scaling import DEFAULT_TS, loglog_slope, rounding_floor, scaled_interactions
    from intjax.patching import build_problem, parse_components
    from intjax.patching.structure import predicted_slopes, prompt_roles, reads_matrix
    from intjax.ioi.task import ioi_prompts

    model, tokenizer = intjax.load_model(args.model, dtype=jnp.float64)
    prompts = ioi_prompts(tokenizer, args.n_prompts, seed=0).prompts
    names = list(dict.fromkeys(n for s in args.sets.split(";") for n in s.split(",")))
    comps = parse_components(names, model.config)
    sets = [tuple(sorted(names.index(n) for n in s.split(","))) for s in args.sets.split(";")]
    roles = prompt_roles(prompts)
    slopes = {}
    for semantics in ("frozen", "recompute"):
        problem = build_problem(model, prompts, comps, semantics=semantics)
        ints = scaled_interactions(lambda t: problem.with_source_scale(t), sets, DEFAULT_TS)
        magnitude = float(np.abs(np.asarray(problem.metric_clean)).max())
        eps = float(np.finfo(np.float64).eps)
        slopes[semantics] = [loglog_slope(DEFAULT_TS, ints[:, :, j], rounding_floor(len(T), magnitude, eps))
                             for j, T in enumerate(sets)]
    print("| set | frozen | predicted | recompute | predicted (chain cover) | conjecture \\|T\\| − ℓ + 1 | longest chain |")
    print("|---|---|---|---|---|---|---|")
    for j, T in enumerate(sets):
        pred = predicted_slopes(reads_matrix([comps[i] for i in T], roles, prompts.lengths))
        chain = " → ".join(names[T[i]] for i in pred["chain"])
        print(f"| {', '.join(names[i] for i in T)} | {slopes['frozen'][j]:.2f} | {len(T)} | "
              f"{slopes['recompute'][j]:.2f} | {pred['recompute']} | {pred['conjecture']} | {chain} |")


if __name__ == "__main__":
    main()
