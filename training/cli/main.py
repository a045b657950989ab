"""``python -m training <command>``: the parser, the output and the exit codes.

Each command lives in its own module exposing ``add_parser(subparsers)``, which
registers its arguments and sets ``func``; COMMANDS lists them in ``--help`` order.

A mistake the program can name is one ``error:`` line and exit 2 (5: busy, 3/4:
refused by a publish policy). Anything else is one ``error:`` line, exit 1 and the
path of a log file holding the traceback; ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import os
import sys

from artifact.captures import CaptureError
from artifact.imaging import ImageError
from artifact.locks import LockBusy
from artifact.metadata import MetadataError
from artifact.versions import RepositoryError

from training import quiet
from training.cli import logs
from training.cli import (ablate, calibrate, captures, config, drift, evaluate, feedback, label, optimize,
                          preview_augment, publish, retrain, rollback, train, transfer)
from training.config import ConfigError
from training.data.datasets import DataError
from training.publish.policies import EXIT_BUSY, EXIT_USAGE, PublishRefused

COMMANDS = (train, publish, config, evaluate, preview_augment, optimize, transfer, calibrate, retrain, rollback, label,
            feedback, captures, drift, ablate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training",
                                     description="Train, evaluate, optimise and publish CNN classifiers.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also show other libraries' INFO lines and TensorFlow's start-up lines")
    parser.add_argument("--debug", action="store_true",
                        help="on an unexpected error, show the traceback instead of writing it to a log file")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    recorder = logs.configure(args.verbose)
    if args.verbose:
        os.environ[quiet.SHOW] = "1"        # native libraries load later, if at all
    try:
        args.func(args)
    except LockBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BUSY)
    except (CaptureError, ConfigError, DataError, FileNotFoundError, ImageError, MetadataError,
            RepositoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    except PublishRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume from the last finished epoch "
              "(its state is in <output_dir>/<name>/backup); nothing was published", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if args.debug:
            raise
        path = logs.write_crash_log(args.command, recorder, "".join(quiet.CAPTURED))
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"error: unexpected {type(exc).__name__}: {first} (traceback in {path}; --debug shows it here)",
              file=sys.stderr)
        sys.exit(1)
    finally:
        logs.release()

