"""``label``: stable and canary set, promoted and aborted under the model's lock; refusals
write nothing; ``rollback`` moves the labels off the versions it retires; ``retrain
--canary`` publishes its candidate as the canary, compared with the stable version."""
import json

import pytest

from artifact import labels as lb
from artifact.labels import Canary, Labels
from artifact.locks import model_lock
from artifact.versions import retired, versions

from support.service import publish_copy
from training.cli.main import main
from training.jobs.labels import after_publish, after_retire


@pytest.fixture()
def repo(tmp_path, artifact):
    """models/fashion/1..4: copies of one tiny real version."""
    models = tmp_path / "models"
    (models / "fashion").mkdir(parents=True)
    for v in (1, 2, 3, 4):
        publish_copy(artifact, models / "fashion", v)
    return models


def run(capsys, models, *args, command="label", expect=0):
    """The real command through ``main``: its JSON line, or (``expect``: the exit code) its error line."""
    code = 0
    try:
        main([command, "--name", "fashion", "--models-dir", str(models), *args])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    assert code == expect, err
    if expect:
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(lines) == 1, err
        return lines[0]
    return json.loads(out.strip().splitlines()[-1])


def files(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_without_labels_the_newest_is_stable_and_nothing_is_written(repo, capsys):
    out = run(capsys, repo, "--list")
    assert out == {"model": "fashion", "published": [1, 2, 3, 4], "written": {"stable": None, "canary": None},
                   "labels": {"stable": 4, "canary": None}}
    assert not lb.path(repo, "fashion").exists()


def test_set_canary_then_promote(repo, capsys):
    # Unpinned, the newest answers by default: it cannot be the canary until stable is labelled.
    assert "the newest, as no label pins stable" in run(capsys, repo, "--canary", "4", expect=2)
    run(capsys, repo, "--stable", "3")
    out = run(capsys, repo, "--canary", "4", "--percent", "30")
    assert out["labels"] == {"stable": 3, "canary": {"version": 4, "percent": 30.0, "shadow": False}}
    assert lb.read(repo, "fashion") == Labels(3, Canary(4, 30.0))
    out = run(capsys, repo, "--promote")
    assert out["labels"] == {"stable": 4, "canary": None}
    assert out["before"]["canary"]["version"] == 4
    assert lb.read(repo, "fashion") == Labels(4, None)


def test_set_stable_then_a_shadow_canary_then_abort(repo, capsys):
    assert run(capsys, repo, "--stable", "2")["labels"] == {"stable": 2, "canary": None}
    out = run(capsys, repo, "--canary", "3", "--shadow")
    assert out["labels"] == {"stable": 2, "canary": {"version": 3, "percent": 0.0, "shadow": True}}
    out = run(capsys, repo, "--abort")
    assert out["labels"] == {"stable": 2, "canary": None}       # stable stays where it was
    assert run(capsys, repo, "--list")["written"] == {"stable": 2, "canary": None}


@pytest.mark.parametrize("args,says", [
    (["--stable", "9"], "version 9 is not published"),
    (["--canary", "9", "--percent", "5"], "version 9 is not published"),
    (["--canary", "2", "--percent", "101"], "within 0-100"),
    (["--canary", "2", "--percent", "-1"], "within 0-100"),
    (["--canary", "4"], "version 4 is stable"),
    (["--promote"], "no canary to promote"),
    (["--abort"], "no canary to abort"),
    (["--stable", "2", "--percent", "5"], "go with --canary"),
    (["--list", "--set", "train.epochs=1"], "only for name and models_dir"),
])
def test_refusals_exit_2_with_one_line_and_write_nothing(repo, capsys, args, says):
    before = files(repo)
    assert says in run(capsys, repo, *args, expect=2)
    assert files(repo) == before and not (repo / "fashion" / ".lock").exists()


def test_unknown_model_or_repository_is_refused(repo, capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no model 'fashion'" in run(capsys, tmp_path / "empty", "--list", expect=2)
    assert list((tmp_path / "empty").iterdir()) == []
    assert "no model repository" in run(capsys, tmp_path / "missing", "--list", expect=2)
    assert not (tmp_path / "missing").exists()


def test_the_canary_cannot_be_set_stable_directly(repo, capsys):
    run(capsys, repo, "--canary", "2", "--percent", "10")
    assert "is the canary: promote it" in run(capsys, repo, "--stable", "2", expect=2)


def test_a_held_lock_makes_label_exit_5_and_change_nothing(repo, capsys):
    with model_lock(repo, "fashion", job="retrain"):
        message = run(capsys, repo, "--stable", "2", "--wait", "0", expect=5)
    assert "locked by pid" in message and "retrain" in message
    assert not lb.path(repo, "fashion").exists()


def test_rolling_back_the_stable_version_moves_the_label_and_drops_a_retired_canary(repo, capsys):
    run(capsys, repo, "--stable", "3")
    run(capsys, repo, "--canary", "4", "--percent", "20")
    out = run(capsys, repo, command="rollback")                  # retires 4, the canary
    assert out["retired_now"] == [4] and out["labels"] == {"stable": 3, "canary": None}
    assert lb.read(repo, "fashion") == Labels(3, None)
    out = run(capsys, repo, "--to", "1", command="rollback")    # retires 2 and 3: stable moves to 1
    assert out["served"] == 1 and out["labels"] == {"stable": 1, "canary": None}
    assert lb.read(repo, "fashion") == Labels(1, None) and retired(repo, "fashion") == [2, 3, 4]
    out = run(capsys, repo, "--restore", "3", command="rollback")   # restoring moves no label...
    assert out["labels"] == {"stable": 1, "canary": None}
    out = run(capsys, repo, "--restore", "4", "--as-stable", command="rollback")   # ...unless asked
    assert out["served"] == 4 and lb.read(repo, "fashion") == Labels(4, None)


def test_rolling_back_a_pinned_stable_skips_the_canary(repo, capsys):
    run(capsys, repo, "--canary", "3", "--percent", "20")         # stable (4, the newest) is pinned with it
    out = run(capsys, repo, command="rollback")                  # retires 4: stable -> 2, not the canary
    assert out["labels"] == {"stable": 2, "canary": {"version": 3, "percent": 20.0, "shadow": False}}
    assert versions(repo, "fashion") == [1, 2, 3]


def test_label_rules_after_retire_and_publish():
    # No labels and no canary: nothing is pinned, the newest-by-default rule does it.
    assert after_retire(Labels(), [1, 2, 3], [3]) == Labels()
    # Only the canary remains besides what goes: it is what is left, no longer a canary.
    assert after_retire(Labels(3, Canary(2, 10)), [2, 3], [3]) == Labels()
    assert after_retire(Labels(5, Canary(3, 10)), [1, 2, 3, 4, 5], [4, 5], to=3) == Labels(3, None)
    assert after_publish(Labels(), [1, 2], 2, 1) == Labels()
    assert after_publish(Labels(1), [1, 2], 2, 1) == Labels(2)
    assert after_publish(Labels(1, Canary(2, 5)), [1, 2, 3], 3, 1) == Labels(3, Canary(2, 5))
    assert after_publish(Labels(), [1, 2], 2, 1, canary=25) == Labels(1, Canary(2, 25))
    assert after_publish(Labels(), [1], 1, None, canary=25) == Labels()   # nothing served: it is stable


def test_retrain_canary_keeps_stable_and_the_next_retrain_compares_with_stable(tmp_path):
    from training.jobs.promotion import EXIT_PUBLISHED
    from training.jobs.retrain import retrain
    from training.jobs.retrain_job import RetrainJob
    quick = [f"output_dir={tmp_path / 'runs'}", "model.head_pool=flatten", "augment.enabled=false",
             "train.batch_size=32", "train.verbose=0", "data.limit=200", "train.epochs=1"]
    models = tmp_path / "models"
    models.mkdir()

    def job(**kw):
        return RetrainJob("tiny", str(models), overrides=[*quick, "retrain.tolerance=1.0"], **kw)

    first = retrain(RetrainJob("tiny", str(models), preset="tiny", overrides=[*quick, "train.epochs=3"],
                               allow_new=True, canary=50))
    assert first["published_version"] == 1 and first["labels"] == {"stable": 1, "canary": None}, first
    second = retrain(job(canary=25))
    assert second["exit_code"] == EXIT_PUBLISHED and second["published_version"] == 2, second
    assert second["labels"] == {"stable": 1, "canary": {"version": 2, "percent": 25.0, "shadow": False}}
    assert lb.read(models, "tiny") == Labels(1, Canary(2, 25.0))
    # Without --canary: compared with stable (1, not the newest), and stable moves to the new version.
    third = retrain(job())
    assert third["current_version"] == 1 and third["published_version"] == 3, third
    assert lb.read(models, "tiny") == Labels(3, Canary(2, 25.0))
