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

from training.cli.common import add_config_args, add_force_arg


def add_parser(sub) -> None:
    from training.config import DistillConfig, OptimizeConfig
    d, o = DistillConfig(), OptimizeConfig()     # the help states the config's own defaults
    p = sub.add_parser("optimize", help="distill / prune / quantize a model and publish the result")
    add_config_args(p)
    p.add_argument("--from", dest="source", metavar="VERSION_DIR",
                   help="a published version to start from, e.g. models/fashion/1 (its config "
                        "is used, --set still overrides it); without it the --preset is trained first")
    p.add_argument("--stages", help="comma list from distill, prune, qat|pqat, dynamic|float16|int8 "
                                    f"(optimize.stages, default {','.join(o.stages)})")
    p.add_argument("--name", help="model name to publish under (optimize.name, default: the config's name)")
    add_force_arg(p)
    g = p.add_argument_group("distillation (config section distill)")
    g.add_argument("--student-preset", help="preset/YAML for the student (default: the source config)")
    g.add_argument("--student-set", dest="student_overrides", action="append", metavar="KEY=VALUE",
                   help="override one student config value (repeatable)")
    g.add_argument("--alpha", type=float, help=f"hard-label weight (default {d.alpha})")
    g.add_argument("--temperature", type=float, help=f"softmax temperature (default {d.temperature:g})")
    g.add_argument("--unlabelled", dest="labelled", action="store_const", const=False,
                   help="ignore the transfer set's labels (alpha = 0)")
    g.add_argument("--distill-epochs", type=int, help="student epochs (default: the student config's)")
    g = p.add_argument_group("pruning (config section optimize)")
    g.add_argument("--sparsity", type=float, help=f"target kernel sparsity (default {o.sparsity})")
    g.add_argument("--schedule", choices=("polynomial", "constant"), help=f"default {o.schedule}")
    g.add_argument("--two-four", dest="two_four", action="store_const", const=True,
                   help="2:4 structured sparsity (50%%) instead")
    g.add_argument("--prune-epochs", type=int, help=f"default {o.prune_epochs}")
    g.add_argument("--prune-lr", type=float, help=f"default {o.prune_learning_rate:g}")
    g.add_argument("--prune-ends", dest="keep_ends", action="store_const", const=False,
                   help="also prune the first and last Conv2D/Dense (left dense by default)")
    g.add_argument("--dense-block", metavar="ROWS,COLS",
                   help="block sparsity for Dense kernels as ROWS,COLS; 1,1 = element-wise "
                        f"(default {','.join(map(str, o.dense_block))})")
    g.add_argument("--prune-ramp", type=float,
                   help="share of the pruning epochs spent raising sparsity; the rest retrains at the "
                        f"target (default {o.ramp})")
    g = p.add_argument_group("quantization (config section optimize)")
    g.add_argument("--qat-epochs", type=int, help=f"default {o.qat_epochs}")
    g.add_argument("--qat-lr", type=float, help=f"default {o.qat_learning_rate:g}")
    g.add_argument("--calibration-samples", type=int,
                   help=f"representative images for int8 calibration (default {o.calibration_samples})")
    p.set_defaults(func=cmd_optimize)


# flag dest -> (config section, key)
FLAGS = {
    "stages": ("optimize", "stages"), "name": ("optimize", "name"),
    "student_preset": ("distill", "student_preset"), "student_overrides": ("distill", "student_overrides"),
    "alpha": ("distill", "alpha"), "temperature": ("distill", "temperature"),
    "labelled": ("distill", "labelled"), "distill_epochs": ("distill", "epochs"),
    "sparsity": ("optimize", "sparsity"), "schedule": ("optimize", "schedule"),
    "two_four": ("optimize", "two_four"), "prune_epochs": ("optimize", "prune_epochs"),
    "prune_lr": ("optimize", "prune_learning_rate"), "keep_ends": ("optimize", "keep_ends"),
    "dense_block": ("optimize", "dense_block"), "prune_ramp": ("optimize", "ramp"),
    "qat_epochs": ("optimize", "qat_epochs"), "qat_lr": ("optimize", "qat_learning_rate"),
    "calibration_samples": ("optimize", "calibration_samples"),
}


def flags_from_args(args) -> dict:
    """The given flags as a config mapping (``load_config(flags=...)``)."""
    values = {dest: getattr(args, dest) for dest in FLAGS if getattr(args, dest) is not None}
    if "stages" in values:
        values["stages"] = [s.strip() for s in values["stages"].split(",") if s.strip()]
    if "dense_block" in values:
        values["dense_block"] = list(parse_block(values["dense_block"]))
    flags: dict = {}
    for dest, value in values.items():
        section, key = FLAGS[dest]
        flags.setdefault(section, {})[key] = value
    return flags


# What a version records that is not how it was made: what could be done to it next
# (a version saved before a default changed must not bring back the old default) and
# where that run wrote (another machine's paths).
NOT_INHERITED = ("optimize", "distill", "ablate", "models_dir", "output_dir")


def config_from_args(args):
    """The --from version's config (or the --preset), then the flags, then --set; the
    compression settings and output places come from the current defaults, not from the version."""
    from training.config import config_from_dict, load_config
    flags = flags_from_args(args)
    if args.source:
        recorded = config_from_dict(md.read(args.source).config).to_dict()
        base = {key: value for key, value in recorded.items() if key not in NOT_INHERITED}
        return load_config(None, args.overrides, base=base, flags=flags)
    return load_config(args.preset, args.overrides, flags=flags)


def cmd_optimize(args) -> None:
    from training.compress.optimize import optimize
    published = optimize(config_from_args(args), source_dir=Path(args.source) if args.source else None,
                         force=args.force)
    meta = md.read(published)
    print(json.dumps({"published": str(published), "parent": meta.parent,
                      "stages": [{"stage": r["stage"], **{k: r.get("metrics", {}).get(k) for k in
                                  ("keras_accuracy", "tflite_accuracy", "nonzero_params", "tflite_gzip_bytes")}}
                                 for r in meta.extra["stages"]]}))


def parse_block(text: str) -> tuple:
    from training.config import ConfigError
    try:
        rows, cols = (int(n) for n in text.split(","))
    except ValueError:
        raise ConfigError(f"--dense-block takes ROWS,COLS such as 4,1, got '{text}'") from None
    return rows, cols
