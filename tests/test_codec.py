"""Typed values round-trip through intjax.codec exactly: types, dict keys, arrays bit for bit."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import pytest

from intjax import codec
from intjax.results import Results
from intjax.studies.order_split import OrderSplit


def test_a_tree_of_intjax_types_comes_back_exactly(tmp_path):
    results = Results()
    results.add("nie_noising", np.array([[0.1, -2.5], [np.nan, 1e-300]]), ["L0H0", "L0H1"], direction="noising")
    split = OrderSplit(1.0, 2.0, 1.0, 0.75, 0.25, (0.5, 1.5), (0.25, 1.25), (-0.5, 1.0), 6, 6)
    value = dict(results=results, split=split, keys={(0, 1): "pair", 3: np.float64(0.1), "x": None},
                 words=("a", "b"), path=Path("runs/x"), flag=np.bool_(True), names=np.array(["L0H0", "L1H2"]))
    codec.save(value, tmp_path / "saved")
    back = codec.load(tmp_path / "saved")
    assert type(back["results"]) is Results and type(back["split"]) is OrderSplit
    assert back["split"] == split and type(back["split"].gap_ci) is type(split.gap_ci)
    got = back["results"]["nie_noising"]
    assert got.items == ("L0H0", "L0H1") and got.options == {"direction": "noising"}
    assert got.values.tobytes() == results["nie_noising"].values.tobytes()  # nan and subnormal-size values too
    assert back["keys"] == {(0, 1): "pair", 3: 0.1, "x": None} and type(back["keys"][3]) is np.float64
    assert back["words"] == ("a", "b") and back["path"] == Path("runs/x") and type(back["flag"]) is np.bool_
    assert back["names"].tolist() == ["L0H0", "L1H2"]


class Outside(NamedTuple):
    a: int


@dataclasses.dataclass(frozen=True)
class Holder:
    x: Optional[int] = None


def test_classes_outside_intjax_and_python_objects_are_refused(tmp_path):
    codec.save(Outside(1), tmp_path / "outside")  # saving names the class ...
    with pytest.raises(ValueError, match="outside the intjax package"):
        codec.load(tmp_path / "outside")  # ... loading refuses to import it
    with pytest.raises(TypeError, match="cannot save a object"):
        codec.encode(object(), {})
    with pytest.raises(TypeError, match="Python objects"):
        codec.encode(np.array([Holder()], dtype=object), {})
