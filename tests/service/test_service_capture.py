"""Capture and feedback: a real gunicorn keeps every request (rate 1.0) as PNG files plus
index lines a person can read, labels attach to captured ids through POST /v1/feedback,
the budget drops the oldest images first, and with no SERVICE_CAPTURE_DIR nothing is kept."""
import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import requests

from artifact import captures, imaging
from artifact import metadata as md
from service.capture import Capture
from service.config import ServiceConfig
from service.metrics import Metrics
from service.registry import LoadedVersion
from service.repository import read_version
from support.service import LABELS, fashion_data, metric, png_bytes, server_for_copies, wait_for


@pytest.fixture(scope="module")
def capturing(tmp_path_factory, artifact):
    tmp = tmp_path_factory.mktemp("capture")
    # two workers: both write into the one folder
    server = server_for_copies(tmp, artifact, capture_dir=tmp / "captured", capture_rate=1.0, workers=2).wait()
    yield server, tmp / "captured"
    server.stop()


def _entries(folder: Path, n: int) -> list:
    assert wait_for(lambda: len(captures.read_index(folder)) >= n, timeout=20), captures.read_index(folder)
    return captures.read_index(folder)


def test_capture_is_off_by_default():
    settings = ServiceConfig.load(environ={})
    assert settings.capture_dir == ""
    assert not Capture(settings.capture_dir, settings.capture_rate, settings.capture_max_mb, None, Metrics()).enabled


def test_a_bad_capture_setting_is_refused_at_start():
    with pytest.raises(ValueError, match="capture_rate"):
        ServiceConfig.load(environ={"SERVICE_CAPTURE_RATE": "1.5"})
    with pytest.raises(ValueError, match="capture_max_mb"):
        ServiceConfig.load(environ={"SERVICE_CAPTURE_MAX_MB": "0"})


def test_every_answered_image_is_kept_with_its_request_id_version_and_answer(capturing):
    server, folder = capturing
    images = fashion_data()["x_test"][:3]
    one = requests.post(server.url + "/predict", data=png_bytes(images[0]),
                        headers={"Content-Type": "image/png", "X-Request-ID": "single-1"}, timeout=30)
    assert one.status_code == 200 and one.headers["X-Request-ID"] == "single-1"
    # A batch with a bad item in the middle: one entry per answered image, <id>-<index>.
    instances = [{"b64": base64.b64encode(png_bytes(images[1])).decode()}, {"b64": "bm90IGFuIGltYWdl"},
                 images[2].tolist()]
    batch = requests.post(server.url + "/v1/models/fashion:predict", json={"instances": instances},
                          headers={"X-Request-ID": "batch-7"}, timeout=30)
    assert batch.status_code == 200
    by_id = {e["request_id"]: e for e in _entries(folder, 3)}
    assert set(by_id) == {"single-1", "batch-7-0", "batch-7-2"}
    answers = {"single-1": one.json()["predictions"][0]["top_k"], "batch-7-0": batch.json()["predictions"][0],
               "batch-7-2": batch.json()["predictions"][2]}
    spec = md.InputSpec.of(28, 28, "L")
    for rid, pixels in (("single-1", images[0]), ("batch-7-0", images[1]), ("batch-7-2", images[2])):
        entry = by_id[rid]
        assert set(entry) == {"request_id", "time", "model", "version", "prediction", "confidence",
                              "probabilities", "file"}
        assert (entry["model"], entry["version"], entry["file"]) == ("fashion", 1, f"fashion/{rid}.png")
        assert datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).tzinfo is not None
        probs = np.array(entry["probabilities"])
        assert probs.shape == (10,) and abs(probs.sum() - 1) < 1e-3
        assert entry["prediction"] == LABELS[int(probs.argmax())] and entry["confidence"] == probs.max()
        # the image decodes, through the training decoder, to exactly the pixels served
        assert np.array_equal(imaging.decode_image(folder / entry["file"], spec)[..., 0], pixels)
    top = {t["label"]: t["probability"] for t in answers["single-1"]}
    assert by_id["single-1"]["prediction"] == max(top, key=top.get)
    assert np.allclose(by_id["batch-7-2"]["probabilities"], answers["batch-7-2"], atol=1e-5)
    scrape = requests.get(server.url + "/metrics", timeout=10).text
    assert metric(scrape, "service_captures_total", model="fashion", result="captured") >= 3


def test_two_workers_append_whole_lines_to_one_index(capturing):
    server, folder = capturing
    before = len(captures.read_index(folder))
    images = fashion_data()["x_test"][10:50]

    def send(i):
        with requests.Session() as session:     # a connection each: spread over both workers
            return session.post(server.url + "/predict", data=png_bytes(images[i]), timeout=60,
                                headers={"Content-Type": "image/png", "X-Request-ID": f"many-{i}"}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(send, range(len(images)))) == [200] * len(images)
    entries = _entries(folder, before + len(images))
    lines = (folder / captures.INDEX).read_text().splitlines()
    assert len(lines) == len(entries) == before + len(images)          # every line parsed: none interleaved
    assert {e["request_id"] for e in entries} >= {f"many-{i}" for i in range(len(images))}
    scrape = requests.get(server.url + "/metrics", timeout=10).text
    assert metric(scrape, "service_captures_total", result="dropped") == 0


def _feedback(server, body):
    return requests.post(server.url + "/v1/feedback", json=body, timeout=10)


def test_feedback_attaches_a_label_and_refuses_unknown_ids_and_classes(capturing):
    server, folder = capturing
    sent = requests.post(server.url + "/predict", data=png_bytes(fashion_data()["x_test"][5]),
                         headers={"Content-Type": "image/png"}, timeout=30)
    rid = sent.headers["X-Request-ID"]           # the service made one: the client reads it here
    assert wait_for(lambda: captures.find(folder, rid) is not None, timeout=20)

    unknown = _feedback(server, {"request_id": "never-sent", "label": "Bag"})
    assert unknown.status_code == 404 and "never-sent" in unknown.json()["error"]
    wrong = _feedback(server, {"request_id": rid, "label": "Spaceship"})
    assert wrong.status_code == 400 and "Spaceship" in wrong.json()["error"]
    for bad in ([rid, "Bag"], {"request_id": rid}, {"request_id": 3, "label": "Bag"}):
        answer = _feedback(server, bad)
        assert answer.status_code == 400 and "error" in answer.json(), bad
    assert captures.read_labels(folder) == {}

    for label in ("Bag", "Sandal"):            # the last one wins
        ok = _feedback(server, {"request_id": rid, "label": label})
        assert ok.status_code == 200
        assert (ok.json()["request_id"], ok.json()["label"], ok.json()["version"]) == (rid, label, 1)
    assert captures.read_labels(folder) == {rid: "Sandal"}
    lines = (folder / captures.LABELS).read_text().splitlines()
    assert [json.loads(line)["label"] for line in lines] == ["Bag", "Sandal"]


def test_feedback_is_404_when_capture_is_off(tflite_server):
    answer = _feedback(tflite_server, {"request_id": "x", "label": "Bag"})
    assert answer.status_code == 404 and "SERVICE_CAPTURE_DIR" in answer.json()["error"]


def test_the_budget_drops_the_oldest_images_and_their_index_lines_whichever_worker_wrote_them(tmp_path, artifact):
    model_dir = tmp_path / "models" / "fashion"
    model_dir.mkdir(parents=True)
    (model_dir / "1").symlink_to(artifact)
    lv = LoadedVersion(read_version(model_dir, 1), "tflite", "cpu", batcher=None)
    budget_mb = 0.02
    # two writers on one folder, as two gunicorn workers: each must count the other's images too
    workers = [(Capture(str(tmp_path / "cap"), 1.0, budget_mb, None, m), m) for m in (Metrics(), Metrics())]
    rng = np.random.default_rng(0)
    folder = tmp_path / "cap"

    def used():
        return sum(p.stat().st_size for p in (folder / "fashion").iterdir()) + (folder / captures.INDEX).stat().st_size

    most = 0
    for i in range(80):     # noise: each PNG about 1 KB, far more than 20 KB in all
        pixels = rng.integers(0, 256, (28, 28, 1), dtype=np.uint8)
        capture, metrics = workers[i % 2]
        capture.offer(lv, f"r{i:02d}", [pixels], [np.full(10, 0.1, np.float32)])
        wait_for(lambda: metric(metrics.render().decode(), "service_captures_total", result="captured") > i // 2,
                 timeout=10)    # in turn, so "oldest" is well defined
        most = max(most, used())
    assert most <= budget_mb * 1024 * 1024       # after every write, not only at the end

    def written():
        return sum(metric(m.render().decode(), "service_captures_total", result="captured") for _, m in workers) == 80
    assert wait_for(written, timeout=20)
    entries = captures.read_index(folder)
    on_disk = sorted(p.name for p in (folder / "fashion").iterdir())
    assert 0 < len(on_disk) < 80 and "r79.png" in on_disk and "r00.png" not in on_disk
    kept = [e["request_id"] for e in entries]
    assert kept == sorted(kept) and kept[-1] == "r79"          # the newest stay, in order
    assert sorted(Path(e["file"]).name for e in entries) == on_disk   # no line without its file


def test_a_folder_that_cannot_be_written_costs_the_request_nothing_and_is_counted(tmp_path, artifact):
    model_dir = tmp_path / "models" / "fashion"
    model_dir.mkdir(parents=True)
    (model_dir / "1").symlink_to(artifact)
    lv = LoadedVersion(read_version(model_dir, 1), "tflite", "cpu", batcher=None)
    (tmp_path / "a-file").write_text("not a folder")
    metrics = Metrics()
    capture = Capture(str(tmp_path / "a-file" / "captures"), 1.0, 1.0, None, metrics)
    capture.offer(lv, "r1", [np.zeros((28, 28, 1), np.uint8)], [np.full(10, 0.1, np.float32)])   # no exception
    assert wait_for(lambda: metric(metrics.render().decode(), "service_captures_total", result="dropped") == 1)
