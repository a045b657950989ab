"""Drift on the training side: the reference a publish records (training.publish.release), and
``python -m training drift`` on a capture index written in the service's format."""
import json
import shutil

import numpy as np
import pytest

from artifact import drift as ad
from artifact import metadata as md
from artifact.litert import LiteRTRunner
from training.cli.main import main
from training.publish.release import publish_result

from support.builders import FIXTURE, ROOT, trained_tiny

SMALL_VERSION = ROOT / "models" / "fashion-small" / "2"     # a committed version, published without a reference


@pytest.mark.slow
def test_a_publish_records_the_served_files_answers_on_the_validation_split(tmp_path, capsys):
    """And ``drift --record-reference`` computes the same block for a version published without
    one, adding it and changing no other byte of metadata.json."""
    cfg, result = trained_tiny(tmp_path, epochs=1)
    directory = publish_result(cfg, result, force=True)
    meta = md.read(directory)
    block = meta.extra[ad.BLOCK]
    assert block["split"] == "validation" and block["format"] == "tflite"
    assert block["examples"] == len(result.validation)
    served = LiteRTRunner(directory / "model.tflite").predict(result.validation.x)
    assert block == ad.reference_block(served, meta.labels, "validation", "tflite")
    assert meta.drift_reference.examples == len(result.validation)

    path = directory / md.FILENAME
    published = path.read_text()
    data = json.loads(published)
    del data[ad.BLOCK]
    path.write_text(json.dumps(data, indent=2))                    # as a version from before references
    args = ["drift", "--name", cfg.name, "--models-dir", str(cfg.models_dir)]
    recorded = run([*args, "--record-reference", "--version", directory.name], capsys)
    assert recorded["examples"] == len(result.validation)
    assert path.read_text() == published                           # the same block, last, as publish wrote it
    with pytest.raises(SystemExit) as exit_:                       # once only
        main([*args, "--record-reference", "--version", directory.name])
    assert exit_.value.code == 2 and "already has a drift_reference" in capsys.readouterr().err


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """models/fashion/1: the small committed version with a reference from its own answers on
    the fixture's training images; the fixture's test images and noise as its answers."""
    root = tmp_path_factory.mktemp("drift")
    version = root / "models" / "fashion" / "1"
    shutil.copytree(SMALL_VERSION, version, ignore=shutil.ignore_patterns("saved_model", "keras_weights.h5"))
    meta = md.read(version)
    runner = LiteRTRunner(version / "model.tflite")
    with np.load(FIXTURE) as data:                          # [N, 28, 28] uint8
        x_train, x_test = data["x_train"][..., None], data["x_test"][..., None]
    md.write(version, meta.updated({ad.BLOCK: ad.reference_block(runner.predict(x_train[:1000]), meta.labels)}))
    noise = np.random.default_rng(0).integers(0, 256, (200, 28, 28, 1), dtype=np.uint8)
    return root, runner.predict(x_test[:300]), runner.predict(noise), meta.labels


def write_index(folder, rows, labels, model="fashion", version=1):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "index.jsonl", "a") as f:
        for i, p in enumerate(rows):
            f.write(json.dumps({"request_id": f"r{i}", "time": "2026-01-01T00:00:00Z", "model": model,
                                "version": version, "prediction": labels[int(np.argmax(p))],
                                "confidence": float(np.max(p)), "probabilities": [float(v) for v in p],
                                "file": f"images/r{i}.png"}) + "\n")


def run(argv, capsys):
    main(argv)
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_drift_reports_clean_captures_quiet_and_a_foreign_mix_drifted(watched, tmp_path, capsys):
    root, clean, noise, labels = watched
    quiet, mixed = tmp_path / "quiet", tmp_path / "mixed"
    write_index(quiet, clean, labels)
    write_index(quiet, noise[:30], labels, version=2)          # another version's entries are left out
    write_index(quiet, clean[:20], labels, model="other")      # and another model's
    args = ["drift", "--name", "fashion", "--models-dir", str(root / "models"), "--window", "100"]
    report = run([*args, "--capture-dir", str(quiet), "--out", str(tmp_path / "quiet.png")], capsys)
    assert report["version"] == 1 and report["captures"] == 300 and not report["drifted"]
    assert report["p_value"] > ad.ALPHA and report["windows"]["tested"] == 3
    assert (tmp_path / "quiet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    write_index(mixed, np.concatenate([clean[:240], noise[:60]]), labels)     # 20% noise
    report = run([*args, "--capture-dir", str(mixed), "--out", str(tmp_path / "mixed.png")], capsys)
    assert report["drifted"] and report["p_value"] < ad.ALPHA
    assert report["p_value"] == pytest.approx(min(1.0, 2 * min(report["chi2_p"], report["ks_p"])), rel=1e-3)
    assert report["windows"]["alarms"] >= 1


def test_a_version_without_a_reference_is_refused_with_the_command_that_records_one(tmp_path, capsys):
    root = tmp_path / "models"
    shutil.copytree(SMALL_VERSION, root / "fashion" / "1", ignore=shutil.ignore_patterns("saved_model"))
    before = (root / "fashion" / "1" / "metadata.json").read_bytes()
    with pytest.raises(SystemExit) as exit_:
        main(["drift", "--name", "fashion", "--models-dir", str(root), "--capture-dir", str(tmp_path)])
    assert exit_.value.code == 2 and "--record-reference --version 1" in capsys.readouterr().err
    assert (root / "fashion" / "1" / "metadata.json").read_bytes() == before
