"""Find a model's files: a local folder, a model shipped in the package, or a hub id."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path

from intjax.errors import LoadError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "flax_model.msgpack")
_ASSETS = Path(__file__).resolve().parent.parent / "assets"
# a HuggingFace hub id: [owner/]name of letters, digits, - _ . (not starting or ending with - or .)
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9](?:[\w.-]*[A-Za-z0-9])?/)?[A-Za-z0-9](?:[\w.-]*[A-Za-z0-9])?$")


def embedded_models() -> list[str]:
    """Names of the models shipped inside the intjax package."""
    if not _ASSETS.is_dir():
        return []
    return sorted(p.name for p in _ASSETS.iterdir() if (p / "config.json").is_file())


def _looks_like_path(name: str) -> bool:
    """A name meant as a local folder: absolute, relative with ./ or ~, nested, or inside a local
    folder that exists (`runs/gpt2x` when ./runs exists; a hub id's owner is not a local folder)."""
    parent = Path(name).expanduser().parent
    return (name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name
            or (str(parent) != "." and parent.is_dir()))


def _check_folder(folder: Path) -> Path:
    if not (folder / "config.json").is_file():
        raise LoadError(
            f"{folder} has no config.json; point at a folder saved by "
            "save_pretrained (config.json plus model.safetensors)"
        )
    if not any((folder / f).is_file() for f in WEIGHT_FILES):
        raise LoadError(
            f"{folder} has no weights: expected one of {list(WEIGHT_FILES)}; "
            "save the model with save_pretrained(safe_serialization=True)"
        )
    return folder


def _download(repo_id: str, revision: str | None) -> Path:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import RepositoryNotFoundError
    except ImportError as e:  # pragma: no cover - huggingface_hub is a dependency
        raise LoadError("huggingface_hub is not installed; pip install huggingface_hub") from e
    patterns = ["config.json", "tokenizer.json", "vocab.json", "merges.txt"]
    try:
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
        index = folder / "model.safetensors.index.json"
        for weights in (["model.safetensors"], ["model.safetensors.index.json"], ["flax_model.msgpack"]):
            folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=weights))
            if (folder / weights[0]).is_file():
                break
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=shards))
    except RepositoryNotFoundError as e:
        raise LoadError(
            f"{repo_id!r} is neither a local folder nor a model on the HuggingFace hub"
        ) from e
    except Exception as e:
        raise LoadError(
            f"could not fetch {repo_id!r} from the HuggingFace hub ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}). Without network, download it "
            "elsewhere (huggingface-cli download "
            f"{repo_id} --local-dir DIR), copy DIR here and pass its path "
            "(intjax.load_model('/path/to/DIR'), or --model /path/to/DIR on the command line)"
        ) from e
    return _check_folder(folder)


def resolve_model_dir(name_or_path: str | Path, *, revision: str | None = None) -> Path:
    """The local folder holding config.json and the weights of `name_or_path`."""
    name = str(name_or_path)
    path = Path(name).expanduser()
    if path.is_dir():
        return _check_folder(path)
    if path.exists():
        raise LoadError(f"{path} is a file; pass the folder that holds config.json and the weights")
    if name in embedded_models():
        return _check_folder(_ASSETS / name)
    if isinstance(name_or_path, Path) or _looks_like_path(name):
        raise LoadError(
            f"folder {path} does not exist; pass an existing folder saved by "
            "save_pretrained, or a hub id such as 'gpt2'"
        )
    _check_hub_id(name)
    try:
        return _download(name, revision)
    except LoadError as e:
        shipped = _shipped_like(name)
        if not shipped:
            raise
        raise LoadError(f"{e}. Or did you mean the shipped model {shipped!r} (--model {shipped})?") from e


def _shipped_like(name: str) -> str | None:
    """The shipped model whose name `name` resembles (`ioi-small/`, `ioi_small`), if any."""
    close = difflib.get_close_matches(name.strip().strip("/"), embedded_models(), n=1, cutoff=0.6)
    return close[0] if close else None


def _check_hub_id(name: str) -> None:
    """LoadError unless `name` can be a hub id; names a shipped model it resembles (`ioi-small/`)."""
    if _HUB_ID.match(name) and len(name) <= 96 and ".." not in name and "--" not in name:
        return
    like = _shipped_like(name)
    if like:
        raise LoadError(f"model {name!r} does not exist; did you mean the shipped model {like!r} (--model {like})?")
    shipped = ", ".join(embedded_models()) or "none"
    raise LoadError(f"model {name!r} is neither a local folder, a shipped model ({shipped}) "
                    "nor a HuggingFace hub id (letters, digits, - _ . with at most one /, e.g. gpt2 or "
                    "EleutherAI/pythia-70m); pass one of those")
