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


class Prompts:
    """Stands in for IOIPrompts: a length, and subsets that remember their indices."""

    def __init__(self, idx):
        self.idx = np.asarray(idx)

    def __len__(self):
        return len(self.idx)

    def subset(self, idx):
        return Prompts(self.idx[np.asarray(idx)])


def choose(options, monkeypatch=None, resolve=None, planted=PLANTED, total=TOTAL):
    """choose_circuit on P stand-in prompts of a 4x4 model, path patching planted; the discovery's calls."""
    from types import SimpleNamespace

    import intjax.ioi.path_circuit as chooser

    if resolve is not None:
        monkeypatch.setattr(chooser, "resolve_circuit", resolve)
    calls = []

    def discover_paths(select, held_out):
        calls.append((select, held_out))
        return discover_paths_planted(select, held_out, planted)

    model = SimpleNamespace(config=SimpleNamespace(n_layers=4, n_heads=4, d_model=64, vocab_size=300))
    nie = np.arange(P * 16, dtype=float).reshape(P, 16)
    return chooser.choose_circuit(options, model, Prompts(np.arange(P)), nie, -nie, total, SELECT, HELD_OUT,
                                  discover_paths), calls


def discover_paths_planted(select, held_out, planted):
    return discover_paths(planted_patch(planted=planted), HEADS, np.full(P, TOTAL), select, held_out, ROLES_AT_S2)


def test_choose_circuit_under_discover_path_takes_path_patchings_classes(tmp_path):
    """A circuit file and --discover path: the discovery runs once, on the studies' split; its classes are the
    studies' circuit, held out; the file's circuit is what it is compared with. Without path: the file's."""
    import json

    from intjax.options import IOIStudyOptions

    spec = tmp_path / "c.json"
    spec.write_text(json.dumps({"s_inhibition": ["L2H2"]}))
    choice, calls = choose(IOIStudyOptions(circuit=str(spec), discover="path"))
    assert len(calls) == 1 and calls[0][0] is SELECT and calls[0][1] is HELD_OUT
    assert choice.circuit == discover().classes and choice.held_out and choice.path.split == (20, 20)
    assert choice.source.startswith(PATH_SOURCE) and choice.compared == ({"s_inhibition": ["L2H2"]}, f"file {spec}")
    plain, calls = choose(IOIStudyOptions(circuit=str(spec)))
    assert calls == [] and plain.circuit == {"s_inhibition": ["L2H2"]} and not plain.held_out and plain.path is None


def test_choose_circuit_discovers_the_roles_on_the_selection_prompts_and_survives_their_failure(monkeypatch):
    """--circuit discover: the roles see the selection prompts and their NIE rows only; under --discover path a
    roles failure leaves path patching's circuit (compared with none), without it the failure stands."""
    from intjax.options import IOIStudyOptions

    seen = []

    def roles(spec, model, data, nie_noising, nie_denoising, te):
        seen.append((data.idx, nie_noising[:, 0], nie_denoising[:, 0]))
        return {"name_mover": ["L3H3"]}, "discovered on this model"

    choice, _ = choose(IOIStudyOptions(circuit="discover", discover="path"), monkeypatch, roles)
    (idx, noising, denoising), = seen
    assert idx.tolist() == SELECT.tolist() and noising.tolist() == (16 * SELECT).tolist() == (-denoising).tolist()
    assert choice.compared == ({"name_mover": ["L3H3"]}, "discovered on this model; chosen on 20 of the 40 prompts, "
                                                         "every study estimate on the other 20")

    def fails(*args):
        raise InputError("every one of the 16 heads reaches 5% of the total effect")

    choice, _ = choose(IOIStudyOptions(circuit="discover", discover="path"), monkeypatch, fails)
    assert choice.circuit == discover().classes
    assert choice.compared == ({}, "no attention-role circuit (every one of the 16 heads reaches 5% of the total "
                                   "effect)")
    with pytest.raises(InputError, match="path patching found no class and no attention-role circuit"):
        choose(IOIStudyOptions(circuit="discover", discover="path"), monkeypatch, fails, planted={})
    with pytest.raises(InputError, match="every one of the 16 heads"):
        choose(IOIStudyOptions(circuit="discover"), monkeypatch, fails)


def test_a_discovered_circuit_scales_its_threshold_by_the_selection_prompts_total_effect_only(monkeypatch):
    """Per-prompt total effects of 1 on the selection prompts and 100 on the held-out ones: the roles' discovery
    sees 1 (before, the mean over every prompt leaked the held-out half into the threshold); without a split,
    the mean over all."""
    from intjax.options import IOIStudyOptions

    seen = []

    def roles(spec, model, data, nie_noising, nie_denoising, te):
        seen.append(te)
        return {"name_mover": ["L3H3"]}, "discovered on this model"

    te = np.full(P, 100.0)
    te[SELECT] = 1.0
    choose(IOIStudyOptions(circuit="discover"), monkeypatch, roles, total=te)
    choose(IOIStudyOptions(circuit="discover", heldout=False), monkeypatch, roles, total=te)
    assert seen == [1.0, pytest.approx(te.mean())]
