"""``python -m training rollback``: the CLI, and a real gunicorn falling back without a restart."""
import json
import subprocess
import sys

import pytest
import requests

from artifact import metadata as md
from artifact.locks import model_lock
from artifact.versions import publish, retired, versions

from support.builders import ROOT
from support.service import fashion_data, server_for_copies, wait_for, worker_pids


def rollback(models, *args, expect=0):
    run = subprocess.run([sys.executable, "-m", "training", "rollback", "--models-dir", str(models), *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == expect, run.stderr
    if expect:
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr   # no traceback
        return lines[0]
    return json.loads(run.stdout)


def publish_n(models, n):
    for _ in range(n):
        publish(models, "m", lambda staging: md.Metadata(name="m", labels=["a", "b"],
                                                         input=md.InputSpec.of(8, 8, "L")))


def test_rollback_retires_the_newest_or_down_to_a_version_and_restores(tmp_path):
    publish_n(tmp_path, 4)
    out = rollback(tmp_path, "--name", "m", "--reason", "complaints")
    assert out == {"model": "m", "served": 3, "published": [1, 2, 3], "retired": [4], "retired_now": [4],
                   "labels": {"stable": 3, "canary": None}}
    out = rollback(tmp_path, "--name", "m", "--to", "1")
    assert out["served"] == 1 and out["retired_now"] == [2, 3] and out["retired"] == [2, 3, 4]
    out = rollback(tmp_path, "--name", "m", "--restore", "3")
    assert out["served"] == 3 and out["restored"] == 3 and out["published"] == [1, 3]
    listed = rollback(tmp_path, "--name", "m", "--list")
    assert [(h["action"], h["version"], h["reason"]) for h in listed["history"]] == [
        ("retire", 4, "complaints"), ("retire", 2, ""), ("retire", 3, ""), ("restore", 3, "")]


def test_rollback_errors_are_one_line_and_exit_2(tmp_path):
    publish_n(tmp_path, 1)
    assert "only published version" in rollback(tmp_path, "--name", "m", expect=2)
    assert "no model 'x'" in rollback(tmp_path, "--name", "x", expect=2)
    assert "no retired version 5" in rollback(tmp_path, "--name", "m", "--restore", "5", expect=2)
    assert "no published version 9 to roll back to" in rollback(tmp_path, "--name", "m", "--to", "9", expect=2)
    assert versions(tmp_path, "m") == [1] and retired(tmp_path, "m") == []


def test_rollback_takes_set_models_dir_which_wins_over_the_flag(tmp_path):
    real, decoy = tmp_path / "real", tmp_path / "decoy"
    publish_n(real, 2)
    decoy.mkdir()
    out = rollback(decoy, "--name", "m", "--set", f"models_dir={real}")
    assert out["retired_now"] == [2] and versions(real, "m") == [1] and list(decoy.iterdir()) == []
    assert "no model repository" in rollback(tmp_path / "missing", "--name", "m", expect=2)
    assert "only for name and models_dir" in rollback(real, "--name", "m", "--set", "train.epochs=1", expect=2)
    assert not (tmp_path / "missing").exists() and retired(real, "m") == [2]


def test_rollback_while_a_retrain_holds_the_lock_exits_5_naming_it(tmp_path):
    publish_n(tmp_path, 2)
    with model_lock(tmp_path, "m", job="retrain"):
        message = rollback(tmp_path, "--name", "m", "--wait", "0", expect=5)
    assert "locked by pid" in message and "retrain" in message
    assert versions(tmp_path, "m") == [1, 2]


def served_version(server) -> str:
    pixels = fashion_data()["x_test"][0].tolist()
    r = requests.post(server.url + "/v1/models/fashion:predict", json={"instances": [pixels]}, timeout=30)
    return r.json().get("model_version")


@pytest.fixture()
def two_version_server(tmp_path, artifact):
    server = server_for_copies(tmp_path, artifact, (1, 2), poll_interval_s=0.2).wait()
    yield server
    server.stop()


def test_the_service_falls_back_on_rollback_and_returns_on_restore(two_version_server):
    server = two_version_server
    assert served_version(server) == "2"
    pids = worker_pids(server)
    rollback(server.root, "--name", "fashion")
    assert wait_for(lambda: served_version(server) == "1"), server.log()
    rollback(server.root, "--name", "fashion", "--restore", "2")
    assert wait_for(lambda: served_version(server) == "2"), server.log()
    assert worker_pids(server) == pids                       # the same worker: no restart
