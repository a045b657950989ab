"""``python -m training train``: train a preset or config; ``--publish`` publishes the result."""
from __future__ import annotations

import json

from training.cli.common import add_config_args, add_force_arg, add_strategy_arg, config_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a preset/config; --publish to publish the result")
    add_config_args(p)
    p.add_argument("--publish", action="store_true",
                   help="publish to <models_dir>/<name>/<next version> when done, if the publish check passes")
    add_force_arg(p)
    add_strategy_arg(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> None:
    cfg = config_from_args(args)           # config errors surface before TensorFlow loads
    from training.fit import distribute
    dist = distribute.make(args.strategy)   # first: a multi-worker strategy sets up the runtime
    from training.fit.train import train
    from training.publish.release import publish_result
    result = train(cfg, dist=dist)
    summary = {"test_accuracy": result.test_accuracy, "fit_seconds": round(result.wall_seconds, 1),
               "run_dir": str(result.run_dir), "budget": result.budget, "distribution": result.distribution}
    if args.publish:   # the chief alone publishes
        summary["published"] = (str(publish_result(cfg, result, preset=args.preset, force=args.force))
                                if dist.chief else None)
    print(json.dumps(summary))
