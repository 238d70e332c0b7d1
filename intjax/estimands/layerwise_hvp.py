"""Hessian-vector products of a patch problem at α = 0, one layer at a time, with no loop differentiated.

Reverse-mode through the traced-start loop of `PatchProblem.value` (a `lax.cond` per layer) costs the
skipped layers too; here the loops have traced bounds and only run forward:

- forward, layers start..L−2: the tangent dx_l of the residual along each unit tangent v (the primal x_l
  is the cached base residual, as α = 0 is the base run), one JVP of the layer per step;
- backward, L−1 down to start: the adjoint g_l and its tangent dg_l from the JVP of the layer's VJP at
  (x_l, 0, g_{l+1}) along (dx_l, v, dg_{l+1}); the α-part of each tangent adds to H v.

The primal parts (x_l, g_l) do not depend on the tangents, so a block of tangents shares them. The
shared prefix of the prompts is taken from the base run as the evaluator does: a patch changes nothing
there, so it adds nothing to H.
"""

from __future__ import annotations

from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


def supports_layerwise(game) -> bool:
    """Whether `layerwise_hvp` applies: a patch problem (layer steps, cached base residuals) without edges,
    whose α = 0 run is the base run the residuals were cached from."""
    data = getattr(game, "data", None)
    return (hasattr(game, "layer_step") and hasattr(data, "resid_start") and getattr(data, "edges", 1) is None
            and not getattr(game, "carried", 0))


@eqx.filter_jit
def layerwise_hvp(game, tangents: Float[Array, "B w"], start: Int[Array, ""]) -> Float[Array, "B P w"]:
    """H_p v for each row v of `tangents` (width `game.slots`) and prompt p, accumulated over layers
    start..L−1 only: rows of H for components below `start` are incomplete (the caller reads them from
    the transposed entry)."""
    data = game.data
    out = jax.vmap(partial(_one_prompt, game, tangents, start))(data)  # [P, B, w]
    return jnp.swapaxes(out, 0, 1)


def _one_prompt(game, tangents: Float[Array, "B w"], start: Int[Array, ""], d) -> Float[Array, "B w"]:
    """H v for every tangent v, one prompt (its `PromptArrays` row `d`)."""
    L, S = game.model.config.n_layers, game.shared_prefix
    zero = jnp.zeros(tangents.shape[1], tangents.dtype)
    x = d.resid_start[:, S:]  # [L+1, T', D]: the base run, the primal of every layer
    B = tangents.shape[0]

    def step(layer, resid, alpha):
        return game.layer_step(layer, resid, alpha, d)

    def last(resid, alpha):
        return game.readout(game.layer_step(L - 1, resid, alpha, d, last_only=True)[0], d)

    def forward(layer, carry):  # dx_{layer+1} from dx_layer
        dx, stored = carry
        stored = stored.at[layer].set(dx)
        tangent = jax.vmap(lambda t, v: jax.jvp(partial(step, layer), (x[layer], zero), (t, v))[1])(dx, tangents)
        return tangent, stored

    dx0 = jnp.zeros((B, *x.shape[1:]), x.dtype)
    dx_last, stored = jax.lax.fori_loop(start, L - 1, forward, (dx0, jnp.zeros((L, *dx0.shape), x.dtype)))
    stored = stored.at[L - 1].set(dx_last)

    def layer_vjp(fn, resid, alpha, g):
        return jax.vjp(fn, resid, alpha)[1](g)

    def top(t, v):
        return jax.jvp(partial(layer_vjp, last), (x[L - 1], zero, jnp.ones((), x.dtype)), (t, v, jnp.zeros((), x.dtype)))

    (g, _), (dg, hv) = jax.vmap(top, out_axes=((None, None), 0))(stored[L - 1], tangents)

    def backward(k, carry):  # layer L−2−k: adjoint and its tangent below it, the α-part into H v
        g, dg, hv = carry
        layer = L - 2 - k

        def one(t, v, dgt):
            return jax.jvp(partial(layer_vjp, partial(step, layer)), (x[layer], zero, g), (t, v, dgt))

        (g_below, _), (dg_below, dh) = jax.vmap(one, out_axes=((None, None), 0))(stored[layer], tangents, dg)
        return g_below, dg_below, hv + dh

    _, _, hv = jax.lax.fori_loop(0, L - 1 - start, backward, (g, dg, hv))
    return hv
