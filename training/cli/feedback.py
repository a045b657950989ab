"""``python -m training feedback``: attach the true label to a captured request.

    python -m training feedback --capture-dir /srv/capture --request-id 9f2c... --label Bag

The same as the service's ``POST /v1/feedback``: the request id must be in the capture
index and the label one of the classes of the version that answered it (read from the
repository, ``--models-dir``). Appends one line to ``<capture-dir>/labels.jsonl`` (the
last label of an id wins) and prints it as one JSON line; a refusal is one ``error:``
line, exit 2.
"""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("feedback", help="attach the true label to a request the service captured")
    p.add_argument("--capture-dir", required=True, help="the service's SERVICE_CAPTURE_DIR")
    p.add_argument("--request-id", required=True, help="the answer's X-Request-ID (-<index> for a batch's image)")
    p.add_argument("--label", required=True, help="the true class, one of the answering version's classes")
    p.add_argument("--models-dir", default="models", help="the model repository (default: %(default)s)")
    p.set_defaults(func=cmd_feedback)


def cmd_feedback(args) -> None:
    from training.jobs.captures import feedback
    print(json.dumps(feedback(args.capture_dir, args.models_dir, args.request_id, args.label)))
