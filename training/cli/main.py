"""``python -m training <command>``: the parser and the exit codes.

Each command lives in its own module exposing ``add_parser(subparsers)``, which
registers its arguments and sets ``func``; COMMANDS lists them in ``--help`` order.
"""
from __future__ import annotations

import argparse
import logging
import sys

from artifact.imaging import ImageError
from artifact.locks import LockBusy
from artifact.metadata import MetadataError
from artifact.versions import RepositoryError

from training.cli import (ablate, config, evaluate, optimize, preview_augment, publish, retrain, rollback,
                          train, transfer)
from training.config import ConfigError
from training.data.datasets import DataError
from training.publish.policies import EXIT_BUSY, EXIT_USAGE, PublishRefused

COMMANDS = (train, publish, config, evaluate, preview_augment, optimize, transfer, retrain, rollback, ablate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training",
                                     description="Train, evaluate, optimise and publish CNN classifiers.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
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
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume from the last finished epoch "
              "(its state is in <output_dir>/<name>/backup); nothing was published", file=sys.stderr)
        sys.exit(130)
