"""``python -m training transfer``: a pretrained backbone, a new head, two-stage fine-tuning.

    python -m training transfer --backbone mobilenetv2 --weights imagenet --unfreeze all --publish
    python -m training transfer --backbone models/fashion/1 --unfreeze 4 --unfreeze-unit blocks \\
        --set data.source=folder --set data.path=photos/ --set data.color_mode=RGB --publish

Flags are shorthand for ``--set transfer.<key>=...``; an explicit --set wins.
"""
from __future__ import annotations

import json

from training.cli.common import add_config_args, add_config_flags, add_force_arg, flags_from_args

# The config keys offered as flags; each flag's name, help and default come from the field.
KEYS = ("transfer.backbone", "transfer.weights", "transfer.alpha", "transfer.unfreeze", "transfer.unfreeze_unit",
        "transfer.head_epochs", "transfer.head_learning_rate", "transfer.fine_tune_epochs",
        "transfer.fine_tune_learning_rate")


def add_parser(sub) -> None:
    p = sub.add_parser("transfer", help="fine-tune a pretrained backbone (keras.applications or a "
                                        "published version) with a new head; --publish to publish")
    add_config_args(p, default_preset="transfer")
    p.set_defaults(func=cmd_transfer)
    add_config_flags(p, KEYS)
    p.add_argument("--publish", action="store_true", help="publish to the model repository when done")
    add_force_arg(p)


def config_from_args(args):
    from training.config import load_config
    return load_config(args.preset, args.overrides, flags=flags_from_args(args, KEYS))


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
