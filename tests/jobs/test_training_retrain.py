"""``retrain``: a better candidate is published with its lineage, a worse or unlearned one is
refused, a job killed while publishing leaves a clean repository for the next one, and a
model or repository that is not there is refused before anything is created."""
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
from artifact.versions import publish, retire, versions

from support.builders import FIXTURE, ROOT
from training.jobs.promotion import EXIT_CHECK, EXIT_PUBLISHED, EXIT_WORSE
from training.jobs.retrain import retrain
from training.jobs.repository import NotInRepository
from training.jobs.retrain_job import RetrainJob, job_config, plan

# Learns the fixture in seconds: 5 epochs reach about 80% test accuracy.
QUICK = ["model.head_pool=flatten", "augment.enabled=false", "train.batch_size=32", "train.verbose=0"]


def job(tmp_path, *overrides, **kw) -> RetrainJob:
    (tmp_path / "models").mkdir(exist_ok=True)   # a repository must exist: retrain never starts one
    return RetrainJob("tiny", str(tmp_path / "models"), preset=kw.pop("preset", None),
                      overrides=[f"output_dir={tmp_path / 'runs'}", *overrides], **kw)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """v1 from little data, then v2 retrained from it on all the data: (tmp dir, the v2 report)."""
    tmp = tmp_path_factory.mktemp("retrain")
    first = retrain(job(tmp, *QUICK, "train.epochs=2", "data.limit=200", preset="tiny", allow_new=True))
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
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    # --set models_dir (the spelling every command takes) wins over --models-dir: the lock, the
    # served version compared with and the publish are all in it, and the decoy stays empty.
    run = subprocess.run([sys.executable, "-m", "training", "retrain", "--name", "tiny", "--models-dir",
                          str(decoy), "--data", str(noise), "--from-scratch", "--set", f"models_dir={tmp / 'models'}",
                          "--set", "train.epochs=2", "--set", f"output_dir={tmp_path / 'runs'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == EXIT_CHECK, run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert report["decision"] == "refused: publish check" and not report["publish_check"]["passed"]
    assert report["data"]["path"] == str(noise) and versions(tmp / "models", "tiny") == [1, 2]
    assert report["current_version"] == 2 and list(decoy.iterdir()) == []


def test_usage_errors_are_one_line_exit_2(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "training", "retrain", "--name", "tiny", "--allow-new",
                               "--models-dir", str(tmp_path), "--set", f"output_dir={tmp_path / 'runs'}", *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
    for args, message in ((["--data", str(tmp_path / "missing")], "is neither an image folder"),
                          (["--set", "train.nope=1"], "unknown config key 'train.nope'")):
        result = run(*args)
        assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error: ")
        assert message in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def fake_versions(models, name: str, n: int) -> None:
    """``n`` published versions of ``name`` holding only a metadata.json: enough to be listed."""
    for _ in range(n):
        publish(models, name, lambda staging: md.Metadata(name=name, labels=["a", "b"],
                                                          input=md.InputSpec.of(8, 8, "L")))


# Runs the command in a fresh interpreter and says whether TensorFlow was imported by then.
REFUSE = """
import sys
from training.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as stop:
    print(stop.code, "tensorflow" in sys.modules)
"""


def refuse(tmp_path, *args) -> str:
    """``retrain *args`` must exit 2 with one ``error:`` line, before TensorFlow loads; returns the line."""
    run = subprocess.run([sys.executable, "-c", REFUSE, "retrain", *args, "--set", f"output_dir={tmp_path / 'runs'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.stdout.split() == ["2", "False"], (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    return lines[0]


def tree(root) -> list:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_typo_or_a_missing_repository_is_refused_before_anything_is_created(tmp_path):
    models = tmp_path / "models"
    fake_versions(models, "fashion", 1)
    fake_versions(models, "old", 2)
    retire(models, "old", 2)
    os.rename(models / "old" / "1", models / "old" / ".retired" / "1")   # by hand: rollback keeps one served
    before = tree(tmp_path)

    line = refuse(tmp_path, "--name", "fashon", "--models-dir", str(models))       # a typo of the name
    assert "model 'fashon' has no published version" in line and "train --publish --set name=fashon" in line
    assert "models there: fashion" in line and "--allow-new" in line
    line = refuse(tmp_path, "--name", "old", "--set", f"models_dir={models}")       # only retired versions
    assert "only retired versions [1, 2]" in line and "rollback --name old --restore 2" in line
    line = refuse(tmp_path, "--name", "fashion", "--models-dir", str(tmp_path / "modles"))   # a typo of the folder
    assert "no model repository" in line and "modles" in line
    # --set wins over --models-dir: the repository that decides is the one it names.
    line = refuse(tmp_path, "--name", "fashion", "--models-dir", str(models), "--set", f"models_dir={tmp_path / 'x'}")
    assert "no model repository" in line and str(tmp_path / "x") in line
    # --allow-new allows a first version in an existing repository, never a repository made up.
    refuse(tmp_path, "--name", "new", "--allow-new", "--models-dir", str(tmp_path / "modles"))
    assert tree(tmp_path) == before                  # no model folder, no .lock, no run folder

    # The job itself refuses too, before it takes (and so creates) the lock.
    with pytest.raises(NotInRepository, match="no published version"):
        retrain(RetrainJob("fashon", str(models), overrides=[f"output_dir={tmp_path / 'runs'}"]))
    assert tree(tmp_path) == before


def test_models_dir_and_set_models_dir_name_one_repository(tmp_path):
    given, chosen = tmp_path / "given", tmp_path / "chosen"
    fake_versions(given, "m", 1)
    fake_versions(chosen, "m", 2)
    for kw, expected in (({"models_dir": str(given)}, given),                                   # the flag alone
                         ({"overrides": [f"models_dir={chosen}"]}, chosen),                     # the key alone
                         ({"models_dir": str(given), "overrides": [f"models_dir={chosen}"]}, chosen)):   # --set wins
        one = RetrainJob("m", allow_new=True, **kw)
        current_dir, current, cfg = plan(one)
        assert one.models_dir == cfg.models_dir == str(expected)
        assert current_dir == expected / "m" / str(len(versions(expected, "m")))
    renamed = RetrainJob("m", str(chosen), overrides=["name=n"], allow_new=True)   # --set name= wins over --name
    assert (renamed.name, job_config(renamed, None).name) == ("n", "n")


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
    first = retrain(job(tmp_path, *QUICK, "train.epochs=4", preset="tiny", allow_new=True))
    assert first["published_version"] == 1, first
    # The served version is the int8 post-training-quantized v1 (parent 1), as `optimize` makes it.
    served_cfg = load_config(None, base=md.read(tmp_path / "models" / "tiny" / "1").config,
                             overrides=["optimize.stages=[int8]", "optimize.calibration_samples=64"])
    optimize(served_cfg, source_dir=tmp_path / "models" / "tiny" / "1")
    # 400 test images: accuracy and ECE both move by more than the defaults' tolerances by chance
    report = retrain(job(tmp_path, "train.epochs=2", "retrain.tolerance=0.05", "retrain.ece_tolerance=0.1",
                         then_optimize=True))
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
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("INFO ")]
    assert exit_info.value.code == 2 and len(err) == 1, err        # progress lines, then one error
    assert f"cannot load '{weights}'" in err[0]
    assert versions(tmp_path / "models", "fashion-small") == [1, 2]
