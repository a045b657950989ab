"""What a command prints: its own lines first (TensorFlow's start-up noise only with -v), and
an unexpected error as one line with the path of a log that holds the traceback."""
import subprocess
import sys

import pytest

from support.builders import ROOT


def run(*args, tmp_path):
    return subprocess.run([sys.executable, "-m", "training", *args, "--preset", "tiny",
                           "--set", "train.epochs=1", "--set", f"output_dir={tmp_path / 'runs'}",
                           "--set", f"models_dir={tmp_path / 'models'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_first_line_is_the_programs_own_and_no_library_info_per_epoch(tmp_path):
    done = run("train", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    assert lines[0].startswith("INFO training."), lines[:3]
    assert not [line for line in lines if "cuInit" in line or "absl" in line or "cudart" in line]


def test_verbose_brings_tensorflow_start_up_lines_back(tmp_path):
    done = run("-v", "train", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cuda" in done.stderr.lower() or "oneDNN" in done.stderr


def test_an_unexpected_error_is_one_line_and_a_log_file(monkeypatch, capsys):
    from training.cli import config as config_command
    from training.cli.main import main

    def broken(args):
        raise RuntimeError("something nobody foresaw\nsecond line")
    monkeypatch.setattr(config_command, "cmd_config", broken)
    with pytest.raises(SystemExit) as exit_:
        main(["config", "--preset", "tiny"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unexpected RuntimeError: something nobody foresaw")
    log = err[0].split("traceback in ")[1].split(";")[0]
    text = open(log).read()
    assert "Traceback" in text and "second line" in text and "python -m training" in text

    with pytest.raises(RuntimeError, match="nobody foresaw"):
        main(["--debug", "config", "--preset", "tiny"])
