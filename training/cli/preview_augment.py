"""``python -m training preview-augment``: a PNG grid of augmented training samples."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from training.cli.common import add_config_args, config_from_args

log = logging.getLogger(__name__)


def at_least_one(text: str) -> int:
    """An argparse type: a whole number >= 1 (a grid needs a row and an augmented column)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got '{text}'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_parser(sub) -> None:
    p = sub.add_parser("preview-augment", help="write a PNG grid of augmented training samples")
    add_config_args(p)
    p.add_argument("--out", default="reports/augment_preview.png")
    p.add_argument("--samples", type=at_least_one, default=8, help="distinct images (rows)")
    p.add_argument("--variants", type=at_least_one, default=8, help="augmented copies per image (columns)")
    p.set_defaults(func=cmd_preview)


def cmd_preview(args) -> None:
    from training.data.datasets import load_data
    from training.data.preview import preview_augment
    cfg = config_from_args(args)
    train, _, _ = load_data(cfg.data)
    samples = min(args.samples, len(train))     # one row per training image at most
    if samples < args.samples:
        log.info("--samples %d: the training split holds %d images; showing those", args.samples, samples)
    preview_augment(train, cfg.augment, Path(args.out), samples, args.variants, cfg.train.seed)
    print(json.dumps({"out": args.out}))
