"""GPT-2 byte-level BPE tokenizer from a HF folder, through the `tokenizers` package."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from intjax.errors import LoadError


def load_tokenizer(folder: Path) -> Tokenizer:
    """`tokenizer.json`, else `vocab.json` + `merges.txt`, as a `tokenizers.Tokenizer`."""
    folder = Path(folder)
    tj = folder / "tokenizer.json"
    try:
        if tj.is_file():
            return Tokenizer.from_file(str(tj))
        vocab, merges = folder / "vocab.json", folder / "merges.txt"
        if vocab.is_file() and merges.is_file():
            tok = Tokenizer(models.BPE.from_file(str(vocab), str(merges)))
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
            tok.decoder = decoders.ByteLevel()
            return tok
    except Exception as e:
        raise LoadError(f"the tokenizer files in {folder} cannot be read: {e}") from e
    raise LoadError(
        f"{folder} has no tokenizer.json and no vocab.json + merges.txt; copy the model's tokenizer files "
        "there (text prompts and intjax ioi need them; prompts given as token ids, clean_ids/corrupted_ids/"
        "target_id/foil_id, do not, and in Python load_model(..., tokenizer=False) skips them)"
    )
