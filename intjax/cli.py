"""The `intjax` command: parses arguments and calls the library, nothing else."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import signal
import sys
from pathlib import Path

from intjax.errors import IntjaxError


def cmd_info(args: argparse.Namespace) -> None:
    """Print a model's config, its parameter count and the JAX devices."""
    import jax

    from intjax.loading import load_model

    model, _ = load_model(args.model, tokenizer=False, strict_config=not args.lenient_config)
    print(f"model: {args.model}")
    fields = [field.name for field in dataclasses.fields(model.config)]
    for name in fields + ["d_head"] * ("d_head" not in fields):  # a GPT-2 config derives d_head
        print(f"  {name}: {getattr(model.config, name)}")
    print(f"parameters: {model.n_params():,}")
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices: {jax.devices()}")
    print(f"float32 matrix products: precision {jax.config.jax_default_matmul_precision or 'default'} "
          "(set by $JAX_DEFAULT_MATMUL_PRECISION; intjax uses highest unless it is set)")


def cmd_patch(args: argparse.Namespace) -> None:
    """NIE of each component under noising and/or denoising; writes DIR/values.npz + summary.json."""
    import time
    from pathlib import Path

    import jax
    import numpy as np

    from intjax.compile_stats import count_compiles
    from intjax.runs.patch import PatchOptions, patch_stages, run_patch, screen_lines
    from intjax.sweeps.context import SweepContext
    from intjax.patching import parse_components
    from intjax.results import versions, write_results
    from intjax.sweeps.fingerprint import hash_arrays, model_digest

    t0 = time.perf_counter()
    model, prompts = _model_and_prompts(args)
    components = parse_components(args.components, model.config)
    witnesses = parse_components(args.pin, model.config) if args.pin else []
    directions = ("noising", "denoising") if args.direction == "both" else (args.direction,)
    _check_edges(args, components)
    if args.estimate == "exact":
        _check_order(args, len(components), len(prompts) * len(directions))
    options = PatchOptions(directions=directions, semantics=args.semantics, source=args.source,
                           metric=args.metric, order=args.order, linear=args.linear, estimate=args.estimate,
                           verify_top=args.verify_top)
    sweeps = SweepContext.of(memory_gb=args.memory_gb, chunk=args.chunk, quiet=args.quiet, restart=args.restart,
                             checkpoints=Path(args.out) / "checkpoints")
    stages = patch_stages(model, prompts, len(components), options, quiet=args.quiet)
    with count_compiles() as compiled:
        results, timings = run_patch(model, prompts, components, options, sweeps, witnesses=witnesses,
                                     stages=stages)
    timings["total_s"] = time.perf_counter() - t0
    summary = dict(
        command="patch", model=str(args.model), data=str(args.data), components=args.components,
        pinned=args.pin or "",
        n_prompts=len(prompts), n_components=len(components),
        options=dict(direction=args.direction, semantics=args.semantics, source=args.source,
                     metric=args.metric, order=args.order, linear=args.linear, estimate=args.estimate,
                     verify_top=args.verify_top, memory_gb=args.memory_gb, chunk=args.chunk),
        provenance=dict(model_hash=model_digest(model), prompts_hash=hash_arrays(
            [np.asarray(x) for x in (*prompts.clean, *prompts.corrupted, prompts.target, prompts.foil)])),
        versions=versions(), devices=[str(d) for d in jax.devices()], timings=timings,
        compilation=compiled.as_dict(),
    )
    if jax.process_index() != 0:  # every process holds all values; process 0 writes them
        return
    out = write_results(args.out, results, summary)
    if args.verify_top:
        print(screen_lines(results))
    if not args.quiet:
        print(f"wrote {out / 'values.npz'} and {out / 'summary.json'} ({timings['total_s']:.1f} s; "
              f"{compiled.line()})")


def _model_and_prompts(args: argparse.Namespace, **load_kwargs):
    """(model, prompts) of --model and --data: the data is read first, the tokenizer loaded only when it
    holds text, and every prompt checked against the vocabulary and n_positions before any JAX work."""
    from intjax.errors import InputError
    from intjax.loading import load_model
    from intjax.patching.prompts import check_vocab, make_prompt_set, needs_tokenizer, read_prompt_rows

    rows = read_prompt_rows(args.data)
    text = needs_tokenizer(rows)
    if not text:
        make_prompt_set(rows, source=args.data)  # malformed ids fail before the model loads
    model, tokenizer = load_model(args.model, tokenizer=text, strict_config=not args.lenient_config, **load_kwargs)
    prompts = make_prompt_set(rows, tokenizer, source=args.data)
    try:
        check_vocab(prompts, model.config.vocab_size, model.config.n_positions)
    except InputError as e:
        raise InputError(f"{args.data}: {e}") from None
    return model, prompts


def _check_order(args: argparse.Namespace, n: int, runs_per_mask: int) -> None:
    """Refuse, before any patching, an --order above n or one whose sweep is larger than asked for."""
    if args.order > n:
        raise IntjaxError(f"--order {args.order} is above the number of components ({n}); the highest "
                          f"interaction among {n} components has order {n}")
    masks = sum(math.comb(n, k) for k in range(args.order + 1))
    if masks * runs_per_mask > MAX_RUNS_WITHOUT_FORCE and not args.force:
        raise IntjaxError(f"--order {args.order} over {n} components is {masks:,} subsets, "
                          f"{masks * runs_per_mask:,} patched runs with these prompts and directions; "
                          "add --force to run it, or lower --order or the number of components")


def _check_edges(args: argparse.Namespace, components) -> None:
    """Print how many edges the spec names (sets like heads>heads.q expand to many) and refuse, before any
    patching, more than MAX_EDGES_WITHOUT_FORCE without --force."""
    edges = sum(1 for c in components for s in c.sites if s.is_edge)
    if not edges:
        return
    if not args.quiet:
        print(f"{len(components):,} components, {edges:,} edges", file=sys.stderr)
    if edges > MAX_EDGES_WITHOUT_FORCE and not args.force:
        raise IntjaxError(f"--components names {edges:,} edges (more than {MAX_EDGES_WITHOUT_FORCE:,}: each is a "
                          "receiver input every patched run builds); add --force to run it, or name fewer edges")


def cmd_theorems(args: argparse.Namespace) -> None:
    """Check DESIGN.md §2's identities, integral identity, bound and scaling law in float64."""
    from intjax.runtime import x64

    with x64():
        _theorems(args)


def _theorems(args: argparse.Namespace) -> None:
    """`cmd_theorems` inside JAX's 64-bit mode."""
    import json
    import time
    from pathlib import Path

    import jax.numpy as jnp

    from intjax.costs import theorem_table_fe
    from intjax.report.theorems import format_theorem_rows, theorem_rows
    from intjax.progress import COMPILE_S_PER_STAGE, Stages, mean_length, seconds_per_forward
    from intjax.runs.theorems import run_theorems
    from intjax.patching import parse_components
    from intjax.results import versions

    t0 = time.perf_counter()
    model, prompts = _model_and_prompts(args, dtype=jnp.float64)
    components = parse_components(args.components, model.config)
    if args.order > len(components):
        raise IntjaxError(f"--order {args.order} is above the number of components ({len(components)}); "
                          f"give --order {len(components)} or fewer, or more components")
    cut = parse_components(args.cut, model.config)
    fe = theorem_table_fe(len(prompts), len(components), args.order, args.n_check, None, len(cut))
    per_forward = 0.0 if args.quiet else seconds_per_forward(model, mean_length(prompts.lengths))  # for the plan
    stages = Stages(["theorem table"], title=f"intjax theorems ({len(components)} components, order {args.order}, "
                    f"{len(prompts)} prompts, float64)", estimates=[COMPILE_S_PER_STAGE + fe * per_forward],
                    quiet=args.quiet)
    with stages.stage("theorem table"):
        table = run_theorems(model, prompts, components, order=args.order, direction=args.direction,
                             source=args.source, n_check=args.n_check, cut=cut, step=stages.note,
                             tick=stages.tick)
    saved = dict(table.as_dict(), model=str(args.model), data=str(args.data), components=args.components,
                 n_prompts=len(prompts), versions=versions(), seconds=time.perf_counter() - t0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "theorems.json").write_text(json.dumps(saved, indent=2))
    print(format_theorem_rows(theorem_rows(table)))
    print(f"wrote {out / 'theorems.json'}")


def cmd_ioi(args: argparse.Namespace) -> None:
    """The IOI analysis on a checkpoint of any family: report.md, figures and value files in DIR."""
    from intjax.compile_stats import count_compiles
    from intjax.ioi import run_ioi_analysis
    from intjax.ioi.analysis import run_sweeps
    from intjax.ioi.circuit import check_circuit_spec
    from intjax.ioi.saved import save_analysis
    from intjax.loading import load_model
    from intjax.report import render
    from intjax.results import add_to_summary

    check_circuit_spec(args.circuit)  # a bad --circuit fails now, not after the first studies
    options = ioi_options(args)  # bad sizes fail here too
    model, tokenizer = load_model(args.model, strict_config=not args.lenient_config)
    check_circuit_spec(args.circuit, model)
    written = []

    def save_and_render(analysis) -> None:
        save_analysis(analysis, args.out)
        written.append(render(analysis, args.out))

    with count_compiles() as compiled:
        run_ioi_analysis(model, tokenizer, options, run_sweeps(args.out, args.memory_gb, args.quiet),
                         model_name=str(args.model), then=save_and_render)
    report = written[0]
    add_to_summary(report.parent, compilation=compiled.as_dict(),
                   sweeps=dict(memory_gb=args.memory_gb, quiet=args.quiet))
    print(f"report: {report}")
    print(f"compilation: {compiled.line()}")
    print(f"figures and values: {report.parent} (values.npz, summary.json, theorems.json, *.png)")


def ioi_options(args: argparse.Namespace):
    """The IOIAnalysisOptions of `intjax ioi`/`demo` arguments; sizes given on the command line are
    `fixed` (--budget-min never shrinks them). Every default is the library's (IOIAnalysisOptions)."""
    from intjax.options import IOIAnalysisOptions, IOIStudyOptions

    given = {size: getattr(args, flag) for flag, size in SHRINKABLE_FLAGS.items() if getattr(args, flag) is not None}
    study_sizes = {k: v for k, v in given.items() if k != "theorem_heads"}
    positional = {"auto": None, "on": True, "off": False}[args.positional]
    studies = IOIStudyOptions(circuit=args.circuit, discover=args.discover, positional=positional,
                              completeness_ablation=None if args.completeness_ablation == "off"
                              else args.completeness_ablation, minimality_threshold=args.minimality_threshold,
                              **study_sizes)
    options = IOIAnalysisOptions(n_prompts=args.n_prompts, seed=args.seed, corruption=args.corruption,
                                 studies=studies, budget_minutes=args.budget_min, fixed=tuple(given),
                                 **({"theorem_heads": given["theorem_heads"]} if "theorem_heads" in given else {}))
    if args.smoke:
        options = dataclasses.replace(options, n_prompts=min(args.n_prompts, 8), pair_pool=6, triple_pool=4,
                                      theorem_heads=min(options.theorem_heads, 2), theorem_order=2,
                                      theorem_prompts=2, top=5, distance_heads=3, distance_prompts=4,
                                      budget_minutes=0.0,
                                      studies=dataclasses.replace(studies, n_resamples=min(studies.n_resamples, 2),
                                                                  search_pool=min(studies.search_pool, 5),
                                                                  search_k=min(studies.search_k, 3)))
    return options


def _ioi_args(p: argparse.ArgumentParser) -> None:
    from intjax.options import CORRUPTIONS, DISCOVERIES, IOIAnalysisOptions

    o, s = IOIAnalysisOptions(), IOIAnalysisOptions().studies
    p.add_argument("--n-prompts", type=POSITIVE, default=o.n_prompts,
                   help=f"IOI prompts generated (default {o.n_prompts})")
    p.add_argument("--seed", type=int, default=o.seed)
    p.add_argument("--corruption", choices=list(CORRUPTIONS), default=o.corruption,
                   help="abc: three fresh names; s2_flip: S2 becomes the IO name; random_token: S2 becomes a "
                        "random non-name token")
    p.add_argument("--memory-gb", type=POSITIVE_FLOAT, default=DEFAULT_MEMORY_GB,
                   help="memory budget per chunk of masks")
    p.add_argument("--theorem-heads", type=NON_NEGATIVE, default=None,
                   help=f"heads in the float64 theorem table (default {o.theorem_heads}; 0 skips it)")
    p.add_argument("--budget-min", type=_at_least(0, float, allow_zero=True), default=CLI_BUDGET_MIN,
                   metavar="MINUTES",
                   help=f"estimated time to fit (default {CLI_BUDGET_MIN:g}): the plan shrinks the sizes you did not "
                        "set (faithfulness resamples and prompts, sampled pairs, search pool, theorem prompts), each "
                        "never below a floor that keeps its statistic readable; 0 keeps the full sizes")
    g = p.add_argument_group("interaction studies (faithfulness, invisible/inflated heads, search, remedies)")
    g.add_argument("--circuit", default=s.circuit, type=_path,
                   help="auto (Wang et al. on GPT-2 small, else discovered), wang2022, discover, or a JSON "
                        "file {class: [heads]}")
    g.add_argument("--discover", choices=list(DISCOVERIES), default=s.discover,
                   help="roles: the circuit of --circuit; path: Wang et al.'s path patching (direct paths to the "
                        "logits, then into the name movers' queries, S-inhibition values, induction keys) chooses the "
                        "studies' circuit on half the prompts, shown beside the circuit of --circuit")
    g.add_argument("--positional", choices=["auto", "on", "off"], default="auto",
                   help="keep each circuit class only at its position (END, S2, S1next) as Wang et al. do; "
                        "auto: only for Wang et al.'s circuit")
    g.add_argument("--resamples", type=_at_least(2), default=None,
                   help=f"fresh prompt sets for the faithfulness spread (default {s.n_resamples})")
    g.add_argument("--search-pool", type=POSITIVE, default=None,
                   help=f"candidate heads for the best k-set (default {s.search_pool}; "
                        "exhaustive up to 24, beam search beyond)")
    g.add_argument("--search-k", type=POSITIVE, default=None,
                   help=f"largest budget k of the search (default {s.search_k})")
    g.add_argument("--completeness-ablation", choices=["mean", "resample", "zero", "off"],
                   default=s.completeness_ablation or "off",
                   help="how completeness and minimality ablate the heads outside a set (Wang et al.: mean); "
                        "off skips them")
    g.add_argument("--minimality-threshold", type=_at_least(0.0, float, allow_zero=True),
                   default=s.minimality_threshold,
                   help=f"flag circuit heads whose best minimality change is below this share of F(C) "
                        f"(default {s.minimality_threshold:g})")
    p.add_argument("--smoke", action="store_true", help="a small, fast version (CI)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _at_least(low: int | float, kind=int, allow_zero: bool = False):
    """An argparse type: a number of `kind` that is at least `low` (for floats with low 0: above 0,
    unless `allow_zero`)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}")
        strict = kind is float and low == 0 and not allow_zero
        bound = f"give a value {'>' if strict else '>='} {low}"
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number: {bound}")
        if value < low or (strict and value == 0):
            raise argparse.ArgumentTypeError(f"{text} is too small: {bound}")
        return value
    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


POSITIVE, POSITIVE_FLOAT, NON_NEGATIVE = _at_least(1), _at_least(0, float), _at_least(0)


def _path(text: str) -> str:
    """An argparse type: a path that is not empty (an empty --out would write into the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path: name a file or folder (e.g. --out runs/first)")
    return text


_path.__name__ = "path"

# --flag -> the analysis size it sets; a size given on the command line is never shrunk by --budget-min
SHRINKABLE_FLAGS = {"resamples": "n_resamples", "search_pool": "search_pool", "search_k": "search_k",
                    "theorem_heads": "theorem_heads"}
CLI_BUDGET_MIN = 15.0  # the command line fits a budget by default; the library (budget_minutes=0) does not
DEFAULT_MEMORY_GB = 1.0  # memory budget per chunk of masks (intjax.patching.evaluate.DEFAULT_MEMORY_BYTES)
MAX_RUNS_WITHOUT_FORCE = 200_000  # patched runs (masks x prompts x directions) `patch --order` starts unasked
MAX_EDGES_WITHOUT_FORCE = 4096  # edges `patch --components` takes unasked (heads>heads.q on GPT-2 small: 9,504)


def _distributed(args: argparse.Namespace) -> None:
    """Join a multi-process (multi-host) run when --coordinator is given."""
    if getattr(args, "coordinator", None):
        import jax

        if jax.default_backend() == "cpu":
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=args.coordinator, num_processes=args.num_processes,
                                   process_id=args.process_id)


def _distributed_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("multi-host (start the same command on every host; see BUILD.md)")
    g.add_argument("--coordinator", help="HOST:PORT of process 0, for jax.distributed.initialize")
    g.add_argument("--num-processes", type=int, help="number of processes (hosts)")
    g.add_argument("--process-id", type=int, help="this process's index, 0..num-processes-1")


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, type=_path,
                   help="a GPT-2, Llama, Qwen2, Mistral or GPT-NeoX model: local HF folder, shipped model name "
                        "(ioi-small) or hub id")
    p.add_argument("--lenient-config", action="store_true",
                   help="ignore config.json keys intjax does not know")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr (exit 2) that points to --help."""

    def error(self, message: str):
        """Print `intjax CMD: error: MESSAGE (see intjax CMD --help)` and exit 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _subcommand(sub, name: str, text: str) -> argparse.ArgumentParser:
    """A subcommand whose one-line `text` is its entry in `intjax --help` and heads its own --help."""
    return sub.add_parser(name, help=text, description=text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every intjax subcommand."""
    p = OneLineParser(
        prog="intjax",
        description="Activation patching and interaction effects of transformer components (GPT-2, Llama, "
                    "Qwen2, Mistral, GPT-NeoX) in JAX.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    info = _subcommand(sub, "info", "print a model's config, parameter count and JAX devices")
    _model_args(info)
    info.set_defaults(func=cmd_info)

    patch = _subcommand(sub, "patch", "activation patching: NIE (or PIE) of each component, interactions")
    _model_args(patch)
    patch.add_argument("--data", required=True, type=_path, help="PROMPTS.jsonl (clean/corrupted pairs)")
    patch.add_argument("--components", required=True,
                       help="heads, mlps, layers, or a comma list of names (L9H6, L3MLP@14, nm=L9H6+L9H9); edges "
                            "SENDER>RECEIVER (L2H3>L3H1.q, L2H3>L3MLP, L2H3>logits, embed>L1H0.v) or edge sets "
                            "(heads>heads.q, heads>logits)")
    patch.add_argument("--direction", choices=["noising", "denoising", "both"], default="both")
    patch.add_argument("--semantics", choices=["recompute", "frozen"], default="recompute",
                       help="recompute: the other components respond to a patch (NIE, nie_*); frozen: every "
                            "other analysed component is pinned at its base-run value (PIE, pie_*)")
    patch.add_argument("--pin", default=None, metavar="SPEC",
                       help="witnesses: components held at their base-run values (clean under noising, "
                            "corrupted under denoising) in every run while the rest recomputes; same syntax "
                            "as --components, disjoint from it")
    patch.add_argument("--source", choices=["counterfactual", "mean", "zero"], default="counterfactual")
    patch.add_argument("--metric", choices=["logit_diff", "logprob", "prob"], default="logit_diff")
    patch.add_argument("--order", type=POSITIVE, default=1,
                       help="add exact interactions int2_..intK_ up to this order (each subset patched once)")
    patch.add_argument("--estimate", choices=["exact", "hessian"], default="exact",
                       help="with --order 2: exact patches every pair (int2_*); hessian screens every pair by the "
                            "mixed partial H_ij at the base run from n Hessian-vector products (int2_hessian_*)")
    patch.add_argument("--verify-top", type=NON_NEGATIVE, default=0, metavar="K",
                       help="with --estimate hessian: exact INT of the K pairs the screen ranks highest (int2_*) "
                            "and the screen's error on them (screen_check_*)")
    patch.add_argument("--force", action="store_true",
                       help=f"run an --order sweep above {MAX_RUNS_WITHOUT_FORCE:,} patched runs, or more than "
                            f"{MAX_EDGES_WITHOUT_FORCE:,} edges")
    patch.add_argument("--linear", action="store_true", help="add linear (attribution) estimates linear_<direction>")
    patch.add_argument("--memory-gb", type=POSITIVE_FLOAT, default=DEFAULT_MEMORY_GB, help="memory budget per chunk of masks")
    patch.add_argument("--chunk", type=POSITIVE, default=None, help="masks per chunk (default: from --memory-gb)")
    patch.add_argument("--restart", action="store_true",
                       help="discard the saved sweeps in DIR/checkpoints and start over")
    patch.add_argument("--out", required=True, type=_path,
                       help="output folder; DIR/checkpoints keeps finished chunks, so rerunning resumes")
    patch.add_argument("--quiet", action="store_true", help="no progress bars")
    _distributed_args(patch)
    patch.set_defaults(func=cmd_patch)

    thm = _subcommand(sub, "theorems", "check the interaction identities and laws numerically (float64)")
    _model_args(thm)
    thm.add_argument("--data", required=True, type=_path, help="PROMPTS.jsonl (clean/corrupted pairs)")
    thm.add_argument("--components", required=True, help="component spec, as for patch")
    thm.add_argument("--order", type=_at_least(2), default=2, help="highest interaction order checked")
    thm.add_argument("--direction", choices=["noising", "denoising"], default="noising")
    thm.add_argument("--source", choices=["counterfactual", "mean", "zero"], default="counterfactual")
    thm.add_argument("--n-check", type=POSITIVE, default=6, help="strongest sets per order checked by the integral identity, bound and slopes")
    thm.add_argument("--cut", default="heads,mlps", metavar="SPEC",
                     help="components the noising/denoising duality is checked over (it holds under frozen "
                          "semantics when they form a complete cut: heads,mlps is one when clean and corrupted "
                          "share their last token)")
    thm.add_argument("--out", required=True, type=_path, help="output folder for theorems.json")
    thm.add_argument("--quiet", action="store_true", help="no plan and no stage lines")
    thm.set_defaults(func=cmd_theorems)

    ioi = _subcommand(sub, "ioi", "IOI analysis of a GPT-2, Llama, Qwen2, Mistral or GPT-NeoX checkpoint: NIE, "
                      "interactions, theorems, report")
    _model_args(ioi)
    ioi.add_argument("--out", required=True, type=_path, help="output folder")
    _ioi_args(ioi)
    ioi.set_defaults(func=cmd_ioi)

    demo = _subcommand(sub, "demo", "the IOI analysis on the shipped ioi-small model (offline, minutes)")
    demo.add_argument("--out", default="intjax-demo", type=_path, help="output folder (default: ./intjax-demo)")
    _ioi_args(demo)
    demo.set_defaults(func=cmd_ioi, model="ioi-small", lenient_config=False)
    return p


def _stopped_line(args: argparse.Namespace, how: str) -> str:
    """One line: how the run stopped, where its partial results are, and how to resume."""
    out = getattr(args, "out", None)
    if out is None or args.command in ("theorems", None):
        return f"intjax: {how}; nothing was saved (this command keeps no checkpoints)"
    if not (Path(out) / "checkpoints").is_dir():
        return f"intjax: {how} before the first sweep; nothing was saved"
    return (f"intjax: {how}; finished sweeps and chunks are saved under {out}/checkpoints: "
            "run the same command again to resume")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `intjax` console script (exit 2 on bad input, 130 on Ctrl-C, 143 on SIGTERM)."""
    from intjax.interrupts import Terminated, raising_signals
    from intjax.write_errors import write_failure

    with raising_signals() as signals:
        args = argparse.Namespace(command=None)
        try:
            args = build_parser().parse_args(argv)
            with signals.deferred():  # a Ctrl-C while JAX imports stops the run once the import is done
                import jax.numpy  # noqa: F401
                import intjax.loading  # noqa: F401
            _run(args, "intjax " + " ".join(sys.argv[1:] if argv is None else argv))
        except IntjaxError as e:
            print(f"intjax: error: {e}", file=sys.stderr)
            return 2
        except (KeyboardInterrupt, Terminated) as e:
            if not signals.received:
                signals.received.append(signal.SIGINT if isinstance(e, KeyboardInterrupt) else signal.SIGTERM)
        except BaseException as e:
            failure = None if signals.received else write_failure(e, getattr(args, "out", None))
            if failure:
                print(f"intjax: error: {failure}", file=sys.stderr)
                return 2
            if not signals.received:  # a signal can surface as another error (a library it stopped)
                raise
        if not signals.received:
            return 0
    interrupted = signals.received[0] == signal.SIGINT
    print(_stopped_line(args, "interrupted (Ctrl-C)" if interrupted else "terminated (SIGTERM)"), file=sys.stderr)
    code = 130 if interrupted else 143
    if argv is None:  # the command itself: leave now, as XLA's threads can crash the interpreter's teardown
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(code)
    return code


def _run(args: argparse.Namespace, command: str) -> None:
    """Run the parsed command inside its claimed output folder, with exact float32 products."""
    import contextlib
    import logging

    from intjax.outdir import claimed_output
    from intjax.runtime import enable_compilation_cache, exact_matmuls

    with (claimed_output(args.out, command[:200], getattr(args, "process_id", None) or 0)
          if getattr(args, "out", None) else contextlib.nullcontext()), exact_matmuls():
        enable_compilation_cache()
        logging.getLogger("absl").setLevel(logging.ERROR)  # orbax's warnings on retried saves: noise here
        _distributed(args)
        args.func(args)


if __name__ == "__main__":
    sys.exit(main())
