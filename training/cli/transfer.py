"""``python -m training transfer``: a pretrained backbone, a new head, two-stage fine-tuning.

    python -m training transfer --backbone mobilenetv2 --weights imagenet --unfreeze all --publish
    python -m training transfer --backbone models/fashion/1 --unfreeze 4 --unfreeze-unit blocks \\
        --set data.source=folder --set data.path=photos/ --set data.color_mode=RGB --publish

Flags are shorthand for ``--set transfer.<key>=...``; an explicit --set wins.
"""
from __future__ import annotations

import argparse
import json

from training.cli.common import add_config_args, add_force_arg


def _unfreeze(text: str):
    if text == "all":
        return "all"
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError("must be 'all' or a whole number >= 0")
    return value


def add_parser(sub) -> None:
    p = sub.add_parser("transfer", help="fine-tune a pretrained backbone (keras.applications or a "
                                        "published version) with a new head; --publish to publish")
    add_config_args(p, default_preset="transfer")
    p.set_defaults(func=cmd_transfer)
    p.add_argument("--backbone", help="mobilenetv2 | efficientnetb0 | resnet50 | a published version "
                                      "directory such as models/fashion/1 (default: the preset's)")
    p.add_argument("--weights", help="default | imagenet | none | PATH to a weights file")
    p.add_argument("--alpha", type=float, help="MobileNetV2 width multiplier")
    p.add_argument("--unfreeze", type=_unfreeze, metavar="N|all",
                   help="stage 2 trains the top N layers/blocks of the backbone, or all; 0 skips it")
    p.add_argument("--unfreeze-unit", choices=("layers", "blocks"))
    p.add_argument("--head-epochs", type=int, help="stage 1 epochs (backbone frozen)")
    p.add_argument("--head-lr", type=float, help="stage 1 learning rate")
    p.add_argument("--fine-tune-epochs", type=int, help="stage 2 epochs")
    p.add_argument("--fine-tune-lr", type=float, help="stage 2 learning rate (about 1e-5 for ImageNet)")
    p.add_argument("--publish", action="store_true", help="publish to the model repository when done")
    add_force_arg(p)


FLAGS = {"backbone": "backbone", "weights": "weights", "alpha": "alpha", "unfreeze": "unfreeze",
         "unfreeze_unit": "unfreeze_unit", "head_epochs": "head_epochs", "head_lr": "head_learning_rate",
         "fine_tune_epochs": "fine_tune_epochs", "fine_tune_lr": "fine_tune_learning_rate"}


def config_from_args(args):
    from training.config import load_config
    flags = {key: getattr(args, attr) for attr, key in FLAGS.items() if getattr(args, attr) is not None}
    return load_config(args.preset, args.overrides, flags={"transfer": flags})


def cmd_transfer(args) -> None:
    from training.transfer.pipeline import publish_transfer, run_transfer
    result = run_transfer(config_from_args(args))
    summary = {"backbone": result.backbone["name"], "weights": result.backbone["weights"],
               "stages": [{k: s[k] for k in ("stage", "name", "epochs", "unfrozen_layers", "fit_seconds",
                                             "val_accuracy", "test_accuracy")} for s in result.stages],
               "run_dir": str(result.run_dir)}
    if args.publish:
        summary["published"] = str(publish_transfer(result, preset=args.preset, force=args.force))
    print(json.dumps(summary))
