"""``POST /v1/feedback``: attach the true label to a captured request.

Body ``{"request_id": "<X-Request-ID of the answer>", "label": "<class name>"}``. The id
is the one every response carries in its ``X-Request-ID`` header (``-<index>`` appended
for the images of a batch, as the capture index names them). The label must be one of
the classes of the version that answered. Answers 200 with the line written to
``labels.jsonl`` plus the model and version; 404 when capture is off or the id was not
captured (the writer is asynchronous: an id captured a moment ago may take a few
milliseconds to appear); 400 for a body or label that is not usable.
``python -m training feedback`` does the same from a shell (``artifact/captures.py``).
"""
from __future__ import annotations

from flask import Blueprint, jsonify

from artifact import captures

from . import inference
from .errors import BadRequest, NotFound

bp = Blueprint("feedback", __name__)


@bp.post("/v1/feedback")
def feedback():
    directory = inference.config().capture_dir
    if not directory:
        raise NotFound("capture is off: set SERVICE_CAPTURE_DIR to keep requests that can be labelled")
    body, _ = inference.read_json()
    if not isinstance(body, dict) or set(body) != {"request_id", "label"}:
        raise BadRequest('the body must be {"request_id": "<id>", "label": "<class name>"}')
    try:
        written = captures.attach_label(directory, inference.config().model_root, body["request_id"], body["label"])
    except KeyError:
        raise NotFound(f"request {body['request_id']!r} was not captured") from None
    except captures.CaptureError as exc:
        raise BadRequest(str(exc)) from None
    return jsonify(written)
