"""What several commands share: the --preset/--set, --strategy and --force flags, the
repository flags of the commands that change a model's labels or versions, and the
config a command's arguments describe."""
from __future__ import annotations

import argparse
import csv
import json
import typing
from pathlib import Path
from typing import Literal, Union

from training.config import STRATEGIES, ConfigError, config_flags, load_config


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


def add_force_arg(parser: argparse.ArgumentParser, also: str = "") -> None:
    """--force, for every command that publishes: skip the publish check's refusal (and what
    ``also`` adds to the help, for a command whose --force skips more)."""
    parser.add_argument("--force", action="store_true",
                        help="publish even when the held-out accuracy is not clearly above the "
                             "majority-class rate (the check is still recorded in metadata.json)" + also)


def _shown(value) -> str:
    """A default as the help states it: 4,1 for a list, 0.0005 for a float."""
    if isinstance(value, list):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _argument_type(hint):
    """(argparse type, choices) for a field's type hint."""
    options = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_origin(hint) is Union else [hint]
    if len(options) == 1 and typing.get_origin(options[0]) is Literal:
        return str, typing.get_args(options[0])
    plain = next((o for o in options if o in (int, float, str)), str)
    return plain, None


def _parsed(parse, name: str):
    """``parse`` as an argparse type: its ConfigError becomes argparse's usage error (exit 2)."""
    def convert(text: str):
        try:
            return parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(f"{name} {exc}") from None
    convert.__name__ = name
    return convert


def add_config_flags(parser, keys: list) -> None:
    """A flag for each config key in ``keys`` (``section.key``), as its field's ``flag(...)``
    metadata describes it: the help is the field's description with the config's default,
    and the value stays None unless given, so only given flags override the config
    (``flags_from_args``)."""
    for key, spec, hint, default, description in config_flags(keys):
        text = spec.help or description
        if spec.show_default:
            text += f" (default {_shown(default)})"
        options = {"dest": key, "default": None, "help": text.replace("%", "%%")}
        if spec.const is not None:
            options.update(action="store_const", const=spec.const)
        elif typing.get_origin(hint) is list and spec.parse is None:
            options.update(action="append", metavar=spec.metavar)
        else:
            kind, choices = _argument_type(hint)
            options.update(type=_parsed(spec.parse, spec.name) if spec.parse else kind, choices=choices,
                           metavar=spec.metavar or (None if choices else
                                                    spec.name.lstrip("-").replace("-", "_").upper()))
        parser.add_argument(spec.name, **options)


def flags_from_args(args, keys: list) -> dict:
    """The config flags given on the command line as a mapping for ``load_config(flags=...)``."""
    flags: dict = {}
    for key in keys:
        value = getattr(args, key, None)
        if value is not None:
            section, name = key.split(".")
            flags.setdefault(section, {})[name] = value
    return flags


def with_absolute_data(cfg):
    """``cfg`` with data.path absolute where it is found (as given, else under the repository
    root: ``training.data.datasets.data_path``), so what a run records in config.json and a
    version in metadata.json opens from any directory."""
    from dataclasses import replace
    from training.data.datasets import with_data_path
    return replace(cfg, data=with_data_path(cfg.data))


def config_from_args(args, base: dict = None):
    """The config --preset and --set describe, on top of ``base`` (e.g. a recorded config)."""
    return with_absolute_data(load_config(args.preset, args.overrides, base=base))


def run_config(args):
    """The config a finished run recorded (runs/<name>/config.json), with --set on top, so
    ``publish`` needs only the run's name; the preset alone where no run is recorded."""
    from training.fit.trainer import run_dir_for
    cfg = config_from_args(args)
    recorded = run_dir_for(cfg) / "config.json"
    return config_from_args(args, base=json.loads(recorded.read_text())) if recorded.exists() else cfg


def read_history(run_dir: Path) -> dict:
    """history.csv as {metric: [one value per epoch]} (empty if the run wrote none).

    Keras's CSVLogger writes "NA" for a metric an epoch did not measure: every val_* column
    of a run without validation images. Such a metric is left out, so the publish policies
    see no validation rather than a row they cannot compare."""
    path = run_dir / "history.csv"
    if not path.exists():
        return {}
    with open(path) as f:
        rows = list(csv.DictReader(f))
    history = {}
    for key in (rows[0] if rows else {}):
        values = [row[key] for row in rows]
        if key != "epoch" and all(v not in (None, "", "NA") for v in values):
            history[key] = [float(v) for v in values]
    return history


def checkpoint_path(cfg, checkpoint) -> Path:
    """``--checkpoint``, or the run's best weights."""
    from training.fit.trainer import run_dir_for
    return Path(checkpoint) if checkpoint else run_dir_for(cfg) / "checkpoints" / "best.h5"


def add_repository_args(parser: argparse.ArgumentParser, wait_help: str) -> None:
    """--name, --models-dir, --set (name and models_dir only) and --wait, for the commands that
    change a model's repository under its lock (``label``, ``rollback``)."""
    parser.add_argument("--name", required=True, help="model name in the repository")
    parser.add_argument("--models-dir", help="the model repository: shorthand of --set models_dir=... "
                                             "(which wins); default: models")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="models_dir=... or name=..., as the other commands take them")
    parser.add_argument("--wait", type=float, default=60.0, metavar="SECONDS",
                        help=f"{wait_help} (default: %(default)s)")


def repository_from_args(args) -> tuple:
    """(name, models_dir) that ``add_repository_args``' flags name; any other --set key is refused."""
    from training.jobs.repository import IDENTITY, identity
    for text in args.overrides:
        if text.split("=", 1)[0].strip() not in IDENTITY:
            raise ConfigError(f"{args.command} takes --set only for {' and '.join(IDENTITY)}, got '{text}'")
    return identity(args.name, args.models_dir, args.overrides)
