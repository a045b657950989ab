"""train, evaluate, publish and preview-augment."""
from __future__ import annotations

import json
from pathlib import Path

from .cli import add_config_args, add_force_arg, add_strategy_arg


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a preset/config; --publish to publish the result")
    add_config_args(p)
    p.add_argument("--publish", action="store_true",
                   help="publish to <models_dir>/<name>/<next version> when done, if the publish check passes")
    add_force_arg(p)
    add_strategy_arg(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("publish", help="export a training checkpoint and publish it as a new version")
    add_config_args(p)
    p.add_argument("--checkpoint", help="weights file (default: <output_dir>/<name>/checkpoints/best.h5)")
    add_force_arg(p)
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("config", help="print every config key with its value and comment")
    add_config_args(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("evaluate", help="accuracy, per-class P/R/F1 and confusion matrix")
    add_config_args(p)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--model-dir", help="a published version directory, e.g. models/fashion/1")
    group.add_argument("--checkpoint", help="a training weights file (model rebuilt from the config)")
    p.add_argument("--out", default="reports/evaluate", help="where reports and PNGs go")
    p.add_argument("--images", nargs="+", metavar="FILE",
                   help="with --model-dir: print one JSON line per image file with the probabilities of "
                        "each format, decoded as the service decodes an upload (no test set, no reports)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("preview-augment", help="write a PNG grid of augmented training samples")
    add_config_args(p)
    p.add_argument("--out", default="reports/augment_preview.png")
    p.add_argument("--samples", type=int, default=8, help="distinct images (rows)")
    p.add_argument("--variants", type=int, default=8, help="augmented copies per image (columns)")
    p.set_defaults(func=cmd_preview)


def _config(args, base: dict = None):
    from .config import load_config
    return load_config(args.preset, args.overrides, base=base)


def _run_config(args):
    """The config a finished run recorded (runs/<name>/config.json), with --set on top, so
    ``publish`` needs only the run's name; the preset alone where no run is recorded."""
    from .trainer import run_dir_for
    cfg = _config(args)
    recorded = run_dir_for(cfg) / "config.json"
    return _config(args, base=json.loads(recorded.read_text())) if recorded.exists() else cfg


def _history(run_dir: Path) -> dict:
    """history.csv as {metric: [one value per epoch]} (empty if the run wrote none)."""
    import csv
    path = run_dir / "history.csv"
    if not path.exists():
        return {}
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {key: [float(row[key]) for row in rows] for key in (rows[0] if rows else {}) if key != "epoch"}


def cmd_train(args) -> None:
    cfg = _config(args)           # config errors surface before TensorFlow loads
    from . import distribute
    dist = distribute.make(args.strategy)   # first: a multi-worker strategy sets up the runtime
    from .release import publish_result
    from .train import train
    result = train(cfg, dist=dist)
    summary = {"test_accuracy": result.test_accuracy, "fit_seconds": round(result.wall_seconds, 1),
               "run_dir": str(result.run_dir), "budget": result.budget, "distribution": result.distribution}
    if args.publish:   # the chief alone publishes
        summary["published"] = (str(publish_result(cfg, result, preset=args.preset, force=args.force))
                                if dist.chief else None)
    print(json.dumps(summary))


def _load_checkpoint(cfg, checkpoint, data):
    from . import transfer  # noqa: F401  (registers the transfer builder a config may name)
    from .models import build_for_experiment
    from .trainer import run_dir_for
    model = build_for_experiment(cfg, data.input_shape, len(data.class_names))
    path = Path(checkpoint) if checkpoint else run_dir_for(cfg) / "checkpoints" / "best.h5"
    if not path.exists():
        raise FileNotFoundError(f"checkpoint '{path}' not found; train first or pass --checkpoint")
    model.load_weights(str(path))
    return model


def cmd_publish(args) -> None:
    from .data import dataset_record, load_data
    from .release import publish_model, techniques
    from .trainer import run_dir_for
    cfg = _run_config(args)
    train, val, test = load_data(cfg.data)
    model = _load_checkpoint(cfg, args.checkpoint, train)
    extra = {"techniques": techniques(cfg), "preset": args.preset,
             "dataset": dataset_record(cfg.data, train, val, test)}
    published = publish_model(cfg, model, test, extra=extra, history=_history(run_dir_for(cfg)), force=args.force)
    print(json.dumps({"published": str(published)}))


def cmd_evaluate(args) -> None:
    from .evaluate import evaluate_keras, evaluate_published
    from .config import ConfigError
    from .data import load_data
    cfg = _config(args)
    if args.model_dir:
        # the data and preprocessing the version was trained with, unless --set says otherwise
        from artifact.metadata import read
        cfg = _config(args, base={"data": read(args.model_dir).config.get("data", {})})
    if args.images:
        if not args.model_dir:
            raise ConfigError("--images needs --model-dir (a published version)")
        from .evaluate import predict_files
        for line in predict_files(Path(args.model_dir), args.images):
            print(json.dumps(line))
        return
    train, _, test = load_data(cfg.data)
    if args.model_dir:
        reports = evaluate_published(Path(args.model_dir), test, Path(args.out))
    else:
        model = _load_checkpoint(cfg, args.checkpoint, train)
        reports = {"keras": evaluate_keras(model, test, Path(args.out), cfg.name)}
    print(json.dumps({fmt: r["accuracy"] for fmt, r in reports.items()} | {"out": args.out}))


def cmd_config(args) -> None:
    from .config import describe_config
    print(describe_config(_config(args)))


def cmd_preview(args) -> None:
    from .preview import preview_augment
    from .data import load_data
    cfg = _config(args)
    train, _, _ = load_data(cfg.data)
    preview_augment(train, cfg.augment, Path(args.out), args.samples, args.variants, cfg.train.seed)
    print(json.dumps({"out": args.out}))
