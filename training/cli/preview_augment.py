"""``python -m training preview-augment``: a PNG grid of augmented training samples."""
from __future__ import annotations

import json
from pathlib import Path

from training.cli.common import add_config_args, config_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("preview-augment", help="write a PNG grid of augmented training samples")
    add_config_args(p)
    p.add_argument("--out", default="reports/augment_preview.png")
    p.add_argument("--samples", type=int, default=8, help="distinct images (rows)")
    p.add_argument("--variants", type=int, default=8, help="augmented copies per image (columns)")
    p.set_defaults(func=cmd_preview)


def cmd_preview(args) -> None:
    from training.data.datasets import load_data
    from training.data.preview import preview_augment
    cfg = config_from_args(args)
    train, _, _ = load_data(cfg.data)
    preview_augment(train, cfg.augment, Path(args.out), args.samples, args.variants, cfg.train.seed)
    print(json.dumps({"out": args.out}))
