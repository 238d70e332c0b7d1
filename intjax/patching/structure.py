"""Causal structure among components: which component's value a patch of another can reach.

A site is computed at a *stage* of the forward pass (layer l, the registry's
`stage` of its kind within the layer: the residual `resid_pre`, then the keys
`k` and values `v` side by side, the attention pattern, the heads' `z`, then
`mlp_out`). Site b reads site a when b comes later and some path carries a's
value to b's positions: positions mix only through attention (the pattern and
z read the keys and values of the same and earlier positions; a key or value
reads its own position's residual only). So b reads a if attention reading a
lies between them (b at a position ≥ one of a's), or else if they share a
position. A kind may name later kinds of its own layer that never read it (the
pattern weighs the values but is not computed from them).

An edge (sender → receiver input) acts where its receiver reads: as the upstream member it is the
receiver (a query input enters the pattern, a key or value input the keys or values, an MLP input the
MLP, a logits input after every layer); as the downstream member it reads what its sender reads (under
recompute its base is the sender's value in the run; an embedding sender reads nothing).

Under recompute semantics a patched downstream component blocks the paths of
an upstream one through it; that is what lowers the distance-scaling order of
an interaction (DESIGN.md §2), so the structure here predicts the slope.
"""

from __future__ import annotations

import itertools
from typing import Mapping, Optional, Sequence

import numpy as np

from intjax.patching.components import SITE_KIND_INFO, Component, Site
from intjax.patching.prompts import PromptSet

_STAGES = 1 + max(k.stage for k in SITE_KIND_INFO.values())  # stages per layer
_FIRST_MIXING = min(k.stage for k in SITE_KIND_INFO.values() if k.mixes_positions)


def stage(site: Site) -> int:
    """Order of the site's computation in the forward pass (kinds computed side by side share a stage)."""
    return _STAGES * site.layer + SITE_KIND_INFO[site.kind].stage


def first_mixing_stage(site: Site) -> int:
    """The first stage after `site` whose value mixes positions that carry it: attention of the
    first layer whose input residual (or keys and values) comes at or after the site."""
    layer = site.layer if SITE_KIND_INFO[site.kind].stage < _FIRST_MIXING else site.layer + 1
    return _STAGES * layer + _FIRST_MIXING


def site_positions(site: Site, roles: Mapping[str, int], length: int) -> frozenset[int]:
    """Token indices the site covers in a prompt with these role indices and this length."""
    if site.pos is None:
        return frozenset(range(length))
    if isinstance(site.pos, str):
        where = int(roles[site.pos.lstrip("~")])
        return frozenset(range(length)) - {where} if site.pos.startswith("~") else frozenset({where})
    return frozenset({int(site.pos)})


_RECEIVER_AS_SITE = {"q_in": "pattern", "k_in": "k", "v_in": "v", "mlp_in": "mlp_out"}


def as_writer(site: Site) -> Site:
    """The node site whose value an edge changes first (its receiver's); a node site itself."""
    if not site.is_edge:
        return site
    if site.kind == "logits_in":  # after the last layer: a stage no site comes after
        return Site("mlp_out", site.layer + 1, None, site.pos)
    return Site(_RECEIVER_AS_SITE[site.kind], site.layer, site.head, site.pos)


def as_reader(site: Site) -> Optional[Site]:
    """The node site whose value an edge's value depends on (its sender's; None for the embedding)."""
    if not site.is_edge:
        return site
    kind, layer, head = site.sender
    return None if kind == "embed" else Site(kind, layer, None if head < 0 else head, site.pos)


def site_reads(a: Site, b: Site, roles: Mapping[str, int], length: int) -> bool:
    """Whether b's value depends on a's (b later, on a path from a; edges as `as_writer` / `as_reader`)."""
    a, b = as_writer(a), as_reader(b)
    if b is None:
        return False
    sa, sb = stage(a), stage(b)
    if sb <= sa or (a.layer == b.layer and b.kind in SITE_KIND_INFO[a.kind].unread_by):
        return False
    pa, pb = site_positions(a, roles, length), site_positions(b, roles, length)
    if not pa or not pb:
        return False
    if first_mixing_stage(a) <= sb:
        return max(pb) >= min(pa)
    return bool(pa & pb)


def reads(a: Component, b: Component, roles: Optional[Mapping[str, int]] = None, length: int = 1024) -> bool:
    """Whether some site of b depends on some site of a (b is downstream of a)."""
    roles = roles or {}
    return any(site_reads(x, y, roles, length) for x in a.sites for y in b.sites)


def prompt_roles(prompts: PromptSet) -> list[dict[str, int]]:
    """Each prompt's role indices ({"S2": 9, "END": 14, ...}), as `reads` takes them."""
    return [{k: int(v[p]) for k, v in prompts.roles.items()} for p in range(len(prompts))]


def reads_matrix(components: Sequence[Component], roles_per_prompt: Sequence[Mapping[str, int]] = ({},),
                 lengths: Sequence[int] | np.ndarray = (1024,)) -> list[list[bool]]:
    """R[i][j]: component j reads component i in at least one prompt (roles and lengths per prompt)."""
    n = len(components)
    return [[i != j and any(reads(components[i], components[j], r, int(t)) for r, t in zip(roles_per_prompt, lengths))
             for j in range(n)] for i in range(n)]


def longest_chain(R: Sequence[Sequence[bool]]) -> list[int]:
    """The longest sequence of distinct members, each reading every earlier one (brute force; |T| ≤ 8).

    Every earlier one, not just the previous: reads is not transitive across
    positions (a@5 → b@all positions → c@2 holds link by link, yet c never sees a).
    """
    n = len(R)
    best: list[int] = [0] if n else []
    for k in range(2, n + 1):
        for perm in itertools.permutations(range(n), k):
            if all(R[perm[i]][perm[j]] for i in range(k) for j in range(i + 1, k)):
                best = list(perm)
                break
        else:
            break
    return best


def _partitions(items: list[int]):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _partitions(rest):
        yield [[first]] + part
        for i in range(len(part)):
            yield part[:i] + [[first] + part[i]] + part[i + 1:]


def chain_cover(R: Sequence[Sequence[bool]]) -> list[list[int]]:
    """The fewest chains (blocks whose members are pairwise ordered by R) that partition the members,
    each listed upstream first (brute force over partitions; |T| ≤ 8)."""
    def is_chain(block):
        return all(R[a][b] or R[b][a] for a, b in itertools.combinations(block, 2))

    best = None
    for part in _partitions(list(range(len(R)))):
        if (best is None or len(part) < len(best)) and all(is_chain(b) for b in part):
            best = part
    return [sorted(b, key=lambda i: -sum(R[i][j] for j in b)) for b in best or []]


def predicted_slopes(R: Sequence[Sequence[bool]]) -> dict:
    """Distance-scaling slopes the structure predicts for the interaction of all members.

    frozen: |T| (no member responds to another). recompute: the fewest chains
    covering T: a chain of members, each reading every earlier one,
    contributes one order of t (the downstream patch blocks the upstream paths
    through it) instead of one per member. `conjecture` is DESIGN.md's earlier
    rule |T| − ℓ(T) + 1 (ℓ the longest chain); the two agree for |T| ≤ 3.
    """
    chain, cover = longest_chain(R), chain_cover(R)
    return dict(frozen=len(R), recompute=len(cover), conjecture=len(R) - len(chain) + 1,
                chain=chain, cover=cover)
