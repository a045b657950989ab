"""``python -m training ablate``: bad input is one line on stderr and exit 2, before any training."""
import subprocess
import sys

import pytest

from support.builders import ROOT


def ablate(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "training", "ablate", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["--study", "nope"], "error: unknown study 'nope' (studies: augmentation, batchnorm, compression, distillation, "
                          "initialisation, precision, regularisation, "),
    (["--study", "scarcity", "--set", "ablate.seeds=a,b"], "error: 'ablate.seeds' must be distinct integers"),
    (["--study", "scarcity", "--set", "ablate.steps=0"], "error: 'ablate.steps' must be an integer of at least 1"),
    (["--study", "scarcity", "--set", "ablate.nope=1"], "error: unknown config key 'ablate.nope'"),
])
def test_bad_study_or_setting_is_one_line_and_exit_2(args, message):
    run = ablate(*args)
    assert run.returncode == 2, run.stderr[-2000:]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), run.stderr


def test_report_only_without_runs_says_what_to_do(tmp_path):
    run = ablate("--study", "initialisation", "--report-only", "--set", f"ablate.reports_dir={tmp_path}",
                 "--set", f"ablate.evidence={tmp_path / 'evidence.md'}")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].endswith("run it without --report-only")
    assert not (tmp_path / "evidence.md").exists()


def test_aggregation_and_report_import_no_tensorflow():
    code = ("import sys, training.ablation.aggregate, training.ablation.report, training.ablation.runner; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
