"""``python -m training optimize``: compress a published version (or a freshly trained
config) through chosen stages and publish the result with its lineage.

    python -m training optimize --from models/fashion/1 --stages distill,prune,pqat,int8 \\
        --student-preset student --sparsity 0.75 --temperature 4

Every flag is shorthand for a config key (``--sparsity`` is ``--set optimize.sparsity=``,
``--alpha`` is ``--set distill.alpha=``); an explicit --set wins. Defaults are the config's.
"""
from __future__ import annotations

import json
from pathlib import Path

from artifact import metadata as md

from training.cli.common import (add_config_args, add_config_flags, add_force_arg, flags_from_args,
                                 with_absolute_data)


# The config keys offered as flags, in --help's groups; each flag's name, help and
# default come from the field (training.config's ``flag(...)`` metadata).
GENERAL = ("optimize.stages", "optimize.name")
DISTILL = ("distill.student_preset", "distill.student_overrides", "distill.alpha", "distill.temperature",
           "distill.labelled", "distill.epochs")
PRUNE = ("optimize.sparsity", "optimize.schedule", "optimize.two_four", "optimize.prune_epochs",
         "optimize.prune_learning_rate", "optimize.keep_ends", "optimize.dense_block", "optimize.ramp")
QUANTIZE = ("optimize.qat_epochs", "optimize.qat_learning_rate", "optimize.calibration_samples")
KEYS = GENERAL + DISTILL + PRUNE + QUANTIZE


def add_parser(sub) -> None:
    p = sub.add_parser("optimize", help="distill / prune / quantize a model and publish the result")
    add_config_args(p)
    p.add_argument("--from", dest="source", metavar="VERSION_DIR",
                   help="a published version to start from, e.g. models/fashion/1 (its config "
                        "is used, --set still overrides it); without it the --preset is trained first")
    add_config_flags(p, GENERAL)
    add_force_arg(p)
    add_config_flags(p.add_argument_group("distillation (config section distill)"), DISTILL)
    add_config_flags(p.add_argument_group("pruning (config section optimize)"), PRUNE)
    add_config_flags(p.add_argument_group("quantization (config section optimize)"), QUANTIZE)
    p.set_defaults(func=cmd_optimize)


# What a version records that is not how it was made: what could be done to it next
# (a version saved before a default changed must not bring back the old default) and
# where that run wrote (another machine's paths).
NOT_INHERITED = ("optimize", "distill", "ablate", "models_dir", "output_dir")


def config_from_args(args):
    """The --from version's config (or the --preset), then the flags, then --set; the
    compression settings and output places come from the current defaults, not from the version."""
    from training.config import config_from_dict, load_config
    flags = flags_from_args(args, KEYS)
    if args.source:
        recorded = config_from_dict(md.read(args.source).config).to_dict()
        base = {key: value for key, value in recorded.items() if key not in NOT_INHERITED}
        return with_absolute_data(load_config(None, args.overrides, base=base, flags=flags))
    return with_absolute_data(load_config(args.preset, args.overrides, flags=flags))


def cmd_optimize(args) -> None:
    from training.compress.optimize import optimize
    published = optimize(config_from_args(args), source_dir=Path(args.source) if args.source else None,
                         force=args.force)
    meta = md.read(published)
    print(json.dumps({"published": str(published), "parent": meta.parent,
                      "stages": [{"stage": r["stage"], **{k: r.get("metrics", {}).get(k) for k in
                                  ("keras_accuracy", "tflite_accuracy", "nonzero_params", "tflite_gzip_bytes")}}
                                 for r in meta.extra["stages"]]}))
