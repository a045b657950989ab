"""``python -m training retrain``: retrain a served model on the data as it is now and
publish the result only if it is not worse than what is served.

    python -m training retrain --name fashion                       # the data the served version used
    python -m training retrain --name flowers --data photos/flowers # the folder as it is today
    python -m training retrain --name fashion --from-scratch --metric class_floor --tolerance 0.01
    python -m training retrain --name fashion --then optimize    # and compress it like the served one
    python -m training retrain --name flowers --allow-new --preset folder --data photos/flowers  # a first version
    python -m training retrain --name fashion --canary 10   # publish as the canary: 10% of traffic, stable kept

A model with no published version is refused (exit 2, nothing created) unless
``--allow-new`` asks for a first version; a missing repository always is.
``--models-dir X`` is ``--set models_dir=X`` (an explicit ``--set`` wins), so the
lock, the comparison and the publish use one folder. The candidate is compared with
the stable version (``artifact.labels``; the newest when no label pins one); once
published it becomes stable, or with ``--canary PERCENT`` the canary at that share
(``python -m training label --promote`` or ``--abort`` decides later).

Prints the report as one JSON line and exits with (training.jobs.promotion):
0 published, 2 usage error, 3 refused by the publish check, 4 worse than the
served version, 5 another job holds the model's lock (or changed it meanwhile).
"""
from __future__ import annotations

import json
import sys

from training.cli.common import add_config_flags, add_strategy_arg, flags_from_args

KEYS = ("retrain.metric", "retrain.tolerance")   # flags for config keys: name, help and default from the field


def add_parser(sub) -> None:
    p = sub.add_parser("retrain", help="retrain on new data; publish only if not worse than the served version")
    p.add_argument("--name", required=True, help="model name in the repository (--set name=... wins)")
    p.add_argument("--models-dir", help="the model repository, an existing folder: shorthand of --set "
                                        "models_dir=... (which wins); default: the preset's models_dir, "
                                        "else models")
    p.add_argument("--allow-new", action="store_true",
                   help="when the model has no published version, train and publish its first one from "
                        "--preset (default: default) instead of refusing (exit 2)")
    p.add_argument("--data", help="an image folder, an .npz file or fashion_mnist (default: the data the "
                                  "served version recorded)")
    p.add_argument("--from-scratch", action="store_true",
                   help="fresh weights instead of fine-tuning the served version")
    p.add_argument("--preset", "--config", dest="preset",
                   help="the recipe (preset or YAML); default: the served version's recorded config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config value, e.g. --set retrain.epochs=2 (repeatable)")
    add_config_flags(p, KEYS)
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for another job on the same model (default: fail at once, exit 5)")
    p.add_argument("--then", choices=("optimize",),
                   help="optimize: also publish the promoted model compressed with the stages the served "
                        "version was made with (techniques.compression; else optimize.stages), if that "
                        "one is not worse either")
    p.add_argument("--canary", type=float, metavar="PERCENT",
                   help="label the published candidate the canary at this share (0-100) of the requests "
                        "that name no version, stable staying on the version it was compared with "
                        "(default: it becomes stable)")
    p.add_argument("--shadow", action="store_true",
                   help="with --canary: the candidate sees a copy of stable's traffic and answers none")
    add_strategy_arg(p)
    p.set_defaults(func=cmd_retrain)


def cmd_retrain(args) -> None:
    from training.jobs.retrain_job import RetrainJob, plan
    settings = flags_from_args(args, KEYS).get("retrain", {})
    job = RetrainJob(args.name, args.models_dir, args.data, args.from_scratch, args.preset, args.overrides,
                     settings, args.wait, then_optimize=args.then == "optimize", allow_new=args.allow_new,
                     canary=args.canary, shadow=args.shadow)
    plan(job)     # flags, paths, config keys and the repository checked before TensorFlow loads or a file is made
    from training.fit import distribute
    dist = distribute.make(args.strategy)   # first TensorFlow work: a multi-worker strategy sets up the runtime
    from training.jobs.retrain import retrain
    try:
        report = retrain(job, dist)
    except KeyboardInterrupt:
        print("interrupted: nothing was published; the next retrain starts afresh", file=sys.stderr)
        sys.exit(130)
    print(json.dumps(report))
    sys.exit(report["exit_code"])
