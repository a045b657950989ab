"""What several commands share: the --preset/--set, --strategy and --force flags, and
the config a command's arguments describe."""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from training.config import STRATEGIES, load_config


def add_config_args(parser: argparse.ArgumentParser, default_preset: str = "default") -> None:
    """--preset/--config and --set, shared by every command that builds a config."""
    parser.add_argument("--preset", "--config", dest="preset", default=default_preset,
                        help="preset name under configs/ or a YAML file (default: %(default)s)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config value, e.g. --set train.epochs=3 (repeatable)")


def add_strategy_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strategy", choices=STRATEGIES, default="default",
                        help="tf.distribute strategy: mirrored = every local GPU, multi_worker = the "
                             "machines in TF_CONFIG; train.batch_size is per replica (default: %(default)s)")


def add_force_arg(parser: argparse.ArgumentParser) -> None:
    """--force, for every command that publishes: skip the publish check's refusal."""
    parser.add_argument("--force", action="store_true",
                        help="publish even when the held-out accuracy is not clearly above the "
                             "majority-class rate (the check is still recorded in metadata.json)")


def config_from_args(args, base: dict = None):
    """The config --preset and --set describe, on top of ``base`` (e.g. a recorded config)."""
    return load_config(args.preset, args.overrides, base=base)


def run_config(args):
    """The config a finished run recorded (runs/<name>/config.json), with --set on top, so
    ``publish`` needs only the run's name; the preset alone where no run is recorded."""
    from training.fit.trainer import run_dir_for
    cfg = config_from_args(args)
    recorded = run_dir_for(cfg) / "config.json"
    return config_from_args(args, base=json.loads(recorded.read_text())) if recorded.exists() else cfg


def read_history(run_dir: Path) -> dict:
    """history.csv as {metric: [one value per epoch]} (empty if the run wrote none)."""
    path = run_dir / "history.csv"
    if not path.exists():
        return {}
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {key: [float(row[key]) for row in rows] for key in (rows[0] if rows else {}) if key != "epoch"}


def checkpoint_path(cfg, checkpoint) -> Path:
    """``--checkpoint``, or the run's best weights."""
    from training.fit.trainer import run_dir_for
    return Path(checkpoint) if checkpoint else run_dir_for(cfg) / "checkpoints" / "best.h5"
