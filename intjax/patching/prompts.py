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


def _whole(value: Any) -> bool:
    """Whether a JSON value is a whole number that fits a token id (an int, or a float such as 2.0; not a
    bool; below 2³¹ in size, which int32 would wrap)."""
    number = (isinstance(value, (int, np.integer)) and not isinstance(value, bool)) or (
        isinstance(value, (float, np.floating)) and float(value).is_integer())
    return number and abs(value) < 2**31


def _token_ids(row: dict[str, Any], key: str, where: str) -> np.ndarray:
    """`row[key]` as a 1-D int32 array of token ids; InputError unless it is a list of whole numbers."""
    value = row[key]
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not all(_whole(v) for v in value):
        bad = next((v for v in value if not _whole(v)), None) if isinstance(value, (list, tuple)) else value
        raise InputError(f"{where}: {key} must be a list of whole-number token ids, not {json.dumps(bad)[:40]}; "
                         f"write e.g. \"{key}\": [464, 3290, 290]")
    return np.asarray(value, np.int64).astype(np.int32)


def _token_id(row: dict[str, Any], key: str, where: str) -> int:
    """`row[key]` as one token id; InputError unless it is a whole number."""
    if not _whole(row[key]):
        raise InputError(f"{where}: {key} must be one whole-number token id, not {json.dumps(row[key])[:40]}; "
                         f"write e.g. \"{key}\": 5335")
    return int(row[key])


def _text(row: dict[str, Any], key: str, where: str) -> str:
    """`row[key]` as text; InputError unless it is a string."""
    if not isinstance(row[key], str):
        raise InputError(f"{where}: {key} must be text in quotes, not {json.dumps(row[key])[:40]}; "
                         f"give token ids as {key}_id{'s' * (key in ('clean', 'corrupted'))} instead")
    return row[key]


def make_prompt_set(rows: Sequence[dict[str, Any]], tokenizer=None, source: str = "prompts") -> PromptSet:
    """Build a PromptSet from dicts with `clean_ids`/`corrupted_ids`/`target_id`/`foil_id`
    or `clean`/`corrupted`/`target`/`foil` text (needs `tokenizer`), and optionally
    `positions`: {role: token index} (the same roles on every line)."""
    clean, corrupted, target, foil, positions = [], [], [], [], []
    for n, row in enumerate(rows, start=1):
        where = f"{source} line {n}"
        if not isinstance(row, dict):
            raise InputError(f"{where} is a JSON {type(row).__name__}, not an object; write one object a line: "
                             '{"clean_ids": [...], "corrupted_ids": [...], "target_id": 1, "foil_id": 2}')
        try:
            if "clean_ids" in row:
                c, x = _token_ids(row, "clean_ids", where), _token_ids(row, "corrupted_ids", where)
                t, f = _token_id(row, "target_id", where), _token_id(row, "foil_id", where)
            else:
                if tokenizer is None:
                    raise InputError(f"{where}: text prompts need a tokenizer; give token ids instead")
                c = np.asarray(tokenizer.encode(_text(row, "clean", where)).ids, np.int32)
                x = np.asarray(tokenizer.encode(_text(row, "corrupted", where)).ids, np.int32)
                t = _single_token(tokenizer, _text(row, "target", where), where)
                f = _single_token(tokenizer, _text(row, "foil", where), where)
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
        if not isinstance(roles, dict):
            raise InputError(f"{where}: positions must be an object {{role: token index}}, e.g. "
                             '"positions": {"S2": 9}')
        if positions and set(roles) != set(positions[0]):
            raise InputError(f"{where}: positions {sorted(roles)} differ from line 1's {sorted(positions[0])}; "
                             "give every line the same roles")
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(c) for v in roles.values()):
            raise InputError(f"{where}: positions {roles} must be token indices in 0..{len(c) - 1}")
        clean.append(c), corrupted.append(x), target.append(t), foil.append(f), positions.append(roles)
    if not clean:
        raise InputError(f"{source} holds no prompts")
    by_role = {k: np.array([p[k] for p in positions]) for k in positions[0]}
    return PromptSet(tuple(clean), tuple(corrupted), np.array(target), np.array(foil), by_role)


def _read_text(path: Path) -> str:
    """The UTF-8 text of a prompt file (a regular file, a pipe or a process substitution); InputError
    naming the problem when it is missing, a folder or not text."""
    if path.is_dir():
        raise InputError(f"--data {path} is a folder; give the PROMPTS.jsonl file inside it")
    if not path.exists():
        raise InputError(f"prompt file {path} does not exist")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read prompt file {path}: {e.strerror}") from None
    try:
        if b"\0" in data:
            raise UnicodeError
        return data.decode("utf-8")
    except UnicodeError:
        raise InputError(f"prompt file {path} is not text (binary data); give a JSONL file: one JSON object "
                         "a line") from None


def read_prompt_rows(path: str | Path) -> list[Any]:
    """The JSON values of a PROMPTS.jsonl file, one a line (blank lines skipped); InputError for a
    missing file, a folder, binary data, a line that is not JSON or a file that is one JSON array."""
    path = Path(path)
    text = _read_text(path)
    if _is_json_array(text):
        raise InputError(f"{path} holds one JSON array; write one object a line (JSONL), e.g. "
                         f"jq -c '.[]' {path} > prompts.jsonl")
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise InputError(f"{path} line {n} is not JSON: {e}") from None
    return rows


def needs_tokenizer(rows: Sequence[Any]) -> bool:
    """Whether some row gives its prompt as text (`clean`) rather than token ids (`clean_ids`)."""
    return any(isinstance(row, dict) and "clean_ids" not in row for row in rows)


def read_prompts(path: str | Path, tokenizer=None) -> PromptSet:
    """Read a PROMPTS.jsonl file (one JSON object a line; blank lines skipped)."""
    return make_prompt_set(read_prompt_rows(path), tokenizer, source=str(path))


def _is_json_array(text: str) -> bool:
    """Whether `text` is one JSON array of objects (a .json file where a .jsonl one is needed)."""
    if not text.lstrip().startswith("["):
        return False
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return False
    return isinstance(value, list) and any(isinstance(v, dict) for v in value)


def check_vocab(prompts: PromptSet, vocab_size: int, n_positions: int) -> None:
    """Raise InputError naming the first prompt whose ids the model cannot read."""
    for n, (c, x, t, f) in enumerate(zip(prompts.clean, prompts.corrupted, prompts.target, prompts.foil), 1):
        for ids in (c, x, np.array([t, f])):
            if ids.min() < 0 or ids.max() >= vocab_size:
                raise InputError(f"prompt {n}: token id outside the vocabulary 0..{vocab_size - 1}")
        if len(c) > n_positions:
            raise InputError(f"prompt {n}: {len(c)} tokens, more than the model's n_positions={n_positions}; "
                             f"shorten it to {n_positions} tokens or fewer")


def padded_length(n: int, limit: Optional[int] = None) -> int:
    """The length sequences of at most n tokens are padded to: n rounded up to a multiple of
    max(4, 2^⌊log2 n⌋ / 8) (at most 1/8 + 3/n more positions), never past `limit` (the model's
    n_positions). Prompt sets of nearby lengths then share their compiled programs."""
    step = max(4, (1 << max(0, int(n).bit_length() - 1)) // 8)
    length = -(-int(n) // step) * step
    return max(int(n), min(length, limit)) if limit else length


def pad(seqs: Sequence[np.ndarray], length: Optional[int | np.integer] = None) -> np.ndarray:
    """Right-pad token sequences with 0 to `[P, length]` (causal attention makes it exact)."""
    length = length or max(len(s) for s in seqs)
    out = np.zeros((len(seqs), length), np.int32)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out
