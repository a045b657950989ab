"""``python -m training label``: which version answers by default (stable) and which one
takes a share of the traffic first (canary), changed without a restart.

    python -m training label --name fashion --list                     # as written and as they apply now
    python -m training label --name fashion --stable 3                 # version 3 answers by default
    python -m training label --name fashion --canary 4 --percent 30    # 30% of unpinned requests to 4
    python -m training label --name fashion --canary 4 --shadow        # 4 sees a copy, answers none
    python -m training label --name fashion --promote                  # the canary becomes stable
    python -m training label --name fashion --abort                    # the canary is removed

The labels live in ``<models_dir>/<name>/labels.json`` (``artifact.labels``), written
atomically under the model's lock (exit 5 when another job holds it past ``--wait``);
the service follows them within one poll. A bad request (no such repository, model or
published version, a percentage outside 0-100, promote or abort with no canary) is one
``error:`` line, exit 2, with nothing written. Prints one JSON line: the labels as
written (``written``), as they apply to the versions published now (``labels``), and,
after a change, what was written before (``before``).
"""
from __future__ import annotations

import json

from training.config import ConfigError
from training.jobs import labels as jl
from training.cli.common import add_repository_args, repository_from_args


def add_parser(sub) -> None:
    p = sub.add_parser("label", help="set the stable and canary versions of a model; promote or abort a canary")
    add_repository_args(p, "how long to wait for another job holding this model's lock")
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--list", action="store_true", help="only show the labels")
    action.add_argument("--stable", type=int, metavar="N", help="version N answers requests that name no version")
    action.add_argument("--canary", type=int, metavar="N",
                        help="version N takes --percent of the requests that name no version")
    action.add_argument("--promote", action="store_true", help="the canary becomes stable; no canary after")
    action.add_argument("--abort", action="store_true", help="remove the canary; stable answers everything")
    p.add_argument("--percent", type=float, metavar="P",
                   help="with --canary: share of unpinned requests it answers, 0-100 (default: 10; 0 with --shadow)")
    p.add_argument("--shadow", action="store_true",
                   help="with --canary: it answers none but sees a copy of stable's traffic")
    p.set_defaults(func=cmd_label)


def cmd_label(args) -> None:
    if args.canary is None and (args.percent is not None or args.shadow):
        raise ConfigError("--percent and --shadow go with --canary N")
    name, models_dir = repository_from_args(args)
    jl.require_model(models_dir, name)
    if args.list:
        print(json.dumps(jl.state(models_dir, name)))
        return
    if args.stable is not None:
        apply = jl.set_stable(args.stable)
    elif args.canary is not None:
        percent = args.percent if args.percent is not None else (0.0 if args.shadow else 10.0)
        apply = jl.set_canary(args.canary, percent, args.shadow)
    else:
        apply = jl.promote if args.promote else jl.abort
    print(json.dumps(jl.change(models_dir, name, apply, wait=args.wait)))
