"""Reading HuggingFace weight files (safetensors or Flax msgpack) and the tools every family's conversion
uses: `Tensors` (taken by name and shape), `to_device`, `unembedding`.

Every conversion is a whitelist: every tensor in the file is either used or a
known non-parameter buffer; anything else, a missing key or a wrong shape raises
LoadError naming the key.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Mapping, Optional

import jax
import ml_dtypes
import numpy as np

from intjax.errors import LoadError


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Read a .safetensors file into numpy arrays, with a clear error if it is damaged."""
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except TypeError as e:  # numpy has no bfloat16: read those files' raw bytes
        if "bfloat16" not in str(e):
            raise LoadError(f"{path} cannot be read: {e}") from e
        return _read_safetensors_raw(path)
    except Exception as e:  # safetensors raises its own error types and OSError
        raise LoadError(
            f"{path} is not a readable safetensors file ({type(e).__name__}: {e}); "
            "it may be truncated or corrupted: download it again"
        ) from e


_SAFETENSORS_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": ml_dtypes.bfloat16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}


def _read_safetensors_raw(path: Path) -> dict[str, np.ndarray]:
    """A .safetensors file parsed by hand (bfloat16 tensors as ml_dtypes.bfloat16 arrays)."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            lo, hi = info["data_offsets"]
            out[name] = data[lo:hi].view(_SAFETENSORS_DTYPES[info["dtype"]]).reshape(info["shape"])
        return out
    except Exception as e:
        raise LoadError(
            f"{path} is not a readable safetensors file ({type(e).__name__}: {e}); "
            "it may be truncated or corrupted: download it again"
        ) from e


def read_flax_msgpack(path: Path) -> dict[str, np.ndarray]:
    """Read a HF Flax `flax_model.msgpack` into torch-named numpy arrays."""
    from flax.serialization import msgpack_restore

    try:
        tree = msgpack_restore(path.read_bytes())
    except Exception as e:
        raise LoadError(
            f"{path} is not a readable Flax msgpack file ({type(e).__name__}: {e}); "
            "download it again"
        ) from e
    out: dict[str, np.ndarray] = {}

    def walk(node, prefix):
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
            return
        name, leaf = prefix.rsplit(".", 1)
        arr = np.asarray(node)
        if leaf == "kernel":  # FlaxConv1D stores [out, in]; torch Conv1D is [in, out]
            arr, leaf = arr.T, "weight"
        elif leaf in ("scale", "embedding"):
            leaf = "weight"
        out[f"{name}.{leaf}"] = arr

    walk(tree, "")
    return out


class Tensors:
    """A checkpoint's tensors, taken one by one with their expected shapes (LoadError naming the key
    on a missing or misshapen tensor); `check_all_used` refuses those never taken."""

    def __init__(self, state: Mapping[str, np.ndarray], where: str):
        self.state, self.where, self.used = state, where, set()

    def __contains__(self, key: str) -> bool:
        return key in self.state

    def take(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        """The tensor `key` as float32, which must have `shape`."""
        if key not in self.state:
            raise LoadError(
                f"checkpoint has no tensor {key!r} ({self.where}); "
                "the weights file does not match config.json"
            )
        arr = np.asarray(self.state[key])
        if arr.shape != shape:
            raise LoadError(
                f"tensor {key!r} has shape {tuple(arr.shape)}, expected {shape} from "
                "config.json; the weights file does not match its config"
            )
        self.used.add(key)
        return arr.astype(np.float32, copy=False)

    def stack(self, fmt: str, shape: tuple[int, ...], n_layers: int) -> np.ndarray:
        """`fmt.format(l)` for every layer l, stacked along a new leading axis."""
        return np.stack([self.take(fmt.format(l), shape) for l in range(n_layers)])

    def check_all_used(self, buffers: re.Pattern, what: str) -> None:
        """LoadError naming the tensors never taken that are not known `buffers` (the file is not `what`)."""
        extra = sorted(k for k in self.state if k not in self.used and not buffers.match(k))
        if extra:
            raise LoadError(
                f"checkpoint has tensors intjax does not know: {extra[:8]}"
                f"{' …' if len(extra) > 8 else ''}; it is not {what}"
            )


def to_device(a: np.ndarray, dtype) -> jax.Array:
    """A contiguous copy of `a` in `dtype` on the default device (device_put of a contiguous array
    is several times faster than jnp.asarray)."""
    return jax.device_put(np.ascontiguousarray(a, dtype=np.dtype(dtype)))


def unembedding(tensors: Tensors, W_E: np.ndarray, tied: bool, embed_key: str,
                head_key: str = "lm_head.weight") -> Optional[np.ndarray]:
    """The untied unembedding `[D, V]` from `head_key`, or None when tied to the embedding
    `embed_key` (LoadError when the file and the config disagree)."""
    if head_key not in tensors:
        if not tied:
            raise LoadError(f"tie_word_embeddings=false but the checkpoint has no {head_key}")
        return None
    lm_head = tensors.take(head_key, W_E.shape)
    if not tied:
        return lm_head.T
    if not np.array_equal(lm_head, W_E):
        raise LoadError(
            f"config.json says tie_word_embeddings=true but {head_key} differs "
            f"from {embed_key}; set tie_word_embeddings=false in config.json"
        )
    return None
