"""The batchnorm study: its variants and claims, the steps-to-target metric, and (slow) one run of
its run function on the fixture, with validation read every few steps."""
import pytest

from training.ablation import fashion
from training.ablation.study import Budget
from training.ablation.studies import batchnorm


def test_steps_to_target_is_the_first_reading_at_or_above_the_target():
    steps, accuracy = [25, 50, 75, 100], [0.5, 0.74, 0.75, 0.9]
    assert fashion.steps_to_target(steps, accuracy, 0.75, never=125) == 75
    assert fashion.steps_to_target(steps, accuracy, 0.6, never=125) == 50
    assert fashion.steps_to_target(steps, [0.9, 0.1, 0.1, 0.1], 0.75, never=125) == 25   # first, not last


def test_steps_to_target_never_reached_is_past_the_budget():
    assert fashion.steps_to_target([25, 50], [0.7, 0.749], 0.75, never=75) == 75
    assert fashion.steps_to_target([], [], 0.75, never=625) == 625


def test_every_rate_has_plain_and_batchnorm_and_two_claims():
    keys = {(v.name, v.group) for v in batchnorm.STUDY.variants}
    assert len(batchnorm.LEARNING_RATES) >= 3
    assert keys == {(name, batchnorm.group(rate)) for rate in batchnorm.LEARNING_RATES
                    for name in ("plain", "batchnorm")}
    for v in batchnorm.STUDY.variants:
        rate = float(v.group.removeprefix("lr"))
        assert v.settings["train.learning_rate"] == rate
        assert v.settings.get("model.batch_norm", False) == (v.name == "batchnorm")
    for rate in batchnorm.LEARNING_RATES:
        claims = [c for c in batchnorm.STUDY.claims if c.group == batchnorm.group(rate)]
        assert {(c.metric, c.higher_is_better) for c in claims} == {("test_accuracy", True),
                                                                    ("steps_to_target", False)}
        assert all((c.variant, c.baseline) == ("batchnorm", "plain") for c in claims)
    assert len(set(batchnorm.STUDY.budget.seeds)) >= 5


def test_the_older_studies_use_none_of_the_new_knobs():
    """Their records' fingerprints and run functions stay what they were."""
    from training.ablation.runner import STUDIES
    knobs = {"val_every", "target_accuracy", "batch_norm_momentum"}
    for study in STUDIES.values():
        if study.name != "batchnorm":
            assert not any(knobs & set(v.settings) for v in study.variants), study.name


@pytest.mark.slow
def test_run_reads_validation_every_few_steps_and_sets_the_momentum(tmp_path, fixture_as_fashion, monkeypatch):
    fashion.fashion_splits.cache_clear()
    seen = []
    original = fashion.step_validation

    def spy(*args):
        seen.append(original(*args))
        return seen[-1]
    monkeypatch.setattr(fashion, "step_validation", spy)
    budget = Budget(train_images=None, steps=6, batch_size=16, seeds=(0,), test_images=60)
    variant = next(v for v in batchnorm.STUDY.variants if v.name == "batchnorm")
    run = fashion.fashion_run({**batchnorm.BASE, "val_every": 2, "target_accuracy": 2.0}, curves=False)
    try:
        record = run(variant, 0, budget, tmp_path / "run")
    finally:
        fashion.fashion_splits.cache_clear()
    from training.keras2 import keras
    bn = [layer for layer in seen[0].model.submodules if isinstance(layer, keras.layers.BatchNormalization)]
    assert bn and all(layer.momentum == batchnorm.BN_MOMENTUM for layer in bn)
    assert record["curves"]["step"] == list(range(2, record["steps"] + 1, 2))
    assert len(record["curves"]["val_accuracy"]) == len(record["curves"]["step"])
    assert record["steps_to_target"] == record["steps"] + 2     # an unreachable target: one reading past
    assert "pass_val_accuracy" in record["curves"]
