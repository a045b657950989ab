"""The switches study: one switch per variant on a shared baseline, equal budgets, claims that name
its variants, rates taken from the pilot's candidates, and a pilot that reads validation only."""
import json

from training.ablation import fashion
from training.ablation.runner import STUDIES
from training.ablation.studies import switches
from training.ablation.study import Budget

STUDY = switches.STUDY
SWITCH_KEYS = {"ema": {"train.ema_decay"},
               "nesterov-triangular": {"train.optimizer", "train.momentum", "train.nesterov", "train.schedule",
                                       "train.learning_rate"},
               "dirac": {"model.initializer"}}


def test_each_variant_adds_one_switch_to_the_baseline():
    variants = {v.name: v for v in STUDY.variants}
    assert list(variants) == ["baseline", *SWITCH_KEYS] and {v.group for v in STUDY.variants} == {""}
    assert variants["baseline"].settings == {}
    for name, keys in SWITCH_KEYS.items():
        assert set(variants[name].settings) == keys, name
    assert 0 < variants["ema"].settings["train.ema_decay"] < 1
    assert variants["nesterov-triangular"].settings["train.schedule"] == "triangular"
    assert variants["nesterov-triangular"].settings["train.nesterov"] is True
    assert variants["dirac"].settings["model.initializer"] == "dirac"
    assert STUDIES["switches"] is STUDY


def test_every_variant_gets_the_same_budget_and_a_valid_config(tmp_path):
    budget = STUDY.budget
    assert len(budget.seeds) >= 3 and budget.steps and budget.batch_size and budget.train_images
    configs = [fashion.run_config({**switches.BASE, **v.settings}, 1, budget, budget.train_images, tmp_path)
               for v in STUDY.variants]
    assert {(c.train.steps, c.train.batch_size, c.train.warmup_epochs) for c in configs} == {
        (budget.steps, budget.batch_size, configs[0].train.warmup_epochs)}
    assert not any("train_images" in v.settings for v in STUDY.variants)
    baseline = configs[0]
    assert (baseline.train.optimizer, baseline.train.schedule, baseline.train.ema_decay) == ("adam", "onecycle", 0.0)
    assert (baseline.model.initializer, baseline.model.batch_norm, baseline.augment.enabled) == ("auto", False, False)


def test_claims_name_a_switch_against_the_baseline():
    names = {v.name for v in STUDY.variants}
    assert {c.variant for c in STUDY.claims} == set(SWITCH_KEYS)
    for claim in STUDY.claims:
        assert claim.baseline == "baseline" and claim.variant in names and claim.kind == "better"


def test_the_rates_are_pilot_candidates():
    assert switches.EMA_DECAY in switches.PILOT_EMA_DECAYS
    assert switches.SGD_RATE in switches.PILOT_SGD_RATES
    assert switches.PILOT_SEED not in STUDY.budget.seeds


def test_pilot_reads_validation_only_and_resumes(tmp_path, monkeypatch):
    calls = []

    def fake_train(settings, seed, budget, workdir, curves=True):
        calls.append((settings, seed, budget))
        return {"test_accuracy": 0.5, "kept_test_accuracy": 0.5, "steps": budget.steps,
                "curves": {"val_accuracy": [0.3, 0.1 + len(calls) / 100]}}
    monkeypatch.setattr(switches, "train_variant", fake_train)
    budget = Budget(train_images=100, steps=4, batch_size=10, seeds=(1,), test_images=None)
    records = switches.pilot(budget, tmp_path, tmp_path / "work")
    candidates = switches.pilot_variants()
    assert [r["candidate"] for r in records] == [v.name for v in candidates]
    assert all(seed == switches.PILOT_SEED and b.test_images == 1 for _, seed, b in calls)
    assert all(s["train.optimizer"] == "adam" or s["train.schedule"] == "triangular" for s, _, _ in calls)
    lines = [json.loads(line) for line in (tmp_path / "switches" / switches.PILOT).read_text().splitlines()]
    assert all("test" not in key for line in lines for key in line) and lines[-1]["val_accuracy"] == 0.1 + 6 / 100
    switches.pilot(budget, tmp_path, tmp_path / "work")
    assert len(calls) == len(candidates)                   # a second call runs nothing
