"""artifact.locks: one job per model; a killed holder leaves no stale lock and no partial version."""
import os
import signal
import subprocess
import sys
import time

import pytest

from artifact import metadata as md
from artifact.locks import LockBusy, holder, model_lock
from artifact.versions import clean_staging, latest_version, publish, versions

from support.builders import ROOT

# Takes the model's lock, then publishes a version whose writer is slow,
# announcing each phase so the test can act at a chosen moment.
HOLDER = """
import sys, time
sys.path.insert(0, {root!r})
from artifact import metadata as md
from artifact.locks import model_lock
from artifact.versions import publish

def write(staging):
    (staging / "model.tflite").write_bytes(b"partial")
    print("publishing", flush=True)
    time.sleep({publish_s})
    return md.Metadata(name="m", labels=["a", "b"], input=md.InputSpec.of(8, 8, "L"))

with model_lock({models!r}, "m", job="retrain"):
    print("locked", flush=True)
    time.sleep({hold_s})
    publish({models!r}, "m", write)
print("done", flush=True)
"""


def start_holder(models, hold_s=0.0, publish_s=60.0) -> subprocess.Popen:
    code = HOLDER.format(root=str(ROOT), models=str(models), hold_s=hold_s, publish_s=publish_s)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def meta() -> md.Metadata:
    return md.Metadata(name="m", labels=["a", "b"], input=md.InputSpec.of(8, 8, "L"))


def test_lock_is_exclusive_and_released_on_exit(tmp_path):
    with model_lock(tmp_path, "m", job="first") as record:
        assert holder(tmp_path, "m") == record and record["pid"] == os.getpid()
        with pytest.raises(LockBusy, match=f"pid {os.getpid()} .*first"):
            with model_lock(tmp_path, "m", job="second"):
                pass
    assert holder(tmp_path, "m") is None
    with model_lock(tmp_path, "m", job="again"):
        pass


def test_second_job_fails_clearly_or_waits_for_the_first(tmp_path):
    """Two jobs on one model: without --wait the second is refused naming the
    first's pid; with a wait it runs as soon as the first finishes."""
    first = start_holder(tmp_path, hold_s=1.5, publish_s=0.0)
    try:
        with pytest.raises(LockBusy) as refused:
            with model_lock(tmp_path, "m", job="retrain", wait=0):
                pass
        assert f"pid {first.pid}" in str(refused.value) and "retrain" in str(refused.value)
        start = time.monotonic()
        with model_lock(tmp_path, "m", job="retrain", wait=30):
            assert first.wait(10) == 0   # it finished before we got in
            assert versions(tmp_path, "m") == [1]
            publish(tmp_path, "m", lambda staging: meta())
        assert time.monotonic() - start > 0.5
    finally:
        first.kill()
        first.wait()
    assert versions(tmp_path, "m") == [1, 2]


def test_kill_9_during_publish_leaves_no_version_and_no_stale_lock(tmp_path):
    publish(tmp_path, "m", lambda staging: meta())
    proc = start_holder(tmp_path)
    assert proc.stdout.readline().strip() == "publishing"
    with pytest.raises(LockBusy):
        with model_lock(tmp_path, "m", job="retrain"):
            pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert versions(tmp_path, "m") == [1] and latest_version(tmp_path, "m").name == "1"
    staging = [p for p in (tmp_path / "m").iterdir() if p.name.startswith(".tmp-")]
    assert len(staging) == 1    # hidden: no reader ever lists it
    with model_lock(tmp_path, "m", job="retrain", wait=0):   # the kernel released the flock
        assert clean_staging(tmp_path, "m", min_age_s=0) == staging
        assert publish(tmp_path, "m", lambda staging: meta()).name == "2"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [".lock", "1", "2"]


def test_clean_staging_spares_a_live_writer(tmp_path):
    proc = start_holder(tmp_path)
    try:
        assert proc.stdout.readline().strip() == "publishing"
        assert clean_staging(tmp_path, "m", min_age_s=0) == []
        assert [p for p in (tmp_path / "m").iterdir() if p.name.startswith(".tmp-")]
    finally:
        proc.kill()
        proc.wait()
