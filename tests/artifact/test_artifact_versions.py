"""artifact.versions: listing, and atomic publishing that never shows a partial version."""
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from artifact import metadata as md
from artifact.versions import (RETIRED, RepositoryError, history, latest_version, publish, restore, retire,
                               retired, scan, versions)

from support.builders import ROOT

PARTS = ("saved_model.pb", "model.tflite", "keras_weights.h5")


def meta(name: str = "m") -> md.Metadata:
    return md.Metadata(name=name, labels=["a", "b"], input=md.InputSpec.of(8, 8, "L"))


def test_listing_ignores_hidden_non_integer_and_unfinished_directories(tmp_path):
    for _ in range(3):
        publish(tmp_path, "fashion", lambda staging: meta("fashion"))
    (tmp_path / "fashion" / ".tmp-4").mkdir()          # being written
    (tmp_path / "fashion" / "latest").mkdir()          # not an integer
    (tmp_path / "fashion" / "12").mkdir()              # no metadata.json
    (tmp_path / ".hidden").mkdir()
    publish(tmp_path, "other", lambda staging: meta("other"))
    assert scan(tmp_path) == {"fashion": [1, 2, 3], "other": [1]}
    assert versions(tmp_path, "fashion") == [1, 2, 3]
    assert latest_version(tmp_path, "fashion") == tmp_path / "fashion" / "3"
    assert scan(tmp_path / "missing") == {}
    # The number 12 is taken even without metadata: the next publish goes past it.
    assert publish(tmp_path, "fashion", lambda staging: meta("fashion")).name == "13"


def test_publish_sets_the_version_in_the_metadata(tmp_path):
    first = publish(tmp_path, "m", lambda staging: meta())
    second = publish(tmp_path, "m", lambda staging: meta())
    assert (first.name, second.name) == ("1", "2")
    assert md.read(second).version == 2 and oct(second.stat().st_mode & 0o777) == "0o755"


def test_a_reader_never_sees_a_partial_version(tmp_path):
    """Polling while versions are written, every integer directory a reader can see
    (not only those versions() lists) is already complete."""
    def slow_write(staging):
        for part in PARTS:
            (staging / part).write_bytes(b"x" * 1000)
            time.sleep(0.01)
        return meta()

    seen, incomplete, done = set(), [], threading.Event()

    def reader():
        while True:
            last = done.is_set()      # one more full look after the last publish
            names = os.listdir(tmp_path / "m") if (tmp_path / "m").is_dir() else []
            for v in (int(n) for n in names if n.isdigit()):
                seen.add(v)
                if not all((tmp_path / "m" / str(v) / p).is_file() for p in (*PARTS, "metadata.json")):
                    incomplete.append(v)
            if last:
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(5):
            publish(tmp_path, "m", slow_write)
    finally:
        done.set()
        thread.join()
    assert not incomplete and seen == {1, 2, 3, 4, 5}


def test_failed_write_leaves_no_version_and_no_staging(tmp_path):
    def write(staging):
        (staging / "model.tflite").write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        publish(tmp_path, "m", write)
    with pytest.raises(md.MetadataError, match="name 'm'"):
        publish(tmp_path, "m", lambda staging: meta("other"))
    assert versions(tmp_path, "m") == []
    assert list((tmp_path / "m").iterdir()) == []


CRASHING_WRITER = """
import sys, time
sys.path.insert(0, {root!r})
from artifact.versions import publish
def write(staging):
    (staging / "model.tflite").write_bytes(b"partial")
    print("writing", flush=True)
    time.sleep(60)
publish({models!r}, "m", write)
"""


def test_killed_publisher_leaves_only_a_hidden_dir(tmp_path):
    """A crash mid-publish (SIGKILL, nothing cleaned up) is invisible to readers."""
    proc = subprocess.Popen([sys.executable, "-c", CRASHING_WRITER.format(root=str(ROOT), models=str(tmp_path))],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    leftovers = list((tmp_path / "m").iterdir())
    assert leftovers and all(p.name.startswith(".") for p in leftovers)
    assert versions(tmp_path, "m") == [] and scan(tmp_path) == {"m": []}
    with pytest.raises(FileNotFoundError):
        latest_version(tmp_path, "m")
    done = publish(tmp_path, "m", lambda staging: meta())
    assert done.name == "1" and md.read(done).version == 1


def test_concurrent_publishers_get_distinct_versions(tmp_path):
    def slow_write(staging):
        time.sleep(0.05)
        return meta()

    with ThreadPoolExecutor(4) as pool:
        dirs = list(pool.map(lambda _: publish(tmp_path, "m", slow_write), range(6)))
    assert sorted(int(d.name) for d in dirs) == [1, 2, 3, 4, 5, 6]
    assert versions(tmp_path, "m") == [1, 2, 3, 4, 5, 6]


def test_retire_moves_the_newest_out_of_service_and_restore_brings_it_back(tmp_path):
    for _ in range(3):
        publish(tmp_path, "m", lambda staging: meta())
    moved = retire(tmp_path, "m", reason="bad answers")
    assert moved == tmp_path / "m" / RETIRED / "3" and md.read(moved).version == 3
    assert versions(tmp_path, "m") == [1, 2] and retired(tmp_path, "m") == [3]
    assert latest_version(tmp_path, "m").name == "2" and scan(tmp_path) == {"m": [1, 2]}
    # A retired number is never given out again: version 3 keeps meaning one model.
    assert publish(tmp_path, "m", lambda staging: meta()).name == "4"
    retire(tmp_path, "m", 4)
    assert restore(tmp_path, "m", 3).name == "3"
    assert versions(tmp_path, "m") == [1, 2, 3] and retired(tmp_path, "m") == [4]
    assert [(h["action"], h["version"]) for h in history(tmp_path, "m")] == [
        ("retire", 3), ("retire", 4), ("restore", 3)]
    assert history(tmp_path, "m")[0]["reason"] == "bad answers"


def test_retire_and_restore_refuse_what_they_cannot_do(tmp_path):
    publish(tmp_path, "m", lambda staging: meta())
    with pytest.raises(RepositoryError, match="only published version"):
        retire(tmp_path, "m")
    with pytest.raises(RepositoryError, match="no published version 7"):
        retire(tmp_path, "m", 7)
    with pytest.raises(RepositoryError, match="no published version"):
        retire(tmp_path, "other")
    with pytest.raises(RepositoryError, match="no retired version 1"):
        restore(tmp_path, "m", 1)
    assert versions(tmp_path, "m") == [1] and retired(tmp_path, "m") == []
