"""Prompt pairs (clean, corrupted) with the target and foil tokens the metric reads, and
named positions (roles such as S2 or END) that may sit at a different index in each prompt."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from intjax.errors import InputError


@dataclasses.dataclass(frozen=True)
class PromptSet:
    """Token ids of clean and corrupted prompts (same length per pair) and answer tokens."""

    clean: tuple[np.ndarray, ...]
    corrupted: tuple[np.ndarray, ...]
    target: np.ndarray  # [P] int
    foil: np.ndarray  # [P] int
    positions: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # role -> [P] index

    def __post_init__(self) -> None:
        lengths = self.lengths
        for role, where in self.positions.items():
            where = np.asarray(where)
            if where.shape != lengths.shape or (where < 0).any() or (where >= lengths).any():
                raise InputError(f"position {role!r} must give one index inside each prompt "
                                 f"(0..length−1) for all {len(lengths)} prompts")

    def __len__(self) -> int:
        return len(self.clean)

    @property
    def roles(self) -> dict[str, np.ndarray]:
        """Named positions per prompt, `role -> [P]`, with END (the last token) always present."""
        return {"END": self.lengths - 1, **{k: np.asarray(v) for k, v in self.positions.items()}}

    @property
    def lengths(self) -> np.ndarray:
        """Length of each prompt pair, [P]."""
        return np.array([len(c) for c in self.clean])

    def subset(self, idx: Sequence[int] | np.ndarray) -> "PromptSet":
        """The prompt pairs at positions `idx`."""
        return PromptSet(
            tuple(self.clean[i] for i in idx), tuple(self.corrupted[i] for i in idx),
            self.target[list(idx)], self.foil[list(idx)],
            {k: np.asarray(v)[list(idx)] for k, v in self.positions.items()},
        )


def concat_prompt_sets(sets: Sequence[PromptSet]) -> PromptSet:
    """One PromptSet holding every pair of `sets`, in order (they must name the same roles)."""
    roles = [set(s.positions) for s in sets]
    if any(r != roles[0] for r in roles):
        raise InputError(f"cannot join prompt sets that name different positions: {[sorted(r) for r in roles]}")
    return PromptSet(
        tuple(c for s in sets for c in s.clean), tuple(x for s in sets for x in s.corrupted),
        np.concatenate([s.target for s in sets]), np.concatenate([s.foil for s in sets]),
        {k: np.concatenate([s.positions[k] for s in sets]) for k in roles[0]},
    )


def _single_token(tokenizer, text: str, where: str) -> int:
    ids = tokenizer.encode(text, add_special_tokens=False).ids  # no BOS (Llama, Mistral): the word alone
    if len(ids) != 1:
        raise InputError(
            f"{where}: {text!r} is {len(ids)} tokens {ids}, the metric needs one; "
            "pick another word or give its id (target_id/foil_id)"
        )
    return ids[0]


def make_prompt_set(rows: Sequence[dict[str, Any]], tokenizer=None, source: str = "prompts") -> PromptSet:
    """Build a PromptSet from dicts with `clean_ids`/`corrupted_ids`/`target_id`/`foil_id`
    or `clean`/`corrupted`/`target`/`foil` text (needs `tokenizer`), and optionally
    `positions`: {role: token index} (the same roles on every line)."""
    clean, corrupted, target, foil, positions = [], [], [], [], []
    for n, row in enumerate(rows, start=1):
        where = f"{source} line {n}"
        try:
            if "clean_ids" in row:
                c, x = np.asarray(row["clean_ids"], np.int32), np.asarray(row["corrupted_ids"], np.int32)
                t, f = int(row["target_id"]), int(row["foil_id"])
            else:
                if tokenizer is None:
                    raise InputError(f"{where}: text prompts need a tokenizer; give token ids instead")
                c = np.asarray(tokenizer.encode(row["clean"]).ids, np.int32)
                x = np.asarray(tokenizer.encode(row["corrupted"]).ids, np.int32)
                t = _single_token(tokenizer, row["target"], where)
                f = _single_token(tokenizer, row["foil"], where)
        except KeyError as e:
            raise InputError(
                f"{where} has no {e.args[0]!r}; each line needs clean_ids, corrupted_ids, "
                "target_id, foil_id (or clean, corrupted, target, foil as text)"
            ) from None
        if len(c) != len(x):
            raise InputError(
                f"{where}: clean prompt has {len(c)} tokens but corrupted has {len(x)}; "
                "patching needs aligned positions, so make the pair the same length"
            )
        if len(c) == 0:
            raise InputError(f"{where}: empty prompt")
        roles = row.get("positions", {})
        if positions and set(roles) != set(positions[0]):
            raise InputError(f"{where}: positions {sorted(roles)} differ from line 1's {sorted(positions[0])}; "
                             "give every line the same roles")
        if not all(isinstance(v, int) and 0 <= v < len(c) for v in roles.values()):
            raise InputError(f"{where}: positions {roles} must be token indices in 0..{len(c) - 1}")
        clean.append(c), corrupted.append(x), target.append(t), foil.append(f), positions.append(roles)
    if not clean:
        raise InputError(f"{source} holds no prompts")
    by_role = {k: np.array([p[k] for p in positions]) for k in positions[0]}
    return PromptSet(tuple(clean), tuple(corrupted), np.array(target), np.array(foil), by_role)


def read_prompts(path: str | Path, tokenizer=None) -> PromptSet:
    """Read a PROMPTS.jsonl file (one JSON object a line; blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"prompt file {path} does not exist")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise InputError(f"{path} line {n} is not JSON: {e}") from None
    return make_prompt_set(rows, tokenizer, source=str(path))


def check_vocab(prompts: PromptSet, vocab_size: int, n_positions: int) -> None:
    """Raise InputError naming the first prompt whose ids the model cannot read."""
    for n, (c, x, t, f) in enumerate(zip(prompts.clean, prompts.corrupted, prompts.target, prompts.foil), 1):
        for ids in (c, x, np.array([t, f])):
            if ids.min() < 0 or ids.max() >= vocab_size:
                raise InputError(f"prompt {n}: token id outside the vocabulary 0..{vocab_size - 1}")
        if len(c) > n_positions:
            raise InputError(f"prompt {n}: {len(c)} tokens, more than n_positions={n_positions}")


def pad(seqs: Sequence[np.ndarray], length: Optional[int | np.integer] = None) -> np.ndarray:
    """Right-pad token sequences with 0 to `[P, length]` (causal attention makes it exact)."""
    length = length or max(len(s) for s in seqs)
    out = np.zeros((len(seqs), length), np.int32)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out
