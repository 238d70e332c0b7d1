"""The path-patching discovery's section (`--discover path`): the classes it found, each path's effect with
its CI on the held-out prompts, head by head against the attention-role classes, the interactions between
paths into the same receivers, and a figure of the discovered graph. Every sentence comes from a rule below."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from intjax.ioi.circuit import STAGES as CLASS_STAGES, stage_order
from intjax.ioi.path_circuit import NO_ROLE_CIRCUIT
from intjax.ioi.path_discovery import STAGE_WORDS, PathDiscovery, PathPair, PathRow, layer_head
from intjax.ioi.path_values import PREFIX
from intjax.report.markdown import markdown_table
from intjax.report.section import Section

FIGURE = "path_graph.png"
MAX_PAIRS = 8  # interaction rows shown
CARRIES, OPPOSES = "tab:blue", "tab:red"  # a path whose share of the total effect is positive / negative


def agreement(path_class: str, role_class: str) -> str:
    """How the two discoveries place one head: same class, one only, or different classes ("" = not found)."""
    if path_class and role_class:
        return "same class" if path_class == role_class else "different classes"
    return "path patching only" if path_class else "attention roles only"


def replication(row: PathRow) -> str:
    """Whether a path chosen on the selection prompts holds on the held-out ones: its held-out CI excludes 0
    with the chosen sign (replicates), includes 0 (not significant held out), or excludes it with the other
    sign (reverses)."""
    _, low, high = row.held_out
    sign = np.sign(row.chosen[0])
    if not (np.isfinite(low) and np.isfinite(high)):
        return "no CI (too few prompts)"
    if low > 0 or high < 0:
        return "replicates" if np.sign(low if low > 0 else high) == sign else "reverses"
    return "not significant held out"


def pair_reading(pair: PathPair, effects: Mapping[str, float]) -> str:
    """An interaction in words: additive when its CI includes 0; else redundant when INT has the opposite
    sign to the two paths' summed effect (together they do less than the sum), synergistic when the same."""
    if not (pair.low > 0 or pair.high < 0):
        return "additive (CI includes 0)"
    together = effects.get(pair.a, 0.0) + effects.get(pair.b, 0.0)
    return "redundant (together less than the sum)" if np.sign(pair.mean) != np.sign(together) else \
        "synergistic (together more than the sum)"


def _effect(stats: Sequence[float]) -> str:
    mean, low, high = stats
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


def _classes_of(circuit: Mapping[str, Sequence[str]]) -> dict[str, str]:
    return {h: c for c, heads in circuit.items() for h in heads}


def path_markdown(path: PathDiscovery, role_circuit: Mapping[str, Sequence[str]], figure: Optional[str],
                  role_source: str = "attention roles") -> str:
    """The section's markdown (`figure`: the graph's file name, None when not drawn; `role_circuit`: the
    circuit of --circuit, named `role_source` in the comparison)."""
    n_sel, n_est = path.split
    te_sel, te_est = path.total
    lines = ["## Path patching (Wang et al.'s procedure)", "",
             f"Paths sender → receiver input, patched under frozen semantics (noising: the receiver reads the "
             f"sender's corrupted output, every other path holds), stage by stage: "
             + "; ".join(f"{i + 1}. {w}" for i, w in enumerate(STAGE_WORDS.values())) + ". A path is significant "
             f"when, on {n_sel} selection prompts, the 95% bootstrap CI of its mean effect excludes 0 and "
             f"|mean| ≥ {path.min_share:.0%} of |TE| (TE {te_sel:+.3f} there); the sign of its share of TE "
             "gives the class (intjax.ioi.path_discovery). Every number below is on the other "
             f"{n_est} prompts (TE {te_est:+.3f}); values.npz holds each path's effect and each pair's INT on "
             f"every prompt (`{PREFIX}*`, the selection prompts named in summary.json), to recompute them.", ""]
    if path.classes:
        rows = [(cls, ", ".join(heads)) for cls, heads in path.classes.items()]
        lines += [markdown_table(rows, ("class", "heads")), "",
                  "These classes are the circuit of every study in this report (faithfulness, remedies, "
                  "completeness and minimality), chosen on the selection prompts only.", ""]
        ordered, problems = stage_order(path.classes)
        lines += [("Its classes come in Wang et al.'s layer order (" + ", then ".join(
            " / ".join(s) for s in CLASS_STAGES) + ")." if ordered else
            "Its classes do not make Wang et al.'s staged circuit: " + "; ".join(problems) + "."), ""]
    else:
        lines += [f"No path passes the rule: path patching finds no class on this model, so the studies use "
                  f"the circuit of --circuit ({role_source}).", ""]
    if path.notes:
        lines += ["Stages that found nothing:", "", *(f"- {n}" for n in path.notes), ""]

    mine, theirs = path.class_of(), _classes_of(role_circuit)
    heads = sorted(set(mine) | set(theirs), key=layer_head)
    if heads:
        rows = [(h, mine.get(h, "—"), theirs.get(h, "—"), agreement(mine.get(h, ""), theirs.get(h, "")))
                for h in heads]
        same = sum(r[3] == "same class" for r in rows)
        lines += [f"### Against the circuit of --circuit ({role_source})", "",
                  f"Same class in both: {same} of the {len(rows)} heads that either one names.", "",
                  markdown_table(rows, ("head", "path patching", role_source, "agreement")), ""]

    chosen = [r for r in path.rows if r.significant]
    lines += ["### Significant paths (effect on the logit difference, held out)", ""]
    if chosen:
        rows = [(STAGE_WORDS[r.stage], r.sender, ", ".join(r.receivers), _effect(r.held_out),
                 f"{r.held_out[0] / te_est:+.0%}" if te_est else "—", replication(r), r.cls or "— (opposes)")
                for r in chosen]
        held = sum(replication(r) == "replicates" for r in chosen)
        lines += [markdown_table(rows, ("stage", "sender", "receivers", "effect [95% CI]", "share of TE",
                                        "held out", "class")), "",
                  f"{held} of {len(chosen)} paths chosen on the selection prompts replicate on the held-out ones "
                  f"(of {len(path.rows)} paths tested).", ""]
    else:
        lines += [f"None of the {len(path.rows)} paths tested.", ""]
    if path.pairs:
        effects = {(r.stage, r.sender): r.held_out[0] for r in path.rows}
        pairs = sorted(path.pairs, key=lambda p: -abs(p.mean))[:MAX_PAIRS]
        rows = [(STAGE_WORDS[p.stage], f"{p.a} & {p.b}", _effect((p.mean, p.low, p.high)),
                 pair_reading(p, {p.a: effects[(p.stage, p.a)], p.b: effects[(p.stage, p.b)]})) for p in pairs]
        lines += ["### Interactions between paths into the same receivers (held out)", "",
                  "INT = f(both) − f(a) − f(b) + f(neither) of two classed paths of one stage.", "",
                  markdown_table(rows, ("stage", "paths", "INT [95% CI]", "reading")), ""]
    if figure:
        lines += [f"![discovered paths]({figure})", "",
                  "Heads by layer (rows) and index (columns), the logits on top; one line per edge of a "
                  "significant path, blue where its share of TE is positive (it carries the effect), red where "
                  "negative, width ∝ |held-out effect|. A sender's edges into one stage's receivers were patched "
                  "together: each line carries the group's effect.", ""]
    return "\n".join(lines)


def path_summary(path: PathDiscovery) -> str:
    """One summary line: the classes found (or none) and the stages that found nothing."""
    found = "; ".join(f"{c} {', '.join(h)}" for c, h in path.classes.items()) or "no class"
    missing = f"; {len(path.notes)} of 4 stages found nothing" if path.notes else ""
    return f"- Path patching (Wang et al.'s procedure, chosen on {path.split[0]} prompts): {found}{missing}."


def build_path_graph(path: PathDiscovery, n_layers: int, n_heads: int):
    """The discovered graph: head nodes by layer, the logits on top, one line per edge of a significant path."""
    from intjax.report.figures import _figure

    fig = _figure((max(4.0, 0.9 * n_heads + 1.5), 0.9 * n_layers + 2.0))
    ax = fig.subplots()
    logits = ((n_heads - 1) / 2, n_layers)
    cls = path.class_of()
    chosen = [r for r in path.rows if r.significant]
    top = max((abs(r.held_out[0]) for r in chosen), default=1.0) or 1.0
    for r in chosen:
        x0, y0 = layer_head(r.sender)[::-1]
        for rec in r.receivers:
            end = logits if rec == "logits" else layer_head(rec.split(".")[0])[::-1]
            color = CARRIES if r.chosen[0] * path.total[0] > 0 else OPPOSES
            ax.plot([x0, end[0]], [y0, end[1]], color=color, lw=0.5 + 5 * abs(r.held_out[0]) / top, alpha=0.7,
                    zorder=1)
    for layer in range(n_layers):
        for h in range(n_heads):
            name = f"L{layer}H{h}"
            ax.scatter([h], [layer], s=120, color="0.3" if name in cls else "0.85", zorder=2)
            ax.annotate(f"{name}\n{cls[name]}" if name in cls else name, (h, layer), fontsize=6, ha="center",
                        xytext=(0, 8), textcoords="offset points")
    ax.scatter([logits[0]], [logits[1]], s=200, marker="s", color="black", zorder=2)
    ax.annotate("logits", logits, fontsize=8, ha="center", xytext=(0, 9), textcoords="offset points")
    ax.plot([], [], color=CARRIES, label="carries the effect")
    ax.plot([], [], color=OPPOSES, label="works against it")
    ax.set(xlim=(-0.7, n_heads - 0.3), ylim=(-0.6, n_layers + 0.8), xlabel="head", ylabel="layer",
           title="paths found by path patching (held-out effects)")
    ax.set_xticks(range(n_heads))
    ax.set_yticks(range(n_layers))
    ax.legend(fontsize=7, loc="lower right")
    return fig


def section(analysis, out: Path) -> Section:
    """The path-patching section (nothing without --discover path)."""
    path = analysis.studies.path
    if path is None:
        return Section()
    from intjax.report.figures import _save

    target = Path(out) / FIGURE
    _save(build_path_graph(path, analysis.n_layers, analysis.n_heads), target)
    s = analysis.studies
    # the circuit of --circuit; an analysis saved before path patching chose the circuit kept it in `circuit`
    circuit, source = (s.compared, s.compared_source) if s.compared_source else (s.circuit, s.circuit_source)
    return Section(path_markdown(path, circuit, FIGURE, compared_name(source)), (path_summary(path),),
                   {"path graph": target})


def compared_name(source: str) -> str:
    """The column name of the circuit path patching is compared with, from its source in words."""
    if source.startswith(("discovered", NO_ROLE_CIRCUIT)):
        return "attention roles"
    return "Wang et al.'s circuit" if source.startswith("Wang") else source
