"""Prompt pairs (clean, corrupted) with the target and foil tokens the metric reads."""

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

    def __len__(self) -> int:
        return len(self.clean)

    @property
    def lengths(self) -> np.ndarray:
        """Length of each prompt pair, [P]."""
        return np.array([len(c) for c in self.clean])

    def subset(self, idx: Sequence[int]) -> "PromptSet":
        """The prompt pairs at positions `idx`."""
        return PromptSet(
            tuple(self.clean[i] for i in idx), tuple(self.corrupted[i] for i in idx),
            self.target[list(idx)], self.foil[list(idx)],
        )


def _single_token(tokenizer, text: str, where: str) -> int:
    ids = tokenizer.encode(text).ids
    if len(ids) != 1:
        raise InputError(
            f"{where}: {text!r} is {len(ids)} tokens {ids}, the metric needs one; "
            "pick another word or give its id (target_id/foil_id)"
        )
    return ids[0]


def make_prompt_set(rows: Sequence[dict[str, Any]], tokenizer=None, source: str = "prompts") -> PromptSet:
    """Build a PromptSet from dicts with `clean_ids`/`corrupted_ids`/`target_id`/`foil_id`
    or `clean`/`corrupted`/`target`/`foil` text (needs `tokenizer`)."""
    clean, corrupted, target, foil = [], [], [], []
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
        clean.append(c), corrupted.append(x), target.append(t), foil.append(f)
    if not clean:
        raise InputError(f"{source} holds no prompts")
    return PromptSet(tuple(clean), tuple(corrupted), np.array(target), np.array(foil))


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


def pad(seqs: Sequence[np.ndarray], length: Optional[int] = None) -> np.ndarray:
    """Right-pad token sequences with 0 to `[P, length]` (causal attention makes it exact)."""
    length = length or max(len(s) for s in seqs)
    out = np.zeros((len(seqs), length), np.int32)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out
