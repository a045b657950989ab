"""The default model (``POST /predict`` without ``?model=``): folders with no servable version
are never picked, the choice is logged at start, and it follows the repository on reload."""
import dataclasses
import json
import shutil

import requests

from artifact import metadata as md
from artifact.versions import publish
from service import create_app
from support.service import Server, fashion_data, png_bytes, wait_for

PNG = png_bytes(fashion_data()["x_test"][0])


def publish_as(artifact, root, name: str) -> None:
    """The artifact published as the next version of model ``name`` (a version names its model)."""
    def write(staging):
        shutil.copytree(artifact, staging, dirs_exist_ok=True)
        return dataclasses.replace(md.read(staging), name=name)
    publish(root, name, write)


def predict(server) -> requests.Response:
    return requests.post(server.url + "/predict", data=PNG, headers={"Content-Type": "image/png"})


def default_lines(server) -> list:
    """The ``default_model`` events of the server's JSON log, oldest first."""
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "default_model"]


def stray_repository(root, artifact) -> None:
    """A good model 'fashion' behind names that sort first: an empty folder, the folder an
    old refused retrain left with only its ``.lock``, and a plain file."""
    (root / "aaa-empty").mkdir(parents=True)
    (root / "0typo").mkdir()
    (root / "0typo" / ".lock").write_text("")
    (root / "0-notes.txt").write_text("not a model")
    shutil.copytree(artifact, root / "fashion" / "1")


def test_a_folder_with_no_version_is_never_the_default_and_the_start_log_names_it(tmp_path, artifact):
    root = tmp_path / "models"
    stray_repository(root, artifact)
    server = Server(root, tmp_path / "server.log", backend="tflite", poll_interval_s=0.2).wait()
    try:
        r = predict(server)
        assert r.status_code == 200, r.text
        assert r.json()["model"]["name"] == "fashion" and r.headers["X-Model-Version"] == "1"
        first = default_lines(server)[0]
        assert first["model"] == "fashion" and first["level"] == "info", server.log()
        assert "aaa-empty" in first["reason"] and "0typo" in first["reason"]
        assert requests.get(server.url + "/v2/health/ready").status_code == 200

        # The empty folder gains a version: it sorts first, so it becomes the default once
        # that version has loaded (within a poll), and the change is logged.
        publish_as(artifact, root, "aaa-empty")
        assert wait_for(lambda: predict(server).json()["model"]["name"] == "aaa-empty"), server.log()
        assert default_lines(server)[-1]["model"] == "aaa-empty"
        r = requests.post(server.url + "/predict?model=fashion", data=PNG, headers={"Content-Type": "image/png"})
        assert r.json()["model"]["name"] == "fashion"
    finally:
        server.stop()


def test_an_explicit_default_wins_and_stray_folders_are_not_models(tmp_path, artifact):
    root = tmp_path / "models"
    stray_repository(root, artifact)
    publish_as(artifact, root, "aaa-empty")
    app = create_app({"model_root": str(root), "backend": "tflite", "poll_interval_s": 0,
                      "default_model": "fashion"})
    registry = app.extensions["model_registry"]
    registry.start()
    assert registry.wait_ready(60)
    assert registry.default_model() == "fashion"              # though 'aaa-empty' now serves and sorts first
    assert registry.names() == ["aaa-empty", "fashion"]       # the empty folder, the lock folder and the file are not
    r = app.test_client().post("/predict", data=PNG, headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and r.get_json()["model"]["name"] == "fashion"


def test_only_stray_folders_is_no_model_not_a_503_loop(tmp_path):
    root = tmp_path / "models"
    (root / "0typo").mkdir(parents=True)
    (root / "0typo" / ".lock").write_text("")
    app = create_app({"model_root": str(root), "backend": "tflite", "poll_interval_s": 0})
    registry = app.extensions["model_registry"]
    registry.start()
    assert registry.wait_scanned(30)
    client = app.test_client()
    r = client.post("/predict", data=PNG, headers={"Content-Type": "image/png"})
    assert r.status_code == 404 and "no model in the repository" in r.get_json()["error"]
    assert "no model in the repository" in client.get("/v2/health/ready").get_json()["error"]
