"""``python -m training <command>``: one sub-command per job.

Each command lives in a small module exposing ``add_parser(subparsers)``, which
registers its arguments and sets ``func``; add new commands to COMMAND_MODULES.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMAND_MODULES = ["training.commands", "training.cli_optimize", "training.cli_transfer"]


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """--preset/--config and --set, shared by every command that builds a config."""
    parser.add_argument("--preset", "--config", dest="preset", default="default",
                        help="preset name under configs/ or a YAML file (default: default)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set train.epochs=3 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training",
                                     description="Train, evaluate, optimise and publish CNN classifiers.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    from artifact.imaging import ImageError
    from artifact.metadata import MetadataError

    from .config import ConfigError
    from .data import DataError
    try:
        args.func(args)
    except (ConfigError, DataError, FileNotFoundError, ImageError, MetadataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
