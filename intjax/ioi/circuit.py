"""Which circuit a study uses: Wang et al.'s for GPT-2 small, a file, or one found on the model.

Discovery follows Wang et al. (2022) in spirit: a head is in the circuit when
the lower end of the 95% bootstrap CI of its |mean NIE| (noising or denoising;
0 when the CI includes 0) is at least `min_effect` of the total effect, so a
head whose mean passes the threshold by less than its noise does not enter.
Its class is the attention role it shows most on clean prompts (name movers
attend from END to IO, S-inhibition heads from END to S2, …), when that
attention is at least `min_attention`. Name movers whose NIE CI says they work
against IO (noising CI above 0, or denoising CI below 0) are negative name
movers; heads with no clear role are `other`. The IOI studies discover on one
split of the prompts and estimate on the other (`intjax.ioi.studies`). It is a
heuristic: pass a circuit file to override it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import equinox as eqx
import jax
import numpy as np

from intjax.errors import InputError
from intjax.model.protocol import HasConfig, PatchableModel
from intjax.patching.components import layer_of, parse_components
from intjax.patching.prompts import pad, padded_length
from intjax.ioi.task import GPT2_SMALL_IOI_CIRCUIT, GPT2_SMALL_IOI_CIRCUIT_SOURCE, IOIPrompts

ROLES = {  # class -> (query position, key position) whose attention marks it
    "name_mover": ("END", "IO"),
    "s_inhibition": ("END", "S2"),
    "induction": ("S2", "S1next"),
    "duplicate_token": ("S2", "S1"),
    "previous_token": ("S1next", "S1"),
}
# classes whose pattern is made by composing with an earlier head: an induction head attends from S2 to the
# token after S1 by reading a previous-token head's output, so a layer-0 head with that pattern is `other`
NEEDS_AN_EARLIER_LAYER = ("induction",)
CIRCUIT_CHOICES = "auto, wang2022, discover, or a JSON file {class: [heads]}"
# Wang et al.'s stages, earliest first: heads at S2 that find the duplicate, heads at END
# that move "S is duplicated" there, heads at END that copy the IO name.
STAGES: tuple[tuple[str, ...], ...] = (
    ("previous_token", "duplicate_token", "induction"),
    ("s_inhibition",),
    ("name_mover", "negative_name_mover", "backup_name_mover"),
)


def is_gpt2_small(model: HasConfig) -> bool:
    """Whether the model has GPT-2 small's shape (the Wang et al. circuit's heads exist and mean the same)."""
    c = model.config
    return (c.n_layers, c.n_heads, c.d_model, c.vocab_size) == (12, 12, 768, 50257)


@eqx.filter_jit
def _patterns(model: PatchableModel, tokens):
    return jax.vmap(lambda t: model.activations(t, with_pattern=True).pattern)(tokens)


def attention_roles(model: PatchableModel, data: IOIPrompts) -> np.ndarray:
    """Mean attention of every head in each ROLES pattern on the clean prompts, `[L, H, len(ROLES)]`."""
    T = padded_length(int(data.prompts.lengths.max()), model.config.n_positions)  # shared with build_problem's
    pattern = np.asarray(_patterns(model, jax.device_put(pad(data.prompts.clean, T))))  # [P, L, T, H, K]
    out = np.zeros((pattern.shape[1], pattern.shape[3], len(ROLES)))
    for p, text in enumerate(data.texts):
        pos = text["positions"]
        for r, (query, key) in enumerate(ROLES.values()):
            out[:, :, r] += pattern[p, :, pos[query], :, pos[key]]
    return out / len(data.texts)


def abs_mean_bounds(nie: np.ndarray, n_boot: int = 2000, seed: int = 0,
                    level: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of `nie` `[P, n]`: the bootstrap percentile CI (low `[n]`, high `[n]`) of the mean over
    prompts, and the lower end of the implied CI of |mean| `[n]` (0 where the CI includes 0)."""
    nie = np.asarray(nie, np.float64)
    idx = np.random.default_rng(seed).integers(0, len(nie), (n_boot, len(nie)))
    means = np.concatenate([nie[b].mean(1) for b in np.array_split(idx, max(1, n_boot // 200))])  # [n_boot, n]
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2], axis=0)
    bound = np.where((lo > 0) | (hi < 0), np.minimum(np.abs(lo), np.abs(hi)), 0.0)
    return lo, hi, bound


def discover_circuit(
    model: PatchableModel,
    data: IOIPrompts,
    nie_noising: np.ndarray,
    nie_denoising: np.ndarray,
    total_effect: float,
    *,
    min_effect: float = 0.05,
    min_attention: float = 0.2,
) -> dict[str, list[str]]:
    """The heads that matter (lower end of the 95% CI of |mean NIE| ≥ min_effect·|TE| in either direction),
    grouped by attention role (a role a layer-0 head cannot have, `NEEDS_AN_EARLIER_LAYER`, is `other`).

    `nie_*` are `[P, L·H]` over every head in layer-major order.
    """
    L, H = model.config.n_layers, model.config.n_heads
    noise = np.asarray(nie_noising).mean(0)
    if noise.shape != (L * H,):
        raise InputError(f"NIE must cover all {L * H} heads in layer-major order, got shape {noise.shape}")
    n_lo, _, n_bound = abs_mean_bounds(nie_noising)
    _, d_hi, d_bound = abs_mean_bounds(nie_denoising)
    roles = attention_roles(model, data).reshape(L * H, len(ROLES))
    names = list(ROLES)
    selected = np.flatnonzero(np.maximum(n_bound, d_bound) >= min_effect * abs(total_effect))
    if len(selected) == L * H:
        raise InputError(
            f"every one of the {L * H} heads reaches {min_effect:.0%} of the total effect "
            f"(|TE| = {abs(total_effect):.3g}): the model singles out no heads for this task, as with random "
            "weights, so no circuit can be discovered and the circuit studies have nothing outside it to "
            "ablate; give one with --circuit FILE ({class: [heads]})")
    circuit: dict[str, list[str]] = {}
    for i in selected:
        r = int(roles[i].argmax())
        cls = names[r] if roles[i, r] >= min_attention else "other"
        if cls in NEEDS_AN_EARLIER_LAYER and i // H == 0:
            cls = "other"
        if cls == "name_mover" and (n_lo[i] > 0 or d_hi[i] < 0):
            cls = "negative_name_mover"
        circuit.setdefault(cls, []).append(f"L{i // H}H{i % H}")
    if not circuit:
        raise InputError(f"no head's 95% CI of |NIE| lies above {min_effect:.0%} of the total effect; give more "
                         "prompts or lower min_effect")
    return circuit


def stage_order(circuit: dict[str, Sequence[str]]) -> tuple[bool, list[str]]:
    """Whether every head of each STAGES stage sits in a later layer than every head of the
    stages before it (Wang et al.'s order), and each violation in words. A circuit
    missing a stage is not ordered; classes outside STAGES (`other`) are ignored."""
    layers = [sorted({layer_of(h) for cls in stage for h in circuit.get(cls, [])}) for stage in STAGES]
    problems = [f"no {' / '.join(stage)} head" for stage, ls in zip(STAGES, layers) if not ls]
    for s in range(len(STAGES) - 1):
        (a, la), (b, lb) = (STAGES[s], layers[s]), (STAGES[s + 1], layers[s + 1])
        if la and lb and max(la) >= min(lb):
            problems.append(f"{' / '.join(a)} reaches layer {max(la)}, not before {' / '.join(b)} "
                            f"from layer {min(lb)}")
    return not problems, problems


def read_circuit(path: str | Path) -> dict[str, list[str]]:
    """A circuit from a JSON file `{class: [head names]}`."""
    path = Path(path)
    try:
        circuit = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read circuit file {path}: {e}; it must hold JSON {{class: [heads]}}") from e
    if not isinstance(circuit, dict) or not all(
            isinstance(v, list) and all(isinstance(h, str) for h in v) for v in circuit.values()):
        raise InputError(f"circuit file {path} must hold a JSON object {{class: [head names]}}")
    if not any(circuit.values()):
        raise InputError(f"circuit file {path} names no heads; give at least one, e.g. "
                         '{"name_mover": ["L3H0"], "s_inhibition": ["L2H1"]}')
    classes: dict[str, list[str]] = {}
    for cls, heads in circuit.items():
        for head in heads:
            classes.setdefault(head.strip(), []).append(cls)
    twice = {head: where for head, where in classes.items() if len(where) > 1}
    if twice:
        head, where = next(iter(twice.items()))
        raise InputError(f"circuit file {path} lists {head} in {' and '.join(repr(c) for c in where)}"
                         f"{f' (and {len(twice) - 1} more heads twice)' if len(twice) > 1 else ''}; "
                         "each head belongs to one class: keep it in one")
    return circuit


def check_circuit_spec(spec: str, model: PatchableModel | None = None) -> None:
    """Refuse, before any patching, a circuit spec that cannot be used: an unknown name, an
    unreadable file, or (with `model`) heads the model does not have or wang2022 on another shape."""
    if spec in ("auto", "discover"):
        return
    if spec == "wang2022":
        if model is not None and not is_gpt2_small(model):
            raise InputError("the wang2022 circuit names GPT-2 small's heads; this model has another shape. "
                             "Use --circuit discover or a circuit file")
        return
    if not (Path(spec).suffix == ".json" or Path(spec).exists()):
        raise InputError(f"unknown circuit {spec!r}; choose {CIRCUIT_CHOICES}")
    circuit = read_circuit(spec)
    if model is not None:
        for cls, heads in circuit.items():
            for h in heads:
                try:
                    parsed = parse_components(h, model.config)
                except InputError as e:
                    raise InputError(f"circuit file {spec}, class {cls!r}: {e}") from None
                if len(parsed) != 1 or parsed[0].sites[0].kind != "z" or parsed[0].sites[0].pos is not None:
                    raise InputError(f"circuit file {spec}, class {cls!r}: {h!r} is not one head (LxHy)")


def resolve_circuit(spec: str, model: HasConfig, data: Optional[IOIPrompts], nie_noising: Optional[np.ndarray],
                    nie_denoising: Optional[np.ndarray], total_effect: float) -> tuple[dict[str, list[str]], str]:
    """The circuit `spec` names (see CIRCUIT_CHOICES) and where it came from, in words; discovery
    (`model` a GPT2, `data` and the NIEs given) is the only choice that runs the model."""
    if spec == "auto":
        spec = "wang2022" if is_gpt2_small(model) else "discover"
    if spec == "wang2022":
        if not is_gpt2_small(model):
            raise InputError("the wang2022 circuit names GPT-2 small's heads; this model has another shape. "
                             "Use --circuit discover or a circuit file")
        return {k: list(v) for k, v in GPT2_SMALL_IOI_CIRCUIT.items()}, GPT2_SMALL_IOI_CIRCUIT_SOURCE
    if spec == "discover":
        circuit = discover_circuit(model, data, nie_noising, nie_denoising, total_effect)
        return circuit, ("discovered on this model: heads whose 95% CI of |mean NIE| lies above 5% of |TE|, "
                         "classed by their strongest attention role (intjax.ioi.circuit; an induction pattern "
                         "in layer 0 counts as other)")
    if Path(spec).suffix == ".json" or Path(spec).exists():
        return read_circuit(spec), f"file {spec}"
    raise InputError(f"unknown circuit {spec!r}; choose {CIRCUIT_CHOICES}")


def class_of(circuit: dict[str, Sequence[str]]) -> dict[str, str]:
    """Head name -> its class."""
    return {h: cls for cls, heads in circuit.items() for h in heads}
