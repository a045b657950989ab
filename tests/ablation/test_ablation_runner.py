"""The study runner: resumes from runs.jsonl, re-runs on a changed budget, survives a torn line;
and one real run of a study variant through the project's trainer."""
import dataclasses
import json

import pytest

from training.ablation import fashion
from training.ablation.runner import available, budget_for, load_study, read_records, run_study, runs_path
from training.ablation.study import Budget, Claim, Study, Variant
from training.config import ConfigError, load_config


def counting_study(calls: list) -> Study:
    """The resume logic is what is under test: the run fn records its calls and returns a record."""
    def run(variant, seed, budget, workdir):
        calls.append((variant.name, seed, budget.steps))
        return {"test_accuracy": 0.5 + 0.1 * seed, "steps": budget.steps, "seconds": 0.01}
    variants = (Variant("plain"), Variant("fancy", {"model.dropout": 0.5}))
    return Study("toy", "a toy study", variants, (Claim("fancy helps", "fancy", "plain"),), run,
                 Budget(train_images=100, steps=10, batch_size=8, seeds=(1, 2)))


def test_a_second_call_runs_nothing_and_more_seeds_run_only_the_new_ones(tmp_path):
    calls = []
    study = counting_study(calls)
    first = run_study(study, study.budget, tmp_path, tmp_path / "work")
    assert sorted(calls) == [("fancy", 1, 10), ("fancy", 2, 10), ("plain", 1, 10), ("plain", 2, 10)]
    assert calls[:2] == [("plain", 1, 10), ("fancy", 1, 10)]       # seed by seed
    again = run_study(study, study.budget, tmp_path, tmp_path / "work")
    assert len(calls) == 4 and len(again) == len(first) == 4
    more = run_study(study, dataclasses.replace(study.budget, seeds=(1, 2, 3)), tmp_path, tmp_path / "work")
    assert calls[4:] == [("plain", 3, 10), ("fancy", 3, 10)] and len(more) == 6
    record = read_records(runs_path(tmp_path, study))[0]
    assert {"variant", "group", "seed", "fingerprint", "budget", "machine", "test_accuracy"} <= set(record)


def test_a_changed_budget_runs_again(tmp_path):
    calls = []
    study = counting_study(calls)
    run_study(study, study.budget, tmp_path, tmp_path / "work")
    changed = run_study(study, dataclasses.replace(study.budget, steps=20), tmp_path, tmp_path / "work")
    assert [c[2] for c in calls] == [10] * 4 + [20] * 4
    assert {r["steps"] for r in changed} == {20}
    assert len(read_records(runs_path(tmp_path, study))) == 8         # the old budget's records stay


def test_a_torn_last_line_is_ignored_and_run_again(tmp_path):
    calls = []
    study = counting_study(calls)
    run_study(study, study.budget, tmp_path, tmp_path / "work")
    path = runs_path(tmp_path, study)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2])   # a crash mid-write
    assert len(read_records(path)) == 3
    records = run_study(study, study.budget, tmp_path, tmp_path / "work")
    assert calls[4:] == [("fancy", 2, 10)] and len(records) == 4
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_studies_are_found_by_module_name():
    assert {"initialisation", "regularisation", "scarcity"} <= set(available())
    assert load_study("initialisation").name == "initialisation"
    with pytest.raises(ConfigError, match="unknown study 'nope'"):
        load_study("nope")


def test_the_ablate_section_overrides_the_study_budget():
    study = load_study("scarcity")
    cfg = load_config(None, ["ablate.seeds=4,5", "ablate.steps=50", "ablate.test_images=all"])
    budget = budget_for(study, cfg.ablate)
    assert (budget.seeds, budget.steps, budget.test_images) == ((4, 5), 50, None)
    assert budget.batch_size == study.budget.batch_size
    for bad in ("ablate.seeds=a,b", "ablate.steps=0", "ablate.train_images=-3", "ablate.seeds=1,1"):
        with pytest.raises(ConfigError, match="ablate"):
            load_config(None, [bad])


def test_one_study_variant_trains_through_the_project_trainer(tmp_path, monkeypatch, fixture_data):
    """Real training (a few steps on the committed fixture instead of the full data set)."""
    monkeypatch.setattr(fashion, "fashion_splits", lambda: fixture_data)
    study = load_study("regularisation")
    budget = Budget(train_images=200, steps=20, batch_size=50, seeds=(1,), test_images=100)
    variant = next(v for v in study.variants if v.name == "all")
    record = study.run(variant, 1, budget, tmp_path / "run")
    assert record["steps"] == 20 and record["train_images"] == 200 and record["test_images"] == 100
    assert record["curves"]["step"] == [4, 8, 12, 16, 20]
    assert len(record["curves"]["train_accuracy"]) == len(record["curves"]["val_accuracy"]) == 5
    assert record["gap"] == pytest.approx(record["train_accuracy"] - record["test_accuracy"])
    assert record["early_val_accuracy"] == record["curves"]["val_accuracy"][1]    # step 8 >= 20 / 4
    assert 0.0 <= record["test_accuracy"] <= 1.0 and record["seconds"] > 0
    assert not (tmp_path / "run").exists()                                       # checkpoints removed
