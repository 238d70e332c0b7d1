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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every intjax subcommand."""
    p = argparse.ArgumentParser(
        prog="intjax",
        description="Activation patching and interaction effects for GPT-2 in JAX.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print a model's config, parameter count and JAX devices")
    info.add_argument("--model", required=True, help="local folder or HuggingFace hub id")
    info.add_argument("--lenient-config", action="store_true",
                      help="ignore config.json keys intjax does not know")
    info.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `intjax` console script."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except IntjaxError as e:
        print(f"intjax: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
