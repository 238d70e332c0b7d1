"""The `intjax` command: parses arguments and calls the library, nothing else."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from intjax.errors import IntjaxError


def cmd_info(args: argparse.Namespace) -> None:
    """Print a model's config, its parameter count and the JAX devices."""
    import jax

    from intjax.loading import load_model

    model, _ = load_model(args.model, tokenizer=False, strict_config=not args.lenient_config)
    print(f"model: {args.model}")
    for field in dataclasses.fields(model.config):
        print(f"  {field.name}: {getattr(model.config, field.name)}")
    print(f"  d_head: {model.config.d_head}")
    print(f"parameters: {model.n_params():,}")
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices: {jax.devices()}")


def cmd_patch(args: argparse.Namespace) -> None:
    """NIE of each component under noising and/or denoising; writes DIR/values.npz + summary.json."""
    import time

    import jax

    from intjax.loading import load_model
    from intjax.patch_run import PatchOptions, run_patch
    from intjax.patching import parse_components, read_prompts
    from intjax.results import versions, write_results

    t0 = time.perf_counter()
    model, tokenizer = load_model(args.model, strict_config=not args.lenient_config)
    prompts = read_prompts(args.data, tokenizer)
    components = parse_components(args.components, model.config)
    directions = ("noising", "denoising") if args.direction == "both" else (args.direction,)
    options = PatchOptions(directions, args.semantics, args.source, args.metric, args.memory_gb, args.quiet)
    arrays, items, timings = run_patch(model, prompts, components, options)
    timings["total_s"] = time.perf_counter() - t0
    summary = dict(
        command="patch", model=str(args.model), data=str(args.data), components=args.components,
        n_prompts=len(prompts), n_components=len(components),
        options=dict(direction=args.direction, semantics=args.semantics, source=args.source,
                     metric=args.metric, memory_gb=args.memory_gb),
        versions=versions(), devices=[str(d) for d in jax.devices()], timings=timings,
    )
    out = write_results(args.out, arrays, items, summary)
    if not args.quiet:
        print(f"wrote {out / 'values.npz'} and {out / 'summary.json'} ({timings['total_s']:.1f} s)")


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="local HF folder, shipped model name or hub id")
    p.add_argument("--lenient-config", action="store_true",
                   help="ignore config.json keys intjax does not know")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every intjax subcommand."""
    p = argparse.ArgumentParser(
        prog="intjax",
        description="Activation patching and interaction effects for GPT-2 in JAX.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print a model's config, parameter count and JAX devices")
    _model_args(info)
    info.set_defaults(func=cmd_info)

    patch = sub.add_parser("patch", help="activation patching: NIE of each component")
    _model_args(patch)
    patch.add_argument("--data", required=True, help="PROMPTS.jsonl (clean/corrupted pairs)")
    patch.add_argument("--components", required=True,
                       help="heads, mlps, layers, or a comma list of names (L9H6, L3MLP@14, nm=L9H6+L9H9)")
    patch.add_argument("--direction", choices=["noising", "denoising", "both"], default="both")
    patch.add_argument("--semantics", choices=["recompute", "frozen"], default="recompute")
    patch.add_argument("--source", choices=["counterfactual", "mean", "zero"], default="counterfactual")
    patch.add_argument("--metric", choices=["logit_diff", "logprob", "prob"], default="logit_diff")
    patch.add_argument("--memory-gb", type=float, default=1.0, help="memory budget per chunk of masks")
    patch.add_argument("--out", required=True, help="output folder")
    patch.add_argument("--quiet", action="store_true", help="no progress bars")
    patch.set_defaults(func=cmd_patch)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `intjax` console script."""
    args = build_parser().parse_args(argv)
    from intjax.runtime import enable_compilation_cache

    enable_compilation_cache()
    try:
        args.func(args)
    except IntjaxError as e:
        print(f"intjax: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
