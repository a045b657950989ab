"""``python -m training drift``: is the served version still answering the traffic it was
published for? The service's captured answers compared with the version's reference.

    python -m training drift --name fashion --capture-dir captures            # the served version
    python -m training drift --name fashion --capture-dir captures --version 3 --out drift.png
    python -m training drift --name fashion --record-reference --version 3    # a version published
                                                                              # before references

Prints one JSON line: the test on every captured answer of the version (``p_value``, the
chi-squared and KS parts, ``drifted`` at ``alpha``), the same test on each run of
``--window`` consecutive answers (as the service's sliding window sees them), and the
plot's path (reference against captured class shares and top-1 probability histograms).
Refused with one ``error:`` line, exit 2, nothing written: no such repository or model,
no captures of the version, a version without a ``drift_reference``.
The repository is ``--models-dir`` or ``--set models_dir=...``, as for ``label``.
"""
from __future__ import annotations

import json

from artifact import drift as ad

from training.config import ConfigError
from training.cli.common import add_repository_args, repository_from_args
from training.jobs import drift


def add_parser(sub) -> None:
    p = sub.add_parser("drift", help="compare a served version's captured answers with its publish-time reference")
    add_repository_args(p, "with --record-reference: how long to wait for another job holding this model's lock")
    p.add_argument("--capture-dir", metavar="DIR", help="the service's capture folder (holding index.jsonl)")
    p.add_argument("--version", type=int, metavar="N", help="the version to report on (default: the served one)")
    p.add_argument("--window", type=int, default=500, metavar="N",
                   help="also test each run of N consecutive captures, as the service's window (default: %(default)s)")
    p.add_argument("--alpha", type=float, default=ad.ALPHA,
                   help="alarm when the p-value is below this (default: %(default)s)")
    p.add_argument("--out", metavar="PNG", help="the plot (default: drift-<name>-v<version>.png)")
    p.add_argument("--record-reference", action="store_true",
                   help="add a drift_reference to --version N, published without one, from its validation split")
    p.set_defaults(func=cmd_drift)


def cmd_drift(args) -> None:
    name, models_dir = repository_from_args(args)
    if not 0.0 < args.alpha < 1.0:
        raise ConfigError(f"--alpha must be between 0 and 1, got {args.alpha}")
    if args.record_reference:
        if args.version is None:
            raise ConfigError("--record-reference needs --version N")
        print(json.dumps(drift.record_reference(models_dir, name, args.version, wait=args.wait)))
        return
    if not args.capture_dir:
        raise ConfigError("drift needs --capture-dir DIR (the service's captures), or --record-reference")
    print(json.dumps(drift.report(models_dir, name, args.capture_dir, args.version, args.window, args.out,
                                  args.alpha)))
