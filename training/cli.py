"""``python -m training <command>``: one sub-command per job.

Each command lives in a small module exposing ``add_parser(subparsers)``, which
registers its arguments and sets ``func``; add new commands to COMMAND_MODULES.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMAND_MODULES = ["training.commands", "training.cli_optimize", "training.cli_transfer",
                   "training.cli_retrain", "training.cli_rollback", "training.cli_ablate"]


def add_config_args(parser: argparse.ArgumentParser, default_preset: str = "default") -> None:
    """--preset/--config and --set, shared by every command that builds a config."""
    parser.add_argument("--preset", "--config", dest="preset", default=default_preset,
                        help="preset name under configs/ or a YAML file (default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set train.epochs=3 (repeatable)")


def add_strategy_arg(parser: argparse.ArgumentParser) -> None:
    from .config import STRATEGIES
    parser.add_argument("--strategy", choices=STRATEGIES, default="default",
                        help="tf.distribute strategy: mirrored = every local GPU, multi_worker = the "
                             "machines in TF_CONFIG; train.batch_size is per replica (default: %(default)s)")


def add_force_arg(parser: argparse.ArgumentParser) -> None:
    """--force, for every command that publishes: skip the publish check's refusal."""
    parser.add_argument("--force", action="store_true",
                        help="publish even when the held-out accuracy is not clearly above the "
                             "majority-class rate (the check is still recorded in metadata.json)")


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
    from artifact.locks import LockBusy
    from artifact.metadata import MetadataError
    from artifact.versions import RepositoryError

    from .config import ConfigError
    from .data import DataError
    from .gate import PublishRefused
    from .promotion import EXIT_BUSY, EXIT_CHECK, EXIT_USAGE
    try:
        args.func(args)
    except LockBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BUSY)
    except (ConfigError, DataError, FileNotFoundError, ImageError, MetadataError, RepositoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except PublishRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        sys.exit(EXIT_CHECK)
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume from the last finished epoch "
              "(its state is in <output_dir>/<name>/backup); nothing was published", file=sys.stderr)
        sys.exit(130)
