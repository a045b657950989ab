"""Every endpoint of a real gunicorn process (tf backend) on a loopback port."""
import base64
import json
import re
import struct
import threading

import numpy as np
import pytest
import requests

from support.service import LABELS, fashion_data, metric, png_bytes, reference_top1

N = 6


@pytest.fixture(scope="module")
def images():
    x = fashion_data()["x_test"][:N]
    return x, reference_top1(x[..., None])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- TF Serving v1 ---------------------------------------------------------

def test_v1_status_and_metadata(tf_server):
    body = requests.get(f"{tf_server.url}/v1/models/fashion").json()
    assert body == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert requests.get(f"{tf_server.url}/v1/models/fashion/versions/1").json() == body
    meta = requests.get(f"{tf_server.url}/v1/models/fashion/versions/1/metadata").json()
    assert meta["model_spec"] == {"name": "fashion", "signature_name": "", "version": "1"}
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    assert sig["inputs"]["pixels"]["dtype"] == "DT_UINT8"
    assert [d["size"] for d in sig["inputs"]["pixels"]["tensor_shape"]["dim"]] == ["-1", "28", "28", "1"]
    assert [d["size"] for d in sig["outputs"]["probabilities"]["tensor_shape"]["dim"]] == ["-1", "10"]


def test_v1_predict_row_form_with_b64_and_pixel_arrays(tf_server, images):
    x, top1 = images
    instances = [{"b64": b64(png_bytes(img))} if i % 2 else img.tolist() for i, img in enumerate(x)]
    r = requests.post(f"{tf_server.url}/v1/models/fashion:predict", json={"instances": instances})
    assert r.status_code == 200, r.text
    preds = np.array(r.json()["predictions"])
    assert preds.shape == (N, 10)
    np.testing.assert_allclose(preds.sum(axis=1), 1.0, atol=1e-5)
    assert preds.argmax(axis=1).tolist() == top1.tolist()
    assert r.json()["model_version"] == "1" and r.headers["X-Model-Version"] == "1"


def test_v1_predict_columnar_form_and_named_rows(tf_server, images):
    x, top1 = images
    url = f"{tf_server.url}/v1/models/fashion/versions/1:predict"
    r = requests.post(url, json={"inputs": {"pixels": x[..., None].tolist()}})
    assert r.status_code == 200, r.text
    assert np.array(r.json()["outputs"]).argmax(axis=1).tolist() == top1.tolist()
    r = requests.post(url, json={"instances": [{"pixels": {"b64": b64(png_bytes(x[0]))}}]})
    assert np.argmax(r.json()["predictions"][0]) == top1[0]


def test_v1_batch_with_one_bad_image_fails_only_that_item(tf_server, images):
    x, top1 = images
    instances = [{"b64": b64(png_bytes(x[0]))}, {"b64": b64(b"not an image")}, x[2].tolist()]
    r = requests.post(f"{tf_server.url}/v1/models/fashion:predict", json={"instances": instances})
    assert r.status_code == 200
    preds = r.json()["predictions"]
    assert "cannot decode image" in preds[1]["error"]
    assert [np.argmax(preds[0]), np.argmax(preds[2])] == [top1[0], top1[2]]


# -- KServe V2 ---------------------------------------------------------------

def test_v2_server_and_model_metadata_and_health(tf_server):
    u = tf_server.url
    assert requests.get(f"{u}/v2").json()["extensions"] == ["classification", "binary_tensor_data"]
    assert requests.get(f"{u}/v2/health/live").json() == {"live": True}
    assert requests.get(f"{u}/v2/health/ready").json() == {"ready": True}
    meta = requests.get(f"{u}/v2/models/fashion").json()
    assert meta["versions"] == ["1"] and meta["platform"] == "tensorflow_savedmodel"
    assert meta["inputs"] == [{"name": "pixels", "datatype": "UINT8", "shape": [-1, 28, 28, 1]}]
    assert meta["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]
    assert meta["parameters"]["backend"] == "tf" and meta["parameters"]["labels"] == LABELS
    assert requests.get(f"{u}/v2/models/fashion/versions/1").json() == meta
    assert requests.get(f"{u}/v2/models/fashion/versions/1/ready").json()["ready"] is True
    assert requests.get(f"{u}/v2/models/fashion/ready").status_code == 200


def test_the_batch_limit_is_advertised_before_the_first_request(tf_server):
    u = tf_server.url
    meta = requests.get(f"{u}/v2/models/fashion").json()
    assert meta["parameters"]["max_batch_size"] == 16 and meta["parameters"]["max_items"] == 256
    config = requests.get(f"{u}/v2/models/fashion/config").json()
    assert config["name"] == "fashion" and config["max_batch_size"] == 16
    assert config["input"] == [{"name": "pixels", "data_type": "TYPE_UINT8", "format": "FORMAT_NHWC",
                                "dims": [28, 28, 1]}]
    assert config["output"] == [{"name": "probabilities", "data_type": "TYPE_FP32", "dims": [10]}]
    assert config["parameters"]["max_items"] == {"string_value": "256"}
    assert requests.get(f"{u}/v2/models/fashion/versions/1/config").json() == config
    assert requests.get(f"{u}/v2/models/nope/config").status_code == 404


def test_a_request_larger_than_the_model_batch_is_answered_whole(tf_server):
    x = fashion_data()["x_test"][:40, :, :, None]           # 40 images, max_batch_size 16
    _, count_before, total_before = _batch_stats(tf_server)
    req = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": list(x.shape), "data": x.ravel().tolist()}]}
    r = requests.post(f"{tf_server.url}/v2/models/fashion/infer", json=req)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["shape"] == [40, 10]
    assert np.array(out["data"]).reshape(40, 10).argmax(axis=1).tolist() == reference_top1(x).tolist()
    text, count, total = _batch_stats(tf_server)
    assert total - total_before == 40 and count - count_before >= 3      # chunks of at most 16
    assert metric(text, "service_batch_size_bucket", model="fashion", le="16.0") == count


@pytest.mark.parametrize("nested", [False, True])
def test_v2_infer_uint8(tf_server, images, nested):
    x, top1 = images
    data = x[..., None].tolist() if nested else x.ravel().tolist()
    req = {"id": "abc", "inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [N, 28, 28, 1], "data": data}]}
    r = requests.post(f"{tf_server.url}/v2/models/fashion/infer", json=req)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "abc" and body["model_name"] == "fashion" and body["model_version"] == "1"
    out = body["outputs"][0]
    assert out["name"] == "probabilities" and out["datatype"] == "FP32" and out["shape"] == [N, 10]
    assert np.array(out["data"]).reshape(N, 10).argmax(axis=1).tolist() == top1.tolist()


def test_v2_infer_bytes_with_classification_and_a_bad_item(tf_server, images):
    x, top1 = images
    req = {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [3],
                       "data": [b64(png_bytes(x[0])), {"b64": b64(png_bytes(x[1]))}, b64(b"junk")]}],
           "outputs": [{"name": "probabilities", "parameters": {"classification": 2}}]}
    r = requests.post(f"{tf_server.url}/v2/models/fashion/versions/1/infer", json=req)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["datatype"] == "BYTES" and out["shape"] == [3, 2]
    first = out["data"][0].split(":")
    assert int(first[1]) == top1[0] and first[2] == LABELS[top1[0]] and 0 < float(first[0]) <= 1
    assert int(out["data"][2].split(":")[1]) == top1[1]
    assert out["data"][4:] == ["nan:-1:error", "nan:-1:error"]
    assert "cannot decode" in json.loads(r.json()["parameters"]["errors"])["2"]


def test_v2_binary_tensor_extension_in_and_out(tf_server, images):
    x, top1 = images
    header = json.dumps({"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [N, 28, 28, 1],
                                     "parameters": {"binary_data_size": x.size}}],
                         "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]}).encode()
    r = requests.post(f"{tf_server.url}/v2/models/fashion/infer", data=header + x.tobytes(),
                      headers={"Inference-Header-Content-Length": str(len(header)),
                               "Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    n = int(r.headers["Inference-Header-Content-Length"])
    meta = json.loads(r.content[:n])
    assert meta["outputs"][0]["parameters"]["binary_data_size"] == N * 10 * 4
    probs = np.frombuffer(r.content[n:], "<f4").reshape(N, 10)
    assert probs.argmax(axis=1).tolist() == top1.tolist()
    # BYTES elements in Triton's binary form: 4-byte little-endian length, then the file.
    files = [png_bytes(img) for img in x[:2]]
    raw = b"".join(struct.pack("<I", len(f)) + f for f in files)
    header = json.dumps({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [2, 1],
                                     "parameters": {"binary_data_size": len(raw)}}]}).encode()
    r = requests.post(f"{tf_server.url}/v2/models/fashion/infer", data=header + raw,
                      headers={"Inference-Header-Content-Length": str(len(header))})
    assert np.array(r.json()["outputs"][0]["data"]).reshape(2, 10).argmax(1).tolist() == top1[:2].tolist()


# -- people: /predict and the page ------------------------------------------

def test_predict_raw_body_and_multipart(tf_server, images):
    x, top1 = images
    r = requests.post(f"{tf_server.url}/predict?top_k=3", data=png_bytes(x[0]),
                      headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == {"name": "fashion", "version": 1, "backend": "tf"}
    top = body["predictions"][0]["top_k"]
    assert len(top) == 3 and top[0]["label"] == LABELS[top1[0]] and top[0]["index"] == top1[0]
    assert top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"]
    files = [("file", (f"{i}.png", png_bytes(img), "image/png")) for i, img in enumerate(x[:3])]
    files.append(("other", ("broken.jpg", b"\xff\xd8\xff broken", "image/jpeg")))
    r = requests.post(f"{tf_server.url}/predict", files=files)
    preds = r.json()["predictions"]
    assert [p["top_k"][0]["index"] for p in preds[:3]] == top1[:3].tolist()
    assert len(preds[0]["top_k"]) == 5 and preds[3]["filename"] == "broken.jpg" and "error" in preds[3]


def test_index_page_is_served(tf_server):
    r = requests.get(tf_server.url + "/")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert 'fetch("/predict' in r.text and 'type="file"' in r.text


# -- operations --------------------------------------------------------------

def test_request_id_is_echoed_or_made(tf_server):
    r = requests.get(f"{tf_server.url}/v2/health/live", headers={"X-Request-ID": "trace-42"})
    assert r.headers["X-Request-ID"] == "trace-42"
    made = requests.get(f"{tf_server.url}/v2/health/live").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    r = requests.get(f"{tf_server.url}/v1/models/nope", headers={"X-Request-ID": "trace-43"})
    assert r.json()["request_id"] == "trace-43"
    assert '"request_id": "trace-42"' in tf_server.log()  # the JSON log line carries it


def _batch_stats(server):
    text = requests.get(f"{server.url}/metrics").text
    return (text, metric(text, "service_batch_size_count", model="fashion", version=1),
            metric(text, "service_batch_size_sum", model="fashion", version=1))


def test_concurrent_requests_are_batched_and_metrics_show_it(tf_server, images):
    x, _ = images
    _, count_before, total_before = _batch_stats(tf_server)
    barrier = threading.Barrier(8)
    codes = []

    def client(i):
        barrier.wait()
        codes.append(requests.post(f"{tf_server.url}/v1/models/fashion:predict",
                                   json={"instances": [x[i % N].tolist()]}).status_code)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 8
    text, count, total = _batch_stats(tf_server)
    assert total - total_before == 8          # eight one-image requests...
    assert count - count_before < 8           # ...in fewer model calls
    model = {"model": "fashion", "backend": "tf", "device": "CPU:0"}
    assert metric(text, "service_model_backend", version=1, **model) == 1
    assert metric(text, "service_model_loads_total", result="ok", **model) == 1
    assert metric(text, "service_model_load_seconds_count", **model) == 1
    assert metric(text, "service_inference_seconds_count", version=1, **model) == count
    assert metric(text, "service_queue_seconds_count", version=1, **model) >= 8
    assert metric(text, "service_requests_total", model="fashion", version=1,
                  endpoint="/v1/models/<name>:predict", status=200) >= 8
    assert metric(text, "service_request_duration_seconds_count", model="fashion",
                  endpoint="/v1/models/<name>:predict") >= 8
    assert metric(text, "service_ready") == 1 and metric(text, "service_workers") == 1


def test_admin_routes_are_hidden_without_a_token(tf_server):
    r = requests.post(f"{tf_server.url}/admin/reload", headers={"Authorization": "Bearer x"})
    assert r.status_code == 404 and "error" in r.json()
