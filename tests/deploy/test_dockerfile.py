"""The Dockerfile offline: the serve image holds only what the tflite backend reads of each
model version (metadata.json, model.tflite), the full image every file, and the serve
image's model repository still lists and serves every version (scripts/container-smoke.sh
builds and runs the real images)."""
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from artifact import metadata as md
from artifact.versions import scan
from service import create_app
from support.builders import ROOT

SERVING_FILES = {md.FILENAME, "model.tflite"}


def _stages() -> dict:
    """Stage name -> its instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = stages.setdefault(match.group(1), [])
        elif current is not None:
            current.append(line)
    return stages


def _slim_copy(tmp_path) -> Path:
    """models/ as the serve-models stage leaves it: its RUN line run on a copy (with a
    retired version and a staging dir added, which the image must not serve either)."""
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models)
    shutil.copytree(ROOT / "models" / "fashion" / "1", models / "fashion" / ".retired" / "1")
    (models / "fashion" / ".tmp-abc").mkdir()
    (run,) = [line for line in _stages()["serve-models"] if line.startswith("RUN ")]
    subprocess.run(["sh", "-c", run[4:].replace("/models", str(models))], check=True)
    return models


def test_the_serve_image_takes_its_models_from_the_slim_stage_and_full_takes_them_all():
    stages = _stages()
    serve_copies = [line for line in stages["serve"] if line.startswith("COPY")]
    assert "COPY --from=serve-models /models/ models/" in serve_copies
    assert not any(re.search(r"\smodels/?\s", line) and "--from=serve-models" not in line for line in serve_copies)
    assert "COPY models/ models/" in stages["full"]
    assert not any("--from=serve " in line for line in stages["full"])   # not the slim models


def test_every_committed_version_names_the_tflite_file_the_serve_stage_keeps():
    for name, versions in scan(ROOT / "models").items():
        for version in versions:
            meta = md.read(ROOT / "models" / name / str(version))
            assert meta.formats.tflite is not None and meta.formats.tflite.path == "model.tflite", (name, version)


def test_the_slim_stage_keeps_metadata_and_tflite_of_every_published_version(tmp_path):
    models = _slim_copy(tmp_path)
    assert scan(models) == scan(ROOT / "models")
    for name, versions in scan(models).items():
        assert sorted(p.name for p in (models / name).iterdir()) == sorted(str(v) for v in versions)
        for version in versions:
            kept = {p.name for p in (models / name / str(version)).iterdir()}
            assert kept == SERVING_FILES, (name, version)


def test_a_version_without_saved_model_serves_on_tflite_and_auto(tmp_path):
    models = _slim_copy(tmp_path)
    pixels = np.zeros((1, 28, 28, 1), np.uint8).tolist()
    for backend in ("tflite", "auto"):
        app = create_app({"model_root": str(models), "backend": backend, "version_policy": "all",
                          "poll_interval_s": 0, "max_batch_size": 2})
        registry = app.extensions["model_registry"]
        registry.start()
        assert registry.wait_ready(120)
        client = app.test_client()
        for name, versions in scan(models).items():
            for version in versions:
                r = client.post(f"/v1/models/{name}/versions/{version}:predict", json={"instances": pixels})
                assert r.status_code == 200, r.get_json()
                assert r.headers["X-Model-Backend"] == "tflite"
                assert client.get(f"/v1/models/{name}/versions/{version}/metadata").status_code == 200
                assert client.get(f"/v2/models/{name}/versions/{version}").get_json()["platform"] == "tensorflow_lite"
        registry.drain()
