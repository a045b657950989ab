"""``python -m training config``: every config key with its value and comment."""
from __future__ import annotations

from training.cli.common import add_config_args, config_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("config", help="print every config key with its value and comment")
    add_config_args(p)
    p.set_defaults(func=cmd_config)


def cmd_config(args) -> None:
    from training.config import describe_config
    print(describe_config(config_from_args(args)))
