"""The studies' circuit (`choose_circuit`): the circuit `--circuit` names, or under `--discover path` the classes
path patching found (chosen on the selection prompts only, as the attention-role circuit is), that one kept
when path patching finds none."""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
from jaxtyping import Float

from intjax.errors import InputError
from intjax.ioi.circuit import is_gpt2_small, resolve_circuit
from intjax.ioi.path_discovery import STAGE_WORDS, PathDiscovery
from intjax.ioi.task import IOIPrompts
from intjax.model.protocol import HasConfig
from intjax.options import IOIStudyOptions

PATH_SOURCE = "found by path patching (Wang et al.'s procedure, `--discover path`, intjax.ioi.path_discovery: "
NO_ROLE_CIRCUIT = "no attention-role circuit"  # how the compared source starts when the roles found none


def path_circuit(path: PathDiscovery, named: Mapping[str, Sequence[str]],
                 named_source: str) -> tuple[dict[str, list[str]], str]:
    """The studies' circuit and its source in words: `path`'s classes when it found any, else `named` (the
    circuit of `--circuit`, from `named_source`), saying why; refused when neither has a head."""
    n_select, n_held_out = path.split
    if path.classes:
        stages = "; ".join(f"{i + 1}. {w}" for i, w in enumerate(STAGE_WORDS.values()))
        return ({c: list(h) for c, h in path.classes.items()},
                PATH_SOURCE + f"{stages}), chosen on {n_select} of the {n_select + n_held_out} prompts, every "
                f"study estimate on the other {n_held_out}")
    if not any(named.values()):
        raise InputError(f"path patching found no class and {named_source}: the studies have no circuit; give "
                         "one with --circuit FILE ({class: [heads]})")
    return ({c: list(h) for c, h in named.items()},
            f"{named_source}; path patching (`--discover path`) found no class, so the studies use this circuit")


@dataclasses.dataclass(frozen=True)
class CircuitChoice:
    """The studies' circuit, where it came from, and on which prompts they estimate."""

    circuit: dict[str, list[str]]
    source: str
    held_out: bool  # chosen on the selection prompts: every study estimates on the held-out ones
    path: Optional[PathDiscovery] = None  # path patching's discovery (--discover path)
    compared: tuple[dict[str, list[str]], str] = ({}, "")  # under --discover path: the circuit of --circuit


def choose_circuit(options: IOIStudyOptions, model: HasConfig, data: IOIPrompts, nie_noising: np.ndarray,
                   nie_denoising: np.ndarray, total_effect: float | Float[np.ndarray, " P"], select: np.ndarray,
                   held_out: np.ndarray,
                   discover_paths: Callable[[np.ndarray, np.ndarray], PathDiscovery]) -> CircuitChoice:
    """The circuit of `options.circuit` (attention roles, chosen on the `select` prompts when discovered), or
    under `--discover path` the classes `discover_paths(select, held_out)` finds, that one then compared.
    `nie_*` are `[P, L·H]` and `total_effect` `[P]` (or one number) on `data`; a discovered circuit is chosen
    with the selection prompts' rows and mean total effect, and its studies estimate on the `held_out` ones."""
    discovered = options.circuit == "discover" or (options.circuit == "auto" and not is_gpt2_small(model))
    by_path = options.discover == "path"  # path patching chooses on the selection half only
    split = (options.heldout and discovered) or by_path
    te = np.broadcast_to(np.asarray(total_effect, np.float64), (len(data),))
    try:
        circuit, source = resolve_circuit(options.circuit, model, data.subset(select) if split else data,
                                          nie_noising[select] if split else nie_noising,
                                          nie_denoising[select] if split else nie_denoising,
                                          float(te[select].mean() if split else te.mean()))
        if split and discovered:
            source += (f"; chosen on {len(select)} of the {len(data)} prompts, every study estimate on the other "
                       f"{len(held_out)}")
    except InputError as e:
        if not by_path:  # under --discover path the roles' circuit is only compared
            raise
        circuit, source = {}, f"{NO_ROLE_CIRCUIT} ({e})"
    if not by_path:
        return CircuitChoice(circuit, source, split)
    path = discover_paths(select, held_out)
    return CircuitChoice(*path_circuit(path, circuit, source), split, path, (circuit, source))
