"""``retrain``: a better candidate is published with its lineage, a worse or unlearned one is
refused, and a job killed while publishing leaves a clean repository for the next one."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from artifact import metadata as md
from artifact.locks import LockBusy, model_lock
from artifact.versions import versions

from support.builders import FIXTURE, ROOT
from training.jobs.promotion import EXIT_CHECK, EXIT_PUBLISHED, EXIT_WORSE
from training.jobs.retrain import retrain
from training.jobs.retrain_job import RetrainJob

# Learns the fixture in seconds: 5 epochs reach about 80% test accuracy.
QUICK = ["model.head_pool=flatten", "augment.enabled=false", "train.batch_size=32", "train.verbose=0"]


def job(tmp_path, *overrides, **kw) -> RetrainJob:
    return RetrainJob("tiny", str(tmp_path / "models"), preset=kw.pop("preset", None),
                      overrides=[f"output_dir={tmp_path / 'runs'}", *overrides], **kw)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """v1 from little data, then v2 retrained from it on all the data: (tmp dir, the v2 report)."""
    tmp = tmp_path_factory.mktemp("retrain")
    first = retrain(job(tmp, *QUICK, "train.epochs=2", "data.limit=200", preset="tiny"))
    assert first["exit_code"] == EXIT_PUBLISHED and first["start"] == {"from": "scratch"}, first
    assert first["current"] is None and first["published_version"] == 1
    second = retrain(job(tmp, "data.limit=null", "train.epochs=5"))
    return tmp, second


def test_a_better_candidate_is_published_with_its_lineage(served):
    tmp, report = served
    assert report["exit_code"] == EXIT_PUBLISHED and report["decision"] == "publish", report
    assert report["start"] == {"from": "version", "version": 1} and report["published_version"] == 2
    for fmt in ("saved_model", "tflite"):
        assert report["candidate"][fmt]["accuracy"] > report["current"][fmt]["accuracy"]
    assert report["data"]["train"]["examples"] == 1440 and report["data"]["test"]["examples"] == 400
    meta = md.read(tmp / "models" / "tiny" / "2")
    assert meta.parent["version"] == 1 and meta.extra["retrain"]["current_version"] == 1
    assert meta.dataset["test"]["sha256"] == report["data"]["test"]["sha256"]
    # The recipe is stored as recorded (not the lowered fine-tuning rate), so retrains do not compound it.
    assert meta.config["train"]["learning_rate"] == md.read(tmp / "models" / "tiny" / "1").config["train"]["learning_rate"]
    assert meta.extra["training"]["learning_rate"] == pytest.approx(0.1 * meta.config["train"]["learning_rate"])
    assert meta.metrics["tflite"]["accuracy"] == pytest.approx(report["candidate"]["tflite"]["accuracy"], abs=1e-4)


def test_a_worse_candidate_is_refused_and_nothing_is_published(served):
    tmp, _ = served
    report = retrain(job(tmp, "train.epochs=2", "data.limit=200", from_scratch=True))
    assert report["exit_code"] == EXIT_WORSE and report["decision"] == "refused: worse than current", report
    assert report["publish_check"]["passed"] and report["published_version"] is None
    assert all(not c["passed"] and c["accuracy_delta"] < 0 for c in report["comparisons"])
    assert versions(tmp / "models", "tiny") == [1, 2]
    assert not [p for p in (tmp / "models" / "tiny").iterdir() if p.name.startswith(".tmp-")]


def test_an_unlearned_candidate_is_refused_by_the_publish_check_exit_3(served, tmp_path):
    tmp, _ = served
    with np.load(FIXTURE) as f:
        data = {k: f[k] for k in f.files}
    data["y_train"] = np.random.default_rng(0).permutation(data["y_train"])   # labels carry no signal
    noise = tmp_path / "noise.npz"
    np.savez(noise, **data)
    run = subprocess.run([sys.executable, "-m", "training", "retrain", "--name", "tiny", "--models-dir",
                          str(tmp / "models"), "--data", str(noise), "--from-scratch",
                          "--set", "train.epochs=2", "--set", f"output_dir={tmp_path / 'runs'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == EXIT_CHECK, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert report["decision"] == "refused: publish check" and not report["publish_check"]["passed"]
    assert report["data"]["path"] == str(noise) and versions(tmp / "models", "tiny") == [1, 2]


def test_usage_errors_are_one_line_exit_2(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "training", "retrain", "--name", "tiny",
                               "--models-dir", str(tmp_path), *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
    for args, message in ((["--data", str(tmp_path / "missing")], "is neither an image folder"),
                          (["--set", "train.nope=1"], "unknown config key 'train.nope'")):
        result = run(*args)
        assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error: ")
        assert message in result.stderr and "Traceback" not in result.stderr


def test_kill_9_while_publishing_leaves_a_clean_repository_and_the_next_retrain_runs(served, tmp_path):
    tmp, _ = served
    model_dir = tmp / "models" / "tiny"
    proc = subprocess.Popen([sys.executable, "-m", "training", "retrain", "--name", "tiny", "--models-dir",
                             str(tmp / "models"), "--set", "train.epochs=1", "--set", f"output_dir={tmp_path}"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 240
        while not list(model_dir.glob(".tmp-*")) and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.05)
        assert proc.poll() is None, "the retrain ended before it staged a version"
        # A second job meanwhile is refused, naming the one that runs.
        with pytest.raises(LockBusy, match=f"pid {proc.pid} .*retrain"):
            with model_lock(tmp / "models", "tiny", "retrain"):
                pass
        os.kill(proc.pid, signal.SIGKILL)        # mid-publish: the staged version is being written
    finally:
        proc.kill()
        proc.wait()
    assert versions(tmp / "models", "tiny") == [1, 2]
    leftovers = list(model_dir.glob(".tmp-*"))
    assert leftovers and all(p.name.startswith(".") for p in model_dir.iterdir() if not p.name.isdigit())
    time.sleep(2.1)                               # older than a staging dir a live writer may still be locking
    report = retrain(job(tmp, "train.epochs=1", "retrain.tolerance=1.0"))
    assert report["exit_code"] == EXIT_PUBLISHED and report["published_version"] == 3, report
    assert not list(model_dir.glob(".tmp-*")) and versions(tmp / "models", "tiny") == [1, 2, 3]


def test_then_optimize_compresses_the_promoted_model_like_the_served_one(tmp_path):
    from training.config import load_config
    from training.compress.optimize import optimize
    first = retrain(job(tmp_path, *QUICK, "train.epochs=4", preset="tiny"))
    assert first["published_version"] == 1, first
    # The served version is the int8 post-training-quantized v1 (parent 1), as `optimize` makes it.
    served_cfg = load_config(None, base=md.read(tmp_path / "models" / "tiny" / "1").config,
                             overrides=["optimize.stages=[int8]", "optimize.calibration_samples=64"])
    optimize(served_cfg, source_dir=tmp_path / "models" / "tiny" / "1")
    report = retrain(job(tmp_path, "train.epochs=2", "retrain.tolerance=0.05", then_optimize=True))
    assert report["exit_code"] == EXIT_PUBLISHED and report["current_version"] == 2, report
    assert report["published_version"] == 3 and report["then_optimize"]["published_version"] == 4
    light = md.read(tmp_path / "models" / "tiny" / "4")
    assert light.parent["version"] == 3 and light.formats.tflite.quantization == "int8"
    assert light.techniques["compression"] == ["int8"] and light.extra["retrain"]["current_version"] == 2
    assert report["then_optimize"]["start"] == {"from": "version", "version": 3, "stages": ["int8"]}


def test_retrain_from_a_version_with_corrupted_weights_names_the_file(tmp_path, capsys, fixture_as_fashion):
    """A copy of a committed version whose keras_weights.h5 is damaged (the data is the fixture,
    written as Fashion-MNIST files, so the weights are what fails)."""
    import shutil
    from training.cli.main import main
    shutil.copytree(ROOT / "models" / "fashion-small", tmp_path / "models" / "fashion-small")
    weights = tmp_path / "models" / "fashion-small" / "2" / "keras_weights.h5"
    weights.write_bytes(b"not HDF5")
    with pytest.raises(SystemExit) as exit_info:
        main(["retrain", "--name", "fashion-small", "--models-dir", str(tmp_path / "models"),
              "--set", f"output_dir={tmp_path / 'runs'}", "--set", "train.verbose=0"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    assert f"cannot load '{weights}'" in err
    assert versions(tmp_path / "models", "fashion-small") == [1, 2]
