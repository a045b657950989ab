"""``python -m training rollback``: take the newest version(s) out of service, or put one back.

    python -m training rollback --name fashion            # retire the newest version
    python -m training rollback --name fashion --to 3     # retire every version above 3
    python -m training rollback --name fashion --restore 4
    python -m training rollback --name fashion --restore 4 --as-stable   # and label it stable
    python -m training rollback --name fashion --list

Retired versions move into ``<models_dir>/<name>/.retired/`` (never deleted);
the service, which serves the stable version (the newest published one when no
label pins it, see ``training.jobs.labels``), falls back within one poll, without
a restart. Retiring the stable version moves the label first (to ``--to N``, else
the newest remaining version that is not the canary); retiring the canary removes
it. Restoring changes no label unless ``--as-stable`` asks. Prints one JSON line
saying what is served now, labels included.
The repository is ``--models-dir`` or ``--set models_dir=...`` (the spelling the
other commands take; it wins when both are given).
"""
from __future__ import annotations

import json

from artifact.locks import model_lock
from artifact.versions import RepositoryError, history, restore, retire, retired, versions

from artifact import labels as lb

from training.config import ConfigError
from training.cli.common import add_repository_args, repository_from_args
from training.jobs.labels import after_retire, rewrite, set_stable
from training.jobs.repository import require_repository


def add_parser(sub) -> None:
    p = sub.add_parser("rollback", help="retire the newest version (the service falls back), or restore one")
    add_repository_args(p, "how long to wait for a running retrain of this model")
    action = p.add_mutually_exclusive_group()
    action.add_argument("--to", type=int, metavar="N", help="retire every published version above N")
    action.add_argument("--restore", type=int, metavar="N", help="put retired version N back into service")
    action.add_argument("--list", action="store_true", help="only show published and retired versions")
    p.add_argument("--as-stable", action="store_true",
                   help="with --restore: label the restored version stable (default: labels unchanged)")
    p.add_argument("--reason", default="", help="why, kept in .retired/history.jsonl")
    p.set_defaults(func=cmd_rollback)


def state(models_dir, name: str) -> dict:
    published = versions(models_dir, name)
    labels = lb.effective(lb.read(models_dir, name), published)
    return {"model": name, "served": labels.stable, "published": published,
            "retired": retired(models_dir, name), "labels": labels.to_dict()}


def cmd_rollback(args) -> None:
    name, models_dir = repository_from_args(args)
    require_repository(models_dir)
    if not (versions(models_dir, name) or retired(models_dir, name)):
        raise RepositoryError(f"no model '{name}' under {models_dir}")
    if args.as_stable and args.restore is None:
        raise ConfigError("--as-stable goes with --restore N")
    if args.list:
        print(json.dumps({**state(models_dir, name), "history": history(models_dir, name)}))
        return
    done = {}
    with model_lock(models_dir, name, job="rollback", wait=args.wait):
        if args.restore is not None:
            restore(models_dir, name, args.restore, args.reason)
            done["restored"] = args.restore
            if args.as_stable:
                rewrite(models_dir, name, set_stable(args.restore))
        else:
            published = versions(models_dir, name)
            if args.to is not None and args.to not in published:
                raise RepositoryError(f"model '{name}' has no published version {args.to} to roll back to "
                                      f"(published: {published})")
            # Oldest first, so the newest is served until the last move and the
            # service never loads a version in between.
            doomed = [v for v in published if v > args.to] if args.to is not None else published[-1:]
            if doomed and len(doomed) == len(published):
                raise RepositoryError(f"version {doomed[-1]} is the only published version of '{name}'; retiring "
                                      "it would leave the service nothing to serve")
            # The labels move first, onto versions that stay, so no reader follows a label
            # to a version that is leaving.
            rewrite(models_dir, name, lambda labels, now: after_retire(labels, now, doomed, args.to))
            for version in doomed:
                retire(models_dir, name, version, args.reason)
            done["retired_now"] = doomed
    print(json.dumps({**state(models_dir, name), **done}))
