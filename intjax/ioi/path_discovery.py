"""IOI circuit discovery by path patching, as Wang et al. (2022, Sec. 3) did it, on edge sites.

Four stages, each patching paths sender → receiver input (frozen semantics: the receiver sees the sender's
corrupted output, every other path holds) and keeping the senders whose path is *significant*:

1. every head's direct path to the logits (`LxHy>logits`): same sign as the total effect → name mover,
   opposite sign → negative name mover;
2. paths into the name movers' queries at END (`LxHy>NM.q@END`, every name mover in a later layer at once)
   → S-inhibition heads;
3. paths into the S-inhibition heads' values at S2 (`LxHy>SI.v@S2`) → induction or duplicate-token heads
   (path patching cannot tell these apart: each takes the role its attention from S2 shows more, to S1+1
   or to S1, given as `s2_roles`);
4. paths into the induction heads' keys at S1+1 (`LxHy>IND.k@S1next`) → previous-token heads.

A path is significant when, on the selection prompts, the 95% bootstrap CI of its mean effect excludes 0 and
|mean| ≥ `min_share`·|mean total effect|. Its class follows the sign of its share (effect / total effect):
positive means the path carries part of the model's own effect. A head joins the first class it reaches;
a stage without receivers (or with no earlier head to send) finds nothing, and `notes` says why. What
chose the classes is never what estimates them: every reported effect and CI is on the held-out prompts.
Pure functions over a patch function `PatchFn` (`edge_patch_fn` builds it from a model).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
from jaxtyping import Float

from intjax.bootstrap import draws, percentile_ci
from intjax.errors import InputError

# component specs and masks [M, n] -> f(mask) − f(0) on every prompt, [M, P]
PatchFn = Callable[[Sequence[str], Float[np.ndarray, "M n"]], Float[np.ndarray, "M P"]]

MIN_SHARE = 0.05  # a path enters when its |mean effect| is at least this share of |TE| (and its CI excludes 0)
N_BOOT = 2000
MAX_PAIR_EDGES = 6  # interactions among at most this many of a stage's classed paths (the strongest)


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage of the procedure: which receivers its paths enter and what a significant sender becomes."""

    key: str
    receiver_class: str  # the class whose heads are the receivers ("" for the logits)
    input: str  # q, k, v or "" (the logits)
    position: str  # the role the receiver input is patched at ("" for the logits)
    supports: str  # the class of a sender whose path carries the effect's sign ("s2" for the role split)
    opposes: str = ""  # the class of a sender whose path works against it ("" none)


STAGES = (
    Stage("direct", "", "", "", "name_mover", "negative_name_mover"),
    Stage("name_mover.q", "name_mover", "q", "END", "s_inhibition"),
    Stage("s_inhibition.v", "s_inhibition", "v", "S2", "s2"),
    Stage("induction.k", "induction", "k", "S1next", "previous_token"),
)
PATH_CLASSES = ("name_mover", "negative_name_mover", "s_inhibition", "induction", "duplicate_token",
                "previous_token")  # every class a stage can give (stage 3's supporting class is split in two)
STAGE_WORDS = {"direct": "direct path to the logits", "name_mover.q": "into the name movers' queries (END)",
               "s_inhibition.v": "into the S-inhibition heads' values (S2)",
               "induction.k": "into the induction heads' keys (S1+1)"}


@dataclasses.dataclass(frozen=True)
class PathRow:
    """One sender's path(s) into one stage's receivers, patched together, with its effect on both splits."""

    stage: str
    sender: str
    receivers: tuple[str, ...]  # edge receivers ("logits", "L3H0.q@END", ...)
    chosen: tuple[float, float, float]  # mean effect and its 95% CI on the selection prompts
    held_out: tuple[float, float, float]  # the same on the held-out prompts (what the report states)
    significant: bool  # by the rule, on the selection prompts
    cls: str = ""  # the class this path gave its sender ("" none)

    def spec(self) -> str:
        """The component spec patched for this row (a group when it has several edges)."""
        edges = [f"{self.sender}>{r}" for r in self.receivers]
        return edges[0] if len(edges) == 1 else f"from_{self.sender}_{self.stage}=" + "+".join(edges)


@dataclasses.dataclass(frozen=True)
class PathPair:
    """The interaction of two classed paths of one stage (same receivers), on the held-out prompts."""

    stage: str
    a: str
    b: str
    mean: float
    low: float
    high: float


@dataclasses.dataclass(frozen=True)
class PathDiscovery:
    """What the path-patching discovery found: classes, every tested path, interactions, notes."""

    classes: dict[str, list[str]]
    rows: tuple[PathRow, ...]
    pairs: tuple[PathPair, ...]
    total: tuple[float, float]  # mean total effect on the selection and on the held-out prompts
    min_share: float
    split: tuple[int, int]  # prompts that chose, prompts that estimate
    notes: tuple[str, ...]  # one line per stage that found nothing, saying why
    # per prompt, on every prompt (selection and held out), so that each number above can be recomputed:
    effects: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # stage -> [P, its rows]
    pair_values: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # stage -> [P, its pairs] INT
    total_values: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))  # [P] each prompt's TE
    select: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, int))  # the selection prompts
    seed: int = 0  # of the bootstrap CIs

    def class_of(self) -> dict[str, str]:
        """Head -> its discovered class."""
        return {h: c for c, heads in self.classes.items() for h in heads}


def mean_cis(values: Float[np.ndarray, "P n"], n_boot: int = N_BOOT, seed: int = 0,
             level: float = 0.95) -> Float[np.ndarray, "n 3"]:
    """Per column: the mean over prompts and its bootstrap percentile CI (nan with fewer than two prompts)."""
    values = np.asarray(values, np.float64)
    if len(values) < 2:
        return np.column_stack([values.mean(0), np.full((2, values.shape[1]), np.nan).T])
    lo, hi = percentile_ci(values[draws(len(values), n_boot, seed)].mean(1), level, axis=0)
    return np.column_stack([values.mean(0), lo, hi])


def significant(stats: Float[np.ndarray, "n 3"], total: float, min_share: float) -> np.ndarray:
    """Whether each (mean, low, high) passes the rule: CI excludes 0 and |mean| ≥ min_share·|total|."""
    stats = np.asarray(stats, np.float64)
    excludes = (stats[:, 1] > 0) | (stats[:, 2] < 0)
    return excludes & (np.abs(stats[:, 0]) >= min_share * abs(total))


def layer_head(head: str) -> tuple[int, int]:
    """(layer, head) of `LxHy`."""
    layer, h = head[1:].split("H")
    return int(layer), int(h)


def stage_paths(stage: Stage, receivers: Sequence[str], senders: Sequence[str],
                kv_of: Callable[[int], int] = lambda h: h) -> list[tuple[str, tuple[str, ...]]]:
    """(sender, its edge receivers) of every sender with at least one receiver in a later layer;
    `kv_of` maps a query head to its key/value head (grouped-query models)."""
    if not stage.receiver_class:
        return [(s, ("logits",)) for s in senders]
    out = []
    for s in senders:
        into = []
        for r in receivers:
            layer, h = layer_head(r)
            if layer > layer_head(s)[0]:
                into.append(f"L{layer}H{h if stage.input == 'q' else kv_of(h)}.{stage.input}@{stage.position}")
        if into:
            out.append((s, tuple(dict.fromkeys(into))))
    return out


def class_for(stage: Stage, share_sign: float, s2_role: str) -> str:
    """The class a significant path gives its sender: `supports` when its share is positive (the role split
    for stage 3), `opposes` when negative ("" when the stage names no opposing class)."""
    if share_sign > 0:
        return s2_role if stage.supports == "s2" else stage.supports
    return stage.opposes


def discover_paths(patch: PatchFn, heads: Sequence[str], total: Float[np.ndarray, " P"], select: np.ndarray,
                   held_out: np.ndarray, s2_roles: Mapping[str, str], *, min_share: float = MIN_SHARE,
                   kv_of: Callable[[int], int] = lambda h: h, seed: int = 0) -> PathDiscovery:
    """Run the four stages (module doc): choose on the `select` prompts, estimate on `held_out`.

    `heads`: every head `LxHy`; `total` `[P]`: each prompt's total effect; `s2_roles`: head -> "induction" or
    "duplicate_token" (its stronger attention role from S2).
    """
    total = np.asarray(total, np.float64)
    te = (float(total[select].mean()), float(total[held_out].mean()))
    if te[0] == 0:
        raise InputError("the total effect is 0 on the selection prompts: no path can carry a share of it; "
                         "give prompts the model solves")
    classes: dict[str, list[str]] = {}
    rows: list[PathRow] = []
    pairs: list[PathPair] = []
    notes: list[str] = []
    effects_of: dict[str, np.ndarray] = {}
    pair_values: dict[str, np.ndarray] = {}
    for stage in STAGES:
        receivers = classes.get(stage.receiver_class, []) if stage.receiver_class else []
        if stage.receiver_class and not receivers:
            notes.append(f"{STAGE_WORDS[stage.key]}: no {stage.receiver_class} head was found, "
                         "so this stage has no receiver")
            continue
        taken = {h for hs in classes.values() for h in hs}
        paths = stage_paths(stage, receivers, [h for h in heads if h not in taken], kv_of)
        if not paths:
            notes.append(f"{STAGE_WORDS[stage.key]}: no unclassed head sits in a layer before "
                         f"{', '.join(receivers)}, so no path can enter")
            continue
        shell = [PathRow(stage.key, s, r, (0.0,) * 3, (0.0,) * 3, False) for s, r in paths]
        effects = np.asarray(patch([row.spec() for row in shell], np.eye(len(shell))), np.float64).T  # [P, n]
        effects_of[stage.key] = effects
        chosen, est = mean_cis(effects[select], seed=seed), mean_cis(effects[held_out], seed=seed)
        passed = significant(chosen, te[0], min_share)
        found = []
        for i, row in enumerate(shell):
            cls = class_for(stage, np.sign(chosen[i, 0] / te[0]), s2_roles.get(row.sender, "induction")) \
                if passed[i] else ""
            rows.append(dataclasses.replace(row, chosen=tuple(map(float, chosen[i])),
                                            held_out=tuple(map(float, est[i])), significant=bool(passed[i]), cls=cls))
            if cls:
                classes.setdefault(cls, []).append(row.sender)
                found.append(i)
        if not passed.any():
            notes.append(f"{STAGE_WORDS[stage.key]}: no path of {len(shell)} passes the rule "
                         f"(95% CI excluding 0 and |effect| ≥ {min_share:.0%} of |TE|)")
        elif not found:
            notes.append(f"{STAGE_WORDS[stage.key]}: {int(passed.sum())} of {len(shell)} paths pass the rule, each "
                         "against the total effect, which gives no class here")
        found_pairs, ints = stage_pairs(patch, stage.key, [shell[i] for i in found], chosen[found, 0], held_out, seed)
        pairs += found_pairs
        if found_pairs:
            pair_values[stage.key] = ints
    return PathDiscovery({c: sorted(h, key=layer_head) for c, h in classes.items()}, tuple(rows), tuple(pairs), te,
                         min_share, (len(select), len(held_out)), tuple(notes), effects_of, pair_values, total,
                         np.asarray(select, int), seed)


def stage_pairs(patch: PatchFn, stage: str, rows: Sequence[PathRow], strength: np.ndarray, held_out: np.ndarray,
                seed: int = 0) -> tuple[list[PathPair], Float[np.ndarray, "P n_pairs"]]:
    """INT f(a+b) − f(a) − f(b) + f(0) of every pair among a stage's strongest classed paths (at most
    MAX_PAIR_EDGES, by |mean effect| on the selection prompts), mean and CI on the held-out prompts; and each
    pair's INT on every prompt."""
    if len(rows) < 2:
        return [], np.zeros((0, 0))
    keep = sorted(np.argsort(-np.abs(strength), kind="stable")[:MAX_PAIR_EDGES].tolist())
    rows = [rows[i] for i in keep]
    combos = list(itertools.combinations(range(len(rows)), 2))
    masks = np.concatenate([np.eye(len(rows)), np.array([np.isin(np.arange(len(rows)), c) for c in combos], float)])
    values = np.asarray(patch([r.spec() for r in rows], masks), np.float64)  # [M, P], f − f(0)
    ints = np.stack([values[len(rows) + k] - values[a] - values[b] for k, (a, b) in enumerate(combos)], 1)
    stats = mean_cis(ints[held_out], seed=seed)
    return [PathPair(stage, rows[a].sender, rows[b].sender, *map(float, stats[k]))
            for k, (a, b) in enumerate(combos)], ints


PATH_COMPILE_S = 25.0  # compiling its problems (one per stage) with an empty cache, ioi-small on the 2-core CPU


def path_discovery_seconds(n_layers: int, n_heads: int, n_prompts: int, per_forward: float,
                           compile_share: float = 1.0) -> float:
    """Estimated seconds of `run_path_discovery` (an upper bound on its patched runs, in forward equivalents at
    `per_forward`, plus `compile_share` of PATH_COMPILE_S, less with a warm compilation cache): every head's
    direct path starts in the last layer (1/L of a forward); each later stage patches at most every head's group, from the receivers' layers (at most half the model
    on average), and at most 21 interaction masks per stage."""
    n = n_layers * n_heads
    fe = n_prompts * (n / n_layers + 3 * n / 2 + 4 * 21)
    return fe * per_forward + compile_share * PATH_COMPILE_S


def edge_patch_fn(model, prompts, evaluate_masks: Optional[Callable] = None) -> PatchFn:
    """The PatchFn of a model on a PromptSet: noising (clean base, corrupted source), frozen semantics, the
    logit difference; `evaluate_masks(problem, masks)` defaults to `intjax.patching.evaluate`."""
    from intjax.patching import build_problem, evaluate, parse_components

    run = evaluate_masks or evaluate

    def patch(specs: Sequence[str], masks: np.ndarray) -> np.ndarray:
        problem = build_problem(model, prompts, parse_components(list(specs), model.config), semantics="frozen",
                                direction="noising")
        return np.asarray(run(problem, masks)) - np.asarray(problem.metric_base)[None]

    return patch


def s2_roles(model, data) -> dict[str, str]:
    """Head -> "induction" or "duplicate_token": the stronger of its two attention roles from S2 (to S1+1 or
    to S1) on `data`'s clean prompts."""
    from intjax.ioi.circuit import ROLES, attention_roles

    roles = attention_roles(model, data)  # [L, H, len(ROLES)]
    ind, dup = list(ROLES).index("induction"), list(ROLES).index("duplicate_token")
    L, H = roles.shape[:2]
    return {f"L{l}H{h}": "induction" if roles[l, h, ind] >= roles[l, h, dup] else "duplicate_token"
            for l in range(L) for h in range(H)}


def run_path_discovery(model, data, select: np.ndarray, held_out: np.ndarray, *, min_share: float = MIN_SHARE,
                       seed: int = 0, evaluate_masks: Optional[Callable] = None) -> PathDiscovery:
    """`discover_paths` on a model and its IOI prompts (`IOIPrompts`): the attention split of stage 3 read on
    the selection prompts, each prompt's total effect from the clean and corrupted runs."""
    from intjax.patching import build_problem, parse_components

    cfg = model.config
    heads = [f"L{l}H{h}" for l in range(cfg.n_layers) for h in range(cfg.n_heads)]
    probe = build_problem(model, data.prompts, parse_components("L0H0>logits", cfg), semantics="frozen")
    total = np.asarray(probe.metric_corrupted) - np.asarray(probe.metric_clean)
    group = cfg.n_heads // cfg.n_kv_heads
    return discover_paths(edge_patch_fn(model, data.prompts, evaluate_masks), heads, total, select, held_out,
                          s2_roles(model, data.subset(select)), min_share=min_share, kv_of=lambda h: h // group,
                          seed=seed)
