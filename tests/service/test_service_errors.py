"""Every row of the error table, against a real gunicorn process; always JSON."""
import base64

import pytest
import requests

from support.service import fashion_data, png_bytes

PIXELS = fashion_data()["x_test"][0]


def expect_error(r, status):
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert isinstance(body["error"], str) and body["error"]
    assert "Traceback" not in r.text and "File \"" not in r.text
    return body["error"]


V1 = "/v1/models/fashion:predict"
V2 = "/v2/models/fashion/infer"


@pytest.mark.parametrize("path, payload, message", [
    (V1, b"{not json", "malformed JSON"),
    (V1, b'{"instances": "x"}', "list"),
    (V1, b'{"instances": [[1, 2, 3]]}', "shape"),
    (V1, b'{"instances": [[["a"]]]}', "numbers"),
    (V1, b'{"instances": [{"b64": "@@@"}]}', "base64"),
    (V1, b'{"instances": [{"b64": "aGVsbG8="}]}', "cannot decode"),
    (V1, b'{"instances": []}', "no inputs"),
    (V1, b'{"instances": [], "inputs": []}', "exactly one"),
    (V1, b'{"signature_name": "other", "instances": [[1]]}', "signature"),
    (V2, b'{"inputs": [{"name": "p", "datatype": "FP32", "shape": [1, 28, 28, 1], "data": [0]}]}', "datatype"),
    (V2, b'{"inputs": [{"name": "p", "datatype": "UINT8", "shape": [1, 27, 28, 1], "data": [0]}]}', "shape"),
    (V2, b'{"inputs": [{"name": "p", "datatype": "UINT8", "shape": [1, 28, 28, 1], "data": [1, 2]}]}', "values"),
    (V2, b'{"inputs": [{"name": "p", "datatype": "UINT8", "shape": [1, 28, 28, 1], "data": [999]}]}', "0..255"),
    (V2, b'{"inputs": [{"name": "p", "datatype": "BYTES", "shape": [1], "data": ["aGVsbG8="]}]}', "cannot decode"),
    (V2, b'{"inputs": [{"name": "p", "datatype": "BYTES", "shape": [1], "data": [1]}], '
         b'"outputs": [{"name": "logits"}]}', "output"),
    (V2, b'[]', "inputs"),
    (V2, b'{"inputs": [{"name": "p", "datatype": "UINT8", "shape": [1, 28, 28, 1], "data": [1180591620717411303424]}]}',
     "integers"),
    (V1, b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    (V2, b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    (V2, b'{"inputs": [{"name": "p", "datatype": "UINT8", "shape": [1, 28, 28, 1], "data": '
         + b"[" * 200 + b"]" * 200 + b"}]}", "evenly nested"),
])
def test_400_bad_requests(tf_server, path, payload, message):
    r = requests.post(tf_server.url + path, data=payload, headers={"Content-Type": "application/json"})
    assert message in expect_error(r, 400)


def test_400_every_item_of_a_batch_bad(tf_server):
    bad = {"b64": base64.b64encode(b"junk").decode()}
    r = requests.post(tf_server.url + V1, json={"instances": [bad, bad]})
    assert "item 0" in expect_error(r, 400)
    r = requests.post(tf_server.url + "/predict?top_k=zero", data=png_bytes(PIXELS),
                      headers={"Content-Type": "image/png"})
    assert "top_k" in expect_error(r, 400)


@pytest.mark.parametrize("method, path", [
    ("get", "/v1/models/unknown"), ("get", "/v1/models/fashion/versions/7"),
    ("get", "/v1/models/fashion/versions/7/metadata"), ("post", "/v1/models/unknown:predict"),
    ("get", "/v2/models/unknown"), ("get", "/v2/models/fashion/versions/7/ready"),
    ("post", "/v2/models/fashion/versions/7/infer"), ("post", "/predict?model=unknown"),
    ("get", "/no/such/path"),
])
def test_404_unknown_model_version_or_path(tf_server, method, path):
    kwargs = {"json": {"instances": [PIXELS.tolist()]}} if "predict" in path and "/v1" in path else {}
    if path.startswith("/predict"):
        kwargs = {"data": png_bytes(PIXELS), "headers": {"Content-Type": "image/png"}}
    if path.endswith("/infer"):
        kwargs = {"json": {"inputs": []}}
    expect_error(getattr(requests, method)(tf_server.url + path, **kwargs), 404)


def test_405_is_json_too(tf_server):
    r = requests.delete(tf_server.url + "/v2/health/live")
    expect_error(r, 405)
    assert "GET" in r.headers["Allow"]


def test_413_body_over_the_limit(tf_server):
    # The tf server runs with the default limit of 8 MiB.
    r = requests.post(tf_server.url + "/predict", data=b"\0" * (9 * 1024 * 1024),
                      headers={"Content-Type": "image/png"})
    assert "limit" in expect_error(r, 413)


@pytest.mark.parametrize("path, content_type", [
    (V1, "text/plain"), (V2, "application/x-www-form-urlencoded"), ("/predict", "application/json"),
    ("/predict", "text/csv"),
])
def test_415_unsupported_content_type(tf_server, path, content_type):
    r = requests.post(tf_server.url + path, data=b"{}", headers={"Content-Type": content_type})
    assert "Content-Type" in expect_error(r, 415)


def test_500_is_json_without_internals(tf_server):
    # The "faulty" model raises inside its graph on an all-white image.
    white = [[255] * 28] * 28
    r = requests.post(tf_server.url + "/v1/models/faulty:predict", json={"instances": [white]})
    assert expect_error(r, 500) == "internal server error"
    assert "assert" not in r.text.lower() and "tensorflow" not in r.text.lower()
    assert r.json()["request_id"] == r.headers["X-Request-ID"]
    # The same model answers normal input, and the server keeps serving.
    ok = requests.post(tf_server.url + "/v1/models/faulty:predict", json={"instances": [PIXELS.tolist()]})
    assert ok.status_code == 200


def test_504_deadline_exceeded(tf_server):
    # KServe/Triton request parameter "timeout" in microseconds: 1 us is over before the batch runs.
    req = {"inputs": [{"name": "p", "datatype": "UINT8", "shape": [1, 28, 28, 1], "data": PIXELS.ravel().tolist()}],
           "parameters": {"timeout": 1}}
    assert "deadline" in expect_error(requests.post(tf_server.url + V2, json=req), 504)
