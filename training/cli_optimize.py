"""``python -m training optimize``: compress a published version (or a freshly trained
config) through chosen stages and publish the result with its lineage.

    python -m training optimize --from models/fashion/1 --stages distill,prune,pqat,int8 \\
        --student-preset student --sparsity 0.75 --alpha 0.3 --temperature 4
"""
from __future__ import annotations

import json
from pathlib import Path

from artifact import metadata as md

from .cli import add_config_args


def add_parser(sub) -> None:
    p = sub.add_parser("optimize", help="distill / prune / quantize a model and publish the result")
    add_config_args(p)
    p.add_argument("--from", dest="source", metavar="VERSION_DIR",
                   help="a published version to start from, e.g. models/fashion/1 (its config "
                        "is used, --set still overrides it); without it the --preset is trained first")
    p.add_argument("--stages", default="prune,pqat,int8",
                   help="comma list from distill, prune, qat|pqat, dynamic|float16|int8 (default: %(default)s)")
    p.add_argument("--name", help="model name to publish under (default: the config's name)")
    g = p.add_argument_group("distillation")
    g.add_argument("--student-preset", help="preset/YAML for the student (default: the source config)")
    g.add_argument("--student-set", dest="student_overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override one student config value (repeatable)")
    g.add_argument("--alpha", type=float, default=0.5, help="hard-label weight (default: %(default)s)")
    g.add_argument("--temperature", type=float, default=4.0, help="softmax temperature (default: %(default)s)")
    g.add_argument("--unlabelled", action="store_true", help="ignore the transfer set's labels (alpha = 0)")
    g.add_argument("--distill-epochs", type=int, help="student epochs (default: the student config's)")
    g = p.add_argument_group("pruning")
    g.add_argument("--sparsity", type=float, default=0.75, help="target kernel sparsity (default: %(default)s)")
    g.add_argument("--schedule", choices=("polynomial", "constant"), default="polynomial")
    g.add_argument("--two-four", action="store_true", help="2:4 structured sparsity (50%%) instead")
    g.add_argument("--prune-epochs", type=int, default=2)
    g.add_argument("--prune-lr", type=float, default=5e-4)
    g.add_argument("--prune-ends", action="store_true",
                   help="also prune the first and last Conv2D/Dense (left dense by default)")
    g.add_argument("--dense-block", default="1,1", metavar="ROWS,COLS",
                   help="block sparsity for Dense kernels, e.g. 4,1 (default: %(default)s = element-wise)")
    g.add_argument("--prune-ramp", type=float, default=0.7,
                   help="share of the pruning epochs spent raising sparsity; the rest retrains at the "
                        "target (default: %(default)s)")
    g = p.add_argument_group("quantization")
    g.add_argument("--qat-epochs", type=int, default=1)
    g.add_argument("--qat-lr", type=float, default=1e-4)
    g.add_argument("--calibration-samples", type=int, default=300,
                   help="representative images for int8 calibration (default: %(default)s)")
    p.set_defaults(func=cmd_optimize)


def options_from_args(args):
    from .optimize import OptimizeOptions, parse_stages
    from .prune import PruneSettings
    from .quantize import QATSettings
    return OptimizeOptions(
        stages=parse_stages(args.stages), student_preset=args.student_preset,
        student_overrides=args.student_overrides, alpha=args.alpha, temperature=args.temperature,
        labelled=not args.unlabelled, distill_epochs=args.distill_epochs,
        prune=PruneSettings(target=0.5 if args.two_four else args.sparsity, schedule=args.schedule,
                            m_by_n=(2, 4) if args.two_four else None, epochs=args.prune_epochs,
                            learning_rate=args.prune_lr, ramp=args.prune_ramp, keep_ends=not args.prune_ends,
                            dense_block=parse_block(args.dense_block)),
        qat=QATSettings(epochs=args.qat_epochs, learning_rate=args.qat_lr),
        calibration_samples=args.calibration_samples, name=args.name)


def cmd_optimize(args) -> None:
    from .config import config_from_dict, load_config
    from .optimize import optimize
    options = options_from_args(args)
    if args.source:
        source = md.read(args.source)
        cfg = load_config(None, args.overrides, base=config_from_dict(source.config).to_dict())
    else:
        cfg = load_config(args.preset, args.overrides)
    published = optimize(cfg, options, source_dir=Path(args.source) if args.source else None)
    meta = md.read(published)
    print(json.dumps({"published": str(published), "parent": meta.parent,
                      "stages": [{"stage": r["stage"], **{k: r.get("metrics", {}).get(k) for k in
                                  ("keras_accuracy", "tflite_accuracy", "nonzero_params", "tflite_gzip_bytes")}}
                                 for r in meta.extra["stages"]]}))


def parse_block(text: str) -> tuple:
    from .config import ConfigError
    try:
        rows, cols = (int(n) for n in text.split(","))
    except ValueError:
        raise ConfigError(f"--dense-block takes ROWS,COLS such as 4,1, got '{text}'") from None
    return rows, cols
