"""`--discover path` as the studies' circuit (intjax.ioi.path_circuit) and its per-prompt values in values.npz
(intjax.ioi.path_values), on the planted discovery of tests/test_path_discovery.py: the classes are chosen on
the selection prompts only, and every number of the report's section is recomputed here from the saved file."""

from __future__ import annotations

import numpy as np
import pytest

from intjax.errors import InputError
from intjax.ioi.path_circuit import PATH_SOURCE, path_circuit
from intjax.ioi.path_discovery import discover_paths
from intjax.ioi.path_values import path_arrays, path_key
from intjax.report.path_discovery import path_markdown
from intjax.results import read_results, write_results
from test_path_discovery import HEADS, P, PLANTED, ROLES_AT_S2, TOTAL, discover, planted_patch

SELECT, HELD_OUT = np.arange(0, P, 2), np.arange(1, P, 2)


def split_patch(on_select: dict, on_held_out: dict):
    """A PatchFn whose planted effects differ between the selection prompts and the held-out ones."""
    a, b = planted_patch(planted=on_select, noise=0.0), planted_patch(planted=on_held_out, noise=0.0)

    def patch(specs, masks):
        out = a(specs, masks)
        out[:, HELD_OUT] = b(specs, masks)[:, HELD_OUT]
        return out

    return patch


def test_the_classes_come_from_the_selection_prompts_only():
    """A direct path strong on the held-out prompts only is not chosen; one strong on the selection prompts only
    is, and the studies' circuit is then its class, whatever the circuit of --circuit says."""
    patch = split_patch({("L3H0", "logits"): -1.0}, {("L3H3", "logits"): -1.0})
    found = discover_paths(patch, HEADS, np.full(P, TOTAL), SELECT, HELD_OUT, ROLES_AT_S2)
    assert found.classes == {"name_mover": ["L3H0"]}
    row = next(r for r in found.rows if r.sender == "L3H0")
    assert row.chosen[0] == pytest.approx(-1.0) and row.held_out[0] == pytest.approx(0.0)  # estimated held out
    circuit, source = path_circuit(found, {"s_inhibition": ["L2H2"]}, "discovered on this model")
    assert circuit == {"name_mover": ["L3H0"]}
    assert source.startswith(PATH_SOURCE) and source.endswith("chosen on 20 of the 40 prompts, every study "
                                                               "estimate on the other 20")


def test_without_a_path_class_the_studies_keep_the_named_circuit_or_refuse():
    found = discover_paths(split_patch({}, {}), HEADS, np.full(P, TOTAL), SELECT, HELD_OUT, ROLES_AT_S2)
    assert found.classes == {}
    circuit, source = path_circuit(found, {"s_inhibition": ["L2H2"]}, "discovered on this model")
    assert circuit == {"s_inhibition": ["L2H2"]}
    assert source == "discovered on this model; path patching (`--discover path`) found no class, so the " \
                     "studies use this circuit"
    with pytest.raises(InputError, match="path patching found no class and no attention-role circuit"):
        path_circuit(found, {}, "no attention-role circuit (every head reaches 5%)")


def _bootstrap(x: np.ndarray, seed: int) -> tuple[float, float, float]:
    """Mean and 95% percentile CI of x over 2000 resamples, drawn as intjax documents its bootstrap."""
    idx = np.random.default_rng(seed).integers(0, len(x), (2000, len(x)))
    low, high = np.quantile(x[idx].mean(1), [0.025, 0.975])
    return float(x.mean()), float(low), float(high)


def test_values_npz_recomputes_the_sections_numbers(tmp_path):
    """values.npz's per-prompt path effects and INTs, read back with numpy, give the section's held-out effect,
    CI and share of TE of the induction path, and the INT of the planted pair, as printed."""
    found = discover()
    text = path_markdown(found, {}, None)
    write_results(tmp_path, path_arrays(found), {})
    arrays, summary = read_results(tmp_path)
    meta = summary["arrays"]
    held = np.array(meta[path_key("direct")]["options"]["held_out"])
    assert meta[path_key("direct")]["options"]["selection"] == SELECT.tolist() and held.tolist() == HELD_OUT.tolist()
    assert arrays["path_total_effect"].shape == (P, 1)

    key = path_key("s_inhibition.v")
    column = meta[key]["items"].index("L1H0>L2H1.v@S2")
    mean, low, high = _bootstrap(arrays[key][held, column], meta[key]["options"]["bootstrap_seed"])
    share = mean / arrays["path_total_effect"][held, 0].mean()
    assert mean == pytest.approx(PLANTED[("L1H0", "v")], abs=0.02)  # the planted effect, by a third route
    line = next(l for l in text.splitlines() if "| L1H0 | L2H1.v@S2 |" in l)
    assert f"| {mean:+.3f} [{low:+.3f}, {high:+.3f}] | {share:+.0%} |" in line

    key = path_key("s_inhibition.v", "int")
    column = meta[key]["items"].index("L1H0 & L1H3")
    mean, low, high = _bootstrap(arrays[key][held, column], meta[key]["options"]["bootstrap_seed"])
    assert mean == pytest.approx(0.2)  # planted
    assert f"| L1H0 & L1H3 | {mean:+.3f} [{low:+.3f}, {high:+.3f}] |" in text
    assert set(arrays) == {"path_total_effect", *(path_key(s) for s in found.effects),
                           *(path_key(s, "int") for s in found.pair_values)}


def test_path_classes_are_every_class_a_stage_gives():
    from intjax.ioi.path_discovery import PATH_CLASSES, STAGES

    given = {c for s in STAGES for c in (s.supports, s.opposes) if c and c != "s2"} | set(ROLES_AT_S2.values())
    assert set(PATH_CLASSES) == given and len(PATH_CLASSES) == 6
