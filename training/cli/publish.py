"""``python -m training publish``: export a training checkpoint and publish it as a new version."""
from __future__ import annotations

import json

from training.cli.common import (add_config_args, add_force_arg, checkpoint_path, read_history,
                                 run_config)


def add_parser(sub) -> None:
    p = sub.add_parser("publish", help="export a training checkpoint and publish it as a new version")
    add_config_args(p)
    p.add_argument("--checkpoint", help="weights file (default: <output_dir>/<name>/checkpoints/best.h5)")
    add_force_arg(p)
    p.set_defaults(func=cmd_publish)


def cmd_publish(args) -> None:
    from training.config import Resolved
    from training.data.datasets import dataset_record, load_data, resolve_data
    from training.fit.trainer import run_dir_for
    from training.models.published import load_checkpoint
    from training.publish.release import publish_version, techniques
    cfg = run_config(args)
    train, val, test = load_data(cfg.data)
    cfg = Resolved(**resolve_data(cfg.data, train)).apply(cfg)   # a folder's "auto" size and colour as decoded
    model = load_checkpoint(cfg, checkpoint_path(cfg, args.checkpoint), train.input_shape, len(train.class_names))
    extra = {"techniques": techniques(cfg), "preset": args.preset,
             "dataset": dataset_record(cfg.data, train, val, test)}
    published = publish_version(cfg, model, test, extra=extra, history=read_history(run_dir_for(cfg)),
                                force=args.force)
    print(json.dumps({"published": str(published)}))
