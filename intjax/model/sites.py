"""The sites every family exposes and the edits that overwrite them: the data the patch engine and a
model's block share (`Activations`, `SiteEdit`, `LayerEdits`) and the helpers that apply an edit."""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
from jaxtyping import Array, Float, Int


class Activations(NamedTuple):
    """Every activation of one forward pass, stacked over layers."""

    resid_pre: Float[Array, "L T D"]
    z: Float[Array, "L T H Dh"]
    attn_out: Float[Array, "L T D"]
    resid_mid: Float[Array, "L T D"]
    mlp_out: Float[Array, "L T D"]
    resid_post: Float[Array, "L T D"]
    pattern: Optional[Float[Array, "L T H K"]] = None  # query position, head, key position (K = T)
    k: Optional[Float[Array, "L T Hkv Dh"]] = None  # keys (after any position encoding) per key/value head
    v: Optional[Float[Array, "L T Hkv Dh"]] = None  # values per key/value head


class SiteEdit(NamedTuple):
    """Overwrite one site: v = value + pin·(clean − value), then v + mask·(source − v).

    `mask` and `pin` have the site's shape without its last (feature) axis, e.g.
    `[T, H]` for `z` and for `pattern` (whose last axis is the key position), `[T, Hkv]` for `k` and `v`;
    `source` and `clean` have the site's full shape. With
    `pin=None` the base is the value computed in this run (recompute semantics).
    """

    mask: Array
    source: Array
    pin: Optional[Array] = None
    clean: Optional[Array] = None

    def apply(self, value: Array) -> Array:
        """Return the edited value of the site."""
        if self.pin is not None:
            value = value + self.pin[..., None] * (self.clean - value)
        return value + self.mask[..., None] * (self.source - value)


class InputEdits(NamedTuple):
    """What edges add to the residual one layer's readers see (None: that reader reads the stream as is).

    The arrays are position-first, like every edit: `q` `[T, H, D]` is added to the residual head h's query
    reads (before the norm: each head normalizes its own input), `k` and `v` `[T, Hkv, D]` to the key/value
    heads' inputs, `mlp` `[T, D]` to the MLP's. `mlp_heads` = (weights `[T, H]`, z `[T, H, Dh]`) adds
    Σ_h weight·(z − z_run)·W_O[h], with z_run this layer's output: edges from the same layer's heads under
    recompute semantics, whose base is the value computed in this run.
    """

    q: Optional[Array] = None
    k: Optional[Array] = None
    v: Optional[Array] = None
    mlp: Optional[Array] = None
    mlp_heads: Optional[tuple[Array, Array]] = None


class LayerEdits(NamedTuple):
    """Edits of the sites of a layer (None: that site is left alone)."""

    resid_pre: Optional[SiteEdit] = None  # mask [T]
    k: Optional[SiteEdit] = None  # mask [T, Hkv]: the keys of key position t, key/value head h
    v: Optional[SiteEdit] = None  # mask [T, Hkv]: the values of key position t, key/value head h
    pattern: Optional[SiteEdit] = None  # mask [T, H]: the attention weights of query t, head h
    z: Optional[SiteEdit] = None  # mask [T, H]
    mlp_out: Optional[SiteEdit] = None  # mask [T]
    inputs: Optional[InputEdits] = None  # edges: what the layer's readers see besides the residual


def apply_edit(edit: Optional[SiteEdit], value: Array) -> Array:
    """`value` with `edit` applied (unchanged when there is none)."""
    return value if edit is None else edit.apply(value)


def edit_rows(edit: Optional[SiteEdit], rows: Optional[Int[Array, " R"]]) -> Optional[SiteEdit]:
    """The part of a per-position `edit` at positions `rows` (all of it when `rows` is None)."""
    return edit if edit is None or rows is None else jax.tree.map(lambda a: a[rows], edit)


def edit_keys_values(kv_edits: tuple[Optional[SiteEdit], Optional[SiteEdit]], k: Float[Array, "T Hkv Dh"],
                     v: Float[Array, "T Hkv Dh"]) -> tuple[Float[Array, "T Hkv Dh"], Float[Array, "T Hkv Dh"]]:
    """Keys and values with the (key, value) edits applied (any family's; every position, not query rows)."""
    return apply_edit(kv_edits[0], k), apply_edit(kv_edits[1], v)
