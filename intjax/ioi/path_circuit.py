"""The studies' circuit under `--discover path`: the classes path patching found (chosen on the selection
prompts only, as the attention-role circuit is), or the circuit `--circuit` names when it found none."""

from __future__ import annotations

from typing import Mapping, Sequence

from intjax.errors import InputError
from intjax.ioi.path_discovery import STAGE_WORDS, PathDiscovery

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
