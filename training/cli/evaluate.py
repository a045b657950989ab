"""``python -m training evaluate``: accuracy, per-class P/R/F1 and a confusion matrix, or
per-file probabilities as the service computes them; a published version also gets its ECE and
NLL and a reliability diagram per format."""
from __future__ import annotations

import json
from pathlib import Path

from training.cli.common import add_config_args, checkpoint_path, config_from_args
from training.config import ConfigError


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy, per-class P/R/F1, confusion matrix and calibration (ECE); with "
                                        "--model-dir also the accuracy / coverage table and curve (coverage_<fmt>.png)")
    add_config_args(p)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--model-dir", help="a published version directory, e.g. models/fashion/1")
    group.add_argument("--checkpoint", help="a training weights file (model rebuilt from the config)")
    p.add_argument("--out", default="reports/evaluate", help="where reports and PNGs go")
    p.add_argument("--split", choices=("test", "validation"), default="test",
                   help="the split scored; validation is where the service's min_confidence is chosen "
                        "from the coverage table (docs/service.md), test only reports")
    p.add_argument("--images", nargs="+", metavar="FILE",
                   help="with --model-dir: print one JSON line per image file with the probabilities of "
                        "each format, decoded as the service decodes an upload (no test set, no reports)")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> None:
    cfg = config_from_args(args)
    if args.model_dir:
        # the data and preprocessing the version was trained with, unless --set says otherwise
        from artifact.metadata import read
        cfg = config_from_args(args, base={"data": read(args.model_dir).config.get("data", {})})
    if args.images:
        if not args.model_dir:
            raise ConfigError("--images needs --model-dir (a published version)")
        from training.publish.evaluate import predict_files
        for line in predict_files(Path(args.model_dir), args.images):
            print(json.dumps(line))
        return
    from training.data.datasets import load_data
    from training.models.published import load_checkpoint
    from training.publish.evaluate import evaluate_keras, evaluate_published
    train, validation, test = load_data(cfg.data)
    if args.split == "validation":
        test = validation
    if args.model_dir:
        reports = evaluate_published(Path(args.model_dir), test, Path(args.out))
    else:
        model = load_checkpoint(cfg, checkpoint_path(cfg, args.checkpoint), train.input_shape,
                                len(train.class_names))
        reports = {"keras": evaluate_keras(model, test, Path(args.out), cfg.name)}
    # ece/nll: present for a published version's formats (their probabilities are measured)
    calibration = {f"{fmt}_ece": r["ece"] for fmt, r in reports.items() if r.get("ece") is not None}
    print(json.dumps({fmt: r["accuracy"] for fmt, r in reports.items()} | calibration | {"out": args.out}))
