"""``python -m training publish``: export a training checkpoint and publish it as a new version."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from training.cli.common import (add_config_args, add_force_arg, checkpoint_path, read_history,
                                 run_config)
from training.config import ConfigError

log = logging.getLogger(__name__)


def add_parser(sub) -> None:
    p = sub.add_parser("publish", help="export a training checkpoint and publish it as a new version")
    add_config_args(p)
    p.add_argument("--checkpoint", help="weights file (default: <output_dir>/<name>/checkpoints/best.h5)")
    add_force_arg(p, "; also publish the checkpoint of an unfinished (interrupted) run, recording "
                     "the epochs it trained")
    p.set_defaults(func=cmd_publish)


def training_record(run_dir: Path, checkpoint: Path, force: bool) -> dict:
    """The ``training`` block for the run in ``run_dir`` (epochs trained and planned, early stop),
    refusing an interrupted run unless ``force``: its best.h5 holds the best of the epochs that
    ran, and nothing else would say the version is not what its config's train.epochs claims.
    Empty where ``checkpoint`` is not the run's own (another file given with --checkpoint)."""
    from training.fit.trainer import run_progress
    progress = run_progress(run_dir)
    if progress is None or Path(run_dir).resolve() not in Path(checkpoint).resolve().parents:
        return {}
    if not progress["finished"]:
        what = (f"run '{run_dir}' is unfinished: {progress['epochs']} of {progress['planned_epochs']} epochs "
                "trained and no early stop recorded")
        if not force:
            raise ConfigError(f"{what}; run the same train command again to resume it, or pass --force to "
                              "publish it as it is")
        log.warning("%s; publishing it as it is (--force), metadata.json records the epochs trained", what)
    return progress


def cmd_publish(args) -> None:
    from training.config import Resolved
    from training.data.datasets import dataset_record, load_data, resolve_data
    from training.fit.trainer import run_dir_for
    from training.models.published import load_checkpoint
    from training.publish.release import publish_version, techniques
    cfg = run_config(args)
    checkpoint = checkpoint_path(cfg, args.checkpoint)
    training = training_record(run_dir_for(cfg), checkpoint, args.force)   # before any data is read
    history = read_history(run_dir_for(cfg))
    train, val, test = load_data(cfg.data)
    cfg = Resolved(**resolve_data(cfg.data, train)).apply(cfg)   # a folder's "auto" size and colour as decoded
    model = load_checkpoint(cfg, checkpoint, train.input_shape, len(train.class_names))
    extra = {"techniques": techniques(cfg), "preset": args.preset,
             "dataset": dataset_record(cfg.data, train, val, test)}
    if training:
        extra["training"] = {**training, "history": history}
    published = publish_version(cfg, model, test, extra=extra, history=history, force=args.force, validation=val)
    print(json.dumps({"published": str(published)}))
