"""``python -m training captures``: labelled captures -> an image folder for ``retrain --data``.

    python -m training captures --capture-dir /srv/capture --out data/clothes-2 --merge-with data/clothes

Writes every capture that has a label (``POST /v1/feedback``, ``python -m training
feedback``) as ``<out>/<label>/capture-<request id>.png``, with, given ``--merge-with``, a
copy of the existing folder such that every old test image stays in the test split
(``training/jobs/captures.py`` says how). Refuses, with one ``error:`` line, exit 2 and
nothing written: a missing capture folder, nothing labelled, a label that is not a class
of the folder merged with, an output folder that is not empty. Prints one JSON line.
"""
from __future__ import annotations

import json

from training.config import DataConfig


def add_parser(sub) -> None:
    p = sub.add_parser("captures", help="turn labelled captures of the service into an image folder for retrain --data")
    p.add_argument("--capture-dir", required=True, help="the service's SERVICE_CAPTURE_DIR")
    p.add_argument("--out", required=True, help="the folder to write (new or empty)")
    p.add_argument("--merge-with", metavar="FOLDER",
                   help="the existing training folder (root/<class>/ or root/{train,val,test}/<class>/), copied "
                        "into --out beside the captures; its test images stay test images")
    defaults = DataConfig()
    p.add_argument("--test-split", type=float, default=defaults.test_split,
                   help="data.test_split the retrain will use (default: %(default)s)")
    p.add_argument("--validation-split", type=float, default=defaults.validation_split,
                   help="data.validation_split the retrain will use (default: %(default)s)")
    p.set_defaults(func=cmd_captures)


def cmd_captures(args) -> None:
    from training.jobs.captures import export
    print(json.dumps(export(args.capture_dir, args.out, args.merge_with, args.test_split, args.validation_split)))
