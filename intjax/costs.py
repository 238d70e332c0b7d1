"""What the float64 and nested-JVP parts of an analysis cost, in forward equivalents (FE: one prompt
through every layer), for the plans long commands print (`intjax.progress.Stages`).

Measured on a 2-core CPU at GPT-2 small's shape, 16 prompts, against the model's own forward
(`intjax.progress.seconds_per_forward`); BENCHMARKS.md has the run. Order-3 faces are an estimate
(3 x order 2), and each further order another factor 3.
"""

from __future__ import annotations

import math
from typing import Optional

DUALITY_FE = 5.6  # the noising/denoising duality, per prompt and component of the cut
# the integral identity's 8 × 16 Sobol points, per prompt and checked face (fitted for 144 and 216
# Gauss–Legendre points, 620 and 1900 FE; scaled by the point counts, not refitted)
QUADRATURE_FE = {2: 550.0, 3: 1125.0}
# the sampled sup of the local-affine bound, per prompt and bounded pair (fitted at 1400 before its
# search tried several step sizes per batch; scaled by the batches it takes now, 257 against 850)
BOUND_FE = 420.0
EXACT_FE = 30.0  # the exact interactions and identities, per prompt and vertex
DISTANCE_FE = 2.2  # the distance study (float64), per prompt, vertex and kind of patch


def layers_after_first(n_layers: int, k: int) -> float:
    """The mean share of the layers a patched run computes when its k patched components sit in
    uniformly drawn layers: from the earliest of them on ((k·L + 1) / ((k + 1)·L))."""
    return (k * n_layers + 1) / ((k + 1) * n_layers)


def _per_order(table: dict[int, float], k: int) -> float:
    return table.get(k, table[max(table)] * 3.0 ** (k - max(table)))


def theorem_table_fe(n_prompts: int, n_components: int, order: int, n_check: int,
                     bound_order: Optional[int], n_cut: int) -> float:
    """FE of `run_theorems`: exact part, quadrature and bound on the `n_check` strongest sets per
    order (the bound up to `bound_order`, every order if None), the duality over `n_cut` components."""
    checked = {k: min(n_check, math.comb(n_components, k)) for k in range(2, order + 1)}
    faces = sum(c * _per_order(QUADRATURE_FE, k) for k, c in checked.items())
    bounded = sum(c * _per_order({2: BOUND_FE}, k) for k, c in checked.items()
                  if bound_order is None or k <= bound_order)
    vertices = sum(math.comb(n_components, k) for k in range(order + 1))
    return n_prompts * (faces + bounded + EXACT_FE * vertices + DUALITY_FE * n_cut)


# one Hessian-vector product of the screen per component and prompt, in full forward passes: 2.8 forward
# passes per tangent and layer above its block's start (layer by layer, GPT-2 small's shape, CPU), about
# half the layers on average, and the blocks' padding
HVP_FORWARDS = 2.0
