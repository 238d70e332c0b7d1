"""Components: the units a patch acts on, named as researchers write them.

    L9H6        head 6 of layer 9, all positions      (site z[9, :, 6])
    L9H6@14     the same head at position 14 only
    L9H6@S2     ... at the prompt's position named S2 (a role; its index may differ per prompt)
    L9H6@~S2    ... at every position except S2
    L9H6PATTERN     head 6 of layer 9's attention pattern, every query position (site pattern[9, :, 6, :])
    L9H6PATTERN@END ... the pattern row of query position END only (all its keys)
    L9KV2       keys and values of key/value head 2 of layer 9, every position (sites k[9, :, 2], v[9, :, 2]):
                what every query head of its group reads (keys after RoPE); GPT-2: key/value head 2 = head 2
    L9KV2@S2    ... of the key position S2 only (as every later query reads them)
    L9K2, L9V2  the keys only, or the values only
    L3MLP       MLP output of layer 3                 (site mlp_out[3, :])
    L3MLP@14    ... at position 14 only
    L5RESID@14  residual stream before layer 5 at position 14 (site resid_pre[5, 14])
    L3ATTN      every head of layer 3, as one unit
    name=A+B+C  a group: components A, B, C patched together as one unit

Edges (path patching; DESIGN.md "Edges"): SENDER>RECEIVER[@pos] adds α·(source − base) of the sender's
output to that one receiver's input, every other reader of the residual sees the unpatched sum.
    L2H3>L3H1.q     head L2H3's output into the query input of head L3H1 (.k, .v: the key / value
                    input of key/value head 1; a bare L2H3>L3H1 is q, k and v together, k and v of
                    the key/value head query head 1 reads)
    L2H3>L3MLP      ... into layer 3's MLP input (a head may feed its own layer's MLP)
    L2H3>logits     ... straight to the unembedding (through the final norm of the modified residual)
    L2MLP>L5H0.v, embed>L1H0.v    an MLP or the embedding as the sender
    L2H3>L3H1.q@S2  ... at position S2 only (the residual is per position: sender and receiver share it)
    heads>heads.q   every head to the query of every head in a later layer (sets: heads, mlps, embed
                    on the left; heads, heads.q/.k/.v, mlps, logits on the right; or one name)

Spec shortcuts: `heads` (every head), `kvs` (every key/value head), `mlps`
(every MLP), `layers` (every layer's attention as one unit), combined with
commas: `heads,mlps`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Iterable, Literal, Optional

from intjax.errors import InputError
from intjax.model.protocol import ModelConfig

SiteKind = Literal["resid_pre", "k", "v", "pattern", "z", "mlp_out", "q_in", "k_in", "v_in", "mlp_in",
                   "logits_in"]


@dataclasses.dataclass(frozen=True)
class SiteKindInfo:
    """What the engine knows of one kind of site: the registry entry components, problems and
    the evaluator read (a new kind of site is one more entry here and its field in `Activations`)."""

    name: SiteKind
    per_head: bool  # values carry a head axis ([L, T, H, ...]) rather than one vector ([L, T, d_model])
    stage: int  # its place in a layer's computation; kinds computed side by side from the same input share one
    mixes_positions: bool = False  # computed by attention: reads the layer's input at earlier positions
    key_axis: bool = False  # its last axis is a position too (the key of an attention pattern)
    kv_heads: bool = False  # its head axis is the key/value heads (n_kv_heads), not the query heads
    unread_by: tuple[SiteKind, ...] = ()  # later kinds of the same layer that never read it

    def indicator_shape(self, n_layers: int, n_tokens: int, n_heads: int, n_kv_heads: int) -> tuple[int, ...]:
        """The shape of a 0/1 indicator over every site of this kind."""
        if not self.per_head:
            return (n_layers, n_tokens)
        return (n_layers, n_tokens, n_kv_heads if self.kv_heads else n_heads)


SITE_KIND_INFO: dict[SiteKind, SiteKindInfo] = {k.name: k for k in (
    SiteKindInfo("resid_pre", per_head=False, stage=0),
    # keys (after RoPE) and values [L, T, Hkv, Dh] of the key/value heads, at each key position; each reads
    # its own position's residual only, and later queries read it; the pattern reads the keys, not the values
    SiteKindInfo("k", per_head=True, stage=1, kv_heads=True),
    SiteKindInfo("v", per_head=True, stage=1, kv_heads=True, unread_by=("pattern",)),
    # attention pattern [L, T, H, K]: query position, head, key position; a patched run recomputes the
    # values it weights, so it enters at the residual
    SiteKindInfo("pattern", per_head=True, stage=2, mixes_positions=True, key_axis=True),
    SiteKindInfo("z", per_head=True, stage=3, mixes_positions=True),
    SiteKindInfo("mlp_out", per_head=False, stage=4),
)}
SITE_KINDS: tuple[SiteKind, ...] = tuple(SITE_KIND_INFO)  # in the order a layer computes them


@dataclasses.dataclass(frozen=True)
class ReceiverInfo:
    """The registry entry of an edge's receiver input: a reader of the residual stream that an edge
    feeds instead of the stream itself (`EDGE_RECEIVERS`; the engine reads it in `patching.edges`)."""

    name: SiteKind
    index: int  # its code in the engine's edge tables
    per_head: bool  # one input per head (q: query heads; k, v: key/value heads)
    kv_heads: bool = False
    same_layer: bool = False  # a head of the receiver's own layer may send to it (the MLP reads resid_mid)


EDGE_RECEIVERS: dict[str, ReceiverInfo] = {r.name: r for r in (
    ReceiverInfo("q_in", 0, per_head=True),
    ReceiverInfo("k_in", 1, per_head=True, kv_heads=True),
    ReceiverInfo("v_in", 2, per_head=True, kv_heads=True),
    ReceiverInfo("mlp_in", 3, per_head=False, same_layer=True),
    ReceiverInfo("logits_in", 4, per_head=False, same_layer=True),
)}
SENDER_KINDS = ("embed", "z", "mlp_out")  # an edge's sender: the embedding, a head's output, an MLP's output

FORMS = (
    "L{layer}H{head}, L{layer}H{head}@{pos}, L{layer}H{head}PATTERN[@{pos}], L{layer}KV{kv_head}[@{pos}] "
    "(or K / V alone), L{layer}MLP, L{layer}MLP@{pos}, L{layer}RESID@{pos}, L{layer}ATTN, NAME=A+B+..., "
    "or the shortcuts heads, kvs, mlps, layers; "
    "{pos} is an index, a role the prompts name (END, S2, ...) or ~ROLE (every position but ROLE)"
)
_ATOM = re.compile(
    r"^L(\d+)(?:H(\d+)(PATTERN)?|(KV|K|V)(\d+)|(MLP)|(RESID)|(ATTN))(?:@(\d+|~?[A-Za-z][A-Za-z0-9_]*))?$")


@dataclasses.dataclass(frozen=True, order=True)
class Site:
    """One place in the forward pass: a head's z or attention pattern, a key/value head's keys or values,
    an MLP output or a residual, at a layer."""

    kind: SiteKind
    layer: int
    head: Optional[int] = None  # per-head kinds only (a key/value head for k and v); None = every head
    pos: Optional[int | str] = None  # None = every position; "ROLE" / "~ROLE" = a named position / all but it
    sender: tuple = ()  # edges only: (kind in SENDER_KINDS, layer, head), -1 for none; () for a node's site

    @property
    def is_edge(self) -> bool:
        """Whether this site is an edge's receiver input (its layer is the receiver's; logits: the last)."""
        return bool(self.sender)


@dataclasses.dataclass(frozen=True)
class Component:
    """A named unit of patching: one site, or a group of sites patched together."""

    name: str
    sites: tuple[Site, ...]
    members: tuple[str, ...] = ()  # a group's member names; empty for a single component

    def __str__(self) -> str:
        return self.spec

    @property
    def spec(self) -> str:
        """The text that parses back to this component (`name=A+B` for a group)."""
        return f"{self.name}={'+'.join(self.members)}" if self.members else self.name

    @property
    def first_layer(self) -> int:
        """The earliest layer any of its sites lives in."""
        return min(s.layer for s in self.sites)


def _atom(text: str, config: ModelConfig) -> Component:
    m = _ATOM.match(text)
    if not m:
        raise InputError(f"cannot parse component {text!r}; valid forms: {FORMS}")
    layer, head, pattern, kv, kv_head, mlp, resid, attn, pos = m.groups()
    layer = int(layer)
    pos = int(pos) if pos is not None and pos.isdigit() else pos
    if layer >= config.n_layers:
        raise InputError(f"component {text!r}: layer {layer} is out of range 0..{config.n_layers - 1}")
    if head is not None:
        if int(head) >= config.n_heads:
            raise InputError(f"component {text!r}: head {head} is out of range 0..{config.n_heads - 1}")
        sites = (Site("pattern" if pattern else "z", layer, int(head), pos),)
    elif kv:
        n_kv = config.n_kv_heads
        if int(kv_head) >= n_kv:
            raise InputError(f"component {text!r}: key/value head {kv_head} is out of range 0..{n_kv - 1} "
                             f"(the model has {n_kv} key/value heads, each read by {config.n_heads // n_kv} "
                             "query heads)")
        sites = tuple(Site(kind, layer, int(kv_head), pos) for kind in ("k", "v") if kind.upper() in kv)
    elif mlp:
        sites = (Site("mlp_out", layer, None, pos),)
    elif attn:
        sites = (Site("z", layer, None, pos),)
    else:
        if pos is None:
            raise InputError(f"component {text!r}: a residual needs a position, e.g. L{layer}RESID@3")
        sites = (Site("resid_pre", layer, None, pos),)
    if isinstance(pos, int) and pos >= config.n_positions:
        raise InputError(f"component {text!r}: position {pos} is beyond n_positions={config.n_positions}")
    return Component(text, sites)


_SENDER = re.compile(r"^(?:L(\d+)H(\d+)|L(\d+)MLP|embed)$")
_RECEIVER = re.compile(r"^(?:L(\d+)H(\d+)(?:\.([qkv]))?|L(\d+)MLP|logits)$")
EDGE_FORMS = ("SENDER>RECEIVER[@pos] with SENDER one of L{layer}H{head}, L{layer}MLP, embed and RECEIVER one of "
              "L{layer}H{head}.q / .k / .v, L{layer}H{head} (all three), L{layer}MLP, logits; "
              "sets: heads|mlps|embed > heads|heads.q|heads.k|heads.v|mlps|logits")


def _sender(text: str, config: ModelConfig, edge: str) -> tuple:
    """(kind, layer, head) of an edge's sender name."""
    m = _SENDER.match(text)
    if not m:
        raise InputError(f"edge {edge!r}: cannot parse the sender {text!r}; valid forms: {EDGE_FORMS}")
    hl, hh, ml = m.groups()
    if text == "embed":
        return ("embed", -1, -1)
    layer = int(hl if hl is not None else ml)
    if layer >= config.n_layers:
        raise InputError(f"edge {edge!r}: layer {layer} is out of range 0..{config.n_layers - 1}")
    if hh is not None and int(hh) >= config.n_heads:
        raise InputError(f"edge {edge!r}: head {hh} is out of range 0..{config.n_heads - 1}")
    return ("z", layer, int(hh)) if hh is not None else ("mlp_out", layer, -1)


def _edge(text: str, config: ModelConfig) -> Component:
    """One edge `SENDER>RECEIVER[@pos]` (a bare head receiver is its q, k and v inputs together)."""
    body, _, pos = text.partition("@")
    if body.count(">") != 1 or (_ and not pos):
        raise InputError(f"cannot parse edge {text!r}; valid forms: {EDGE_FORMS}")
    left, right = body.split(">")
    sender = _sender(left, config, text)
    m = _RECEIVER.match(right)
    if not m:
        raise InputError(f"edge {text!r}: cannot parse the receiver {right!r}; valid forms: {EDGE_FORMS}")
    hl, hh, qkv, ml = m.groups()
    if pos:
        if not re.match(r"^(\d+|~?[A-Za-z][A-Za-z0-9_]*)$", pos):
            raise InputError(f"edge {text!r}: cannot parse the position {pos!r}; give an index or a role (END, ~S2)")
        pos = int(pos) if pos.isdigit() else pos
    else:
        pos = None
    L = config.n_layers
    if right == "logits":
        sites = (Site("logits_in", L - 1, None, pos, sender),)
    else:
        layer = int(hl if hl is not None else ml)
        if layer >= L:
            raise InputError(f"edge {text!r}: layer {layer} is out of range 0..{L - 1}")
        if sender[1] > layer or (sender[1] == layer and (hh is not None or sender[0] != "z")):
            raise InputError(f"edge {text!r}: the receiver does not read the sender (it is computed before it); "
                             "a receiver must be in a later layer (or be the MLP of a head's own layer)")
        if hh is None:
            sites = (Site("mlp_in", layer, None, pos, sender),)
        else:
            head = int(hh)
            kinds = (qkv,) if qkv else ("q", "k", "v")
            sites = []
            for kind in kinds:
                n = config.n_heads if kind == "q" else config.n_kv_heads
                h = head if kind == "q" or qkv else head // (config.n_heads // config.n_kv_heads)
                if h >= n:
                    raise InputError(f"edge {text!r}: {'key/value ' if kind != 'q' else ''}head {head} is out of "
                                     f"range 0..{n - 1} (.k and .v name key/value heads)")
                sites.append(Site(f"{kind}_in", layer, h, pos, sender))
            sites = tuple(sites)
    if isinstance(pos, int) and pos >= config.n_positions:
        raise InputError(f"edge {text!r}: position {pos} is beyond n_positions={config.n_positions}")
    return Component(text, sites)


_SENDER_SETS = {"heads": lambda c: [f"L{l}H{h}" for l in range(c.n_layers) for h in range(c.n_heads)],
                "mlps": lambda c: [f"L{l}MLP" for l in range(c.n_layers)], "embed": lambda c: ["embed"]}
_RECEIVER_SETS = {"heads": lambda c: [f"L{l}H{h}" for l in range(c.n_layers) for h in range(c.n_heads)],
                  **{f"heads.{x}": (lambda x: lambda c: [f"L{l}H{h}.{x}" for l in range(c.n_layers)
                                                           for h in range(c.n_heads if x == "q" else c.n_kv_heads)])(x)
                     for x in "qkv"},
                  "mlps": lambda c: [f"L{l}MLP" for l in range(c.n_layers)], "logits": lambda c: ["logits"]}


def _edge_layer(name: str) -> int:
    """The layer of a sender or receiver name (-1: embed, a large number: logits)."""
    return -1 if name == "embed" else 1 << 30 if name == "logits" else int(re.match(r"L(\d+)", name).group(1))


def edge_set(spec: str, config: ModelConfig) -> list[Component]:
    """Every edge of a set spec `heads>heads.q` (each sender set or name to each receiver that reads it)."""
    body, _, pos = spec.partition("@")
    left, right = body.split(">")
    senders = _SENDER_SETS[left](config) if left in _SENDER_SETS else [left]
    receivers = _RECEIVER_SETS[right](config) if right in _RECEIVER_SETS else [right]
    out = []
    for s in senders:
        for r in receivers:
            ls, lr = _edge_layer(s), _edge_layer(r)
            if ls < lr or (ls == lr and "H" in s and r.endswith("MLP")):
                out.append(_edge(f"{s}>{r}" + (f"@{pos}" if pos else ""), config))
    if not out:
        raise InputError(f"edge set {spec!r} has no edge (no receiver reads any sender)")
    return out


def is_edge_spec(text: str) -> bool:
    """Whether a component name is an edge (`A>B`)."""
    return ">" in text


def layer_of(name: str) -> int:
    """The layer a single component name (`L9H6`, `L9H6@END`, `L3MLP`, …) lives in; no config needed."""
    m = _ATOM.match(name.strip())
    if not m:
        raise InputError(f"cannot parse component {name!r}; valid forms: {FORMS}")
    return int(m.group(1))


def parse_component(text: str, config: ModelConfig) -> Component:
    """Parse one component name (or `name=A+B` group) for a model of this config."""
    text = text.strip()
    if "=" in text:
        name, members = text.split("=", 1)
        if not name or not members:
            raise InputError(f"cannot parse group {text!r}; write NAME=A+B+..., e.g. nm=L9H6+L9H9")
        return group(name.strip(), [_single(m.strip(), config) for m in members.split("+")])
    return _single(text, config)


def _single(text: str, config: ModelConfig) -> Component:
    return _edge(text, config) if is_edge_spec(text) else _atom(text, config)


def group(name: str, members: Iterable[Component]) -> Component:
    """One component that patches all `members` together."""
    members = list(members)
    if not members:
        raise InputError(f"group {name!r} has no members")
    if not re.match(r"^[A-Za-z_][\w.\-]*$", name) or _ATOM.match(name) or name in ("embed", "logits"):
        raise InputError(f"group name {name!r} must be a word (letters, digits, _ . -) and not a component name")
    sites = tuple(s for m in members for s in m.sites)
    names = tuple(n for m in members for n in (m.members or (m.name,)))
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InputError(f"group {name!r} lists {', '.join(twice)} more than once; list each member once")
    return Component(name, sites, names)


def parse_components(spec: str | Iterable[str], config: ModelConfig) -> list[Component]:
    """Expand a spec (`heads`, `mlps`, `layers`, names, groups; comma-separated) to components."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    if any(not item.strip() for item in items) and any(item.strip() for item in items):
        raise InputError(f"component spec {spec!r} has an empty item (two commas in a row, or one at an end); "
                         "remove it")
    out: list[Component] = []
    for item in items:
        item = item.strip()
        if item == "heads":
            out += [_atom(f"L{l}H{h}", config) for l in range(config.n_layers) for h in range(config.n_heads)]
        elif item == "kvs":
            out += [_atom(f"L{l}KV{h}", config) for l in range(config.n_layers) for h in range(config.n_kv_heads)]
        elif item == "mlps":
            out += [_atom(f"L{l}MLP", config) for l in range(config.n_layers)]
        elif item == "layers":
            out += [_atom(f"L{l}ATTN", config) for l in range(config.n_layers)]
        elif is_edge_spec(item) and "=" not in item and any(
                part.split("@")[0] in (*_SENDER_SETS, *_RECEIVER_SETS) and part.split("@")[0] not in ("embed", "logits")
                for part in item.split(">")):
            out += edge_set(item, config)
        elif item:
            out.append(parse_component(item, config))
    names = [c.name for c in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"components listed twice: {dupes}")
    if not out:
        raise InputError(f"no components in spec {spec!r}; valid forms: {FORMS}")
    return out
