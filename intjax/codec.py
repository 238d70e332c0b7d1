"""Typed values to a JSON tree and an npz file, and back, exactly.

Dataclasses, named tuples, tuples, lists, dicts (any keys), `Path`s, numpy arrays
and numpy scalars round-trip with their types: `decode(*encode(x)) == x` field by
field, arrays bit for bit (each array and numpy scalar is an npz entry; the JSON
names it). A class is rebuilt only when it lives in the intjax package, so a
saved file cannot name arbitrary code. Anything else is refused with its type.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np

PACKAGE = "intjax."


def _type_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _named_type(name: str) -> type:
    """The class `module:qualname`, only inside the intjax package."""
    module, _, qualname = name.partition(":")
    if not module.startswith(PACKAGE):
        raise ValueError(f"a saved value names {name!r}, outside the intjax package: refused")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _array(value: np.ndarray | np.generic, arrays: dict[str, np.ndarray]) -> dict:
    """Store an array (or numpy scalar) in `arrays`; its JSON stand-in."""
    a = np.asarray(value)
    if a.dtype == object:
        raise TypeError("an array of Python objects cannot be saved; give a numeric or string array")
    key = f"a{len(arrays)}"
    arrays[key] = a
    return {"__array__": key, "scalar": isinstance(value, np.generic)}


def encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """A JSON tree for `value`; its arrays go into `arrays` (see the module doc)."""
    if value is None or isinstance(value, (bool, int, float, str)) and type(value) in (bool, int, float, str):
        return value
    if isinstance(value, (np.ndarray, np.generic)):
        return _array(value, arrays)
    if hasattr(value, "__array__") and hasattr(value, "dtype"):  # a JAX array
        return _array(np.asarray(value), arrays)
    if isinstance(value, Path):
        return {"__path__": str(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: encode(getattr(value, f.name), arrays) for f in dataclasses.fields(value) if f.init}
        return {"__dataclass__": _type_name(type(value)), "fields": fields}
    if isinstance(value, tuple) and hasattr(type(value), "_fields"):
        return {"__namedtuple__": _type_name(type(value)), "items": [encode(v, arrays) for v in value]}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, arrays) for v in value]}
    if isinstance(value, list):
        return [encode(v, arrays) for v in value]
    if isinstance(value, dict):
        kind = None if type(value) is dict else _type_name(type(value))
        return {"__dict__": [[encode(k, arrays), encode(v, arrays)] for k, v in value.items()], "type": kind}
    raise TypeError(f"cannot save a {type(value).__name__}: give dataclasses, tuples, lists, dicts, numbers, "
                    "strings or arrays")


def decode(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    """The value `encode` made `tree` of (with the same `arrays`)."""
    if isinstance(tree, list):
        return [decode(v, arrays) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if "__array__" in tree:
        a = arrays[tree["__array__"]]
        return a[()] if tree["scalar"] else a
    if "__path__" in tree:
        return Path(tree["__path__"])
    if "__tuple__" in tree:
        return tuple(decode(v, arrays) for v in tree["__tuple__"])
    if "__namedtuple__" in tree:
        return _named_type(tree["__namedtuple__"])(*(decode(v, arrays) for v in tree["items"]))
    if "__dataclass__" in tree:
        cls = _named_type(tree["__dataclass__"])
        return cls(**{k: decode(v, arrays) for k, v in tree["fields"].items()})
    if "__dict__" in tree:
        items = ((_hashable(decode(k, arrays)), decode(v, arrays)) for k, v in tree["__dict__"])
        return (dict if tree["type"] is None else _named_type(tree["type"]))(items)
    raise ValueError(f"not a saved value: a JSON object with keys {sorted(tree)[:5]}")


def _hashable(key: Any) -> Any:
    """A dict key as saved (numpy scalars become Python numbers again, as they were hashed)."""
    return key.item() if isinstance(key, np.generic) else key


def save(value: Any, path: str | Path) -> tuple[Path, Path]:
    """Write `value` to `path`.json and `path`.npz; returns the two paths. The .json is written last
    (each file through a temporary one), so a .json on disk marks a whole save."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    tree = encode(value, arrays)
    json_path, npz_path = path.with_suffix(".json"), path.with_suffix(".npz")
    json_path.unlink(missing_ok=True)  # an older .json must not vouch for a new .npz
    npz_tmp = path.with_suffix(".tmp.npz")
    np.savez(npz_tmp, **arrays)
    npz_tmp.replace(npz_path)
    json_tmp = path.with_suffix(".tmp.json")
    json_tmp.write_text(json.dumps(tree))
    json_tmp.replace(json_path)
    return json_path, npz_path


def load(path: str | Path) -> Any:
    """The value `save` wrote to `path`.json and `path`.npz."""
    path = Path(path)
    with np.load(path.with_suffix(".npz"), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return decode(json.loads(path.with_suffix(".json").read_text()), arrays)
