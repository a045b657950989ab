"""The augmentation study: the regularisation study's baseline without and with its augmentation, on
every training image for at least ten passes at equal steps; and (slow) its run function on the
fixture, which adds the last pass's validation accuracy to the record."""
import pytest

from training.ablation import fashion
from training.ablation.study import Budget
from training.ablation.studies import augmentation
from training.ablation.studies.augmentation import STUDY
from training.ablation.studies.regularisation import AUGMENT, HEAD

TINY = Budget(train_images=256, steps=8, batch_size=64, seeds=(0,), test_images=100)


def variant(name):
    return next(v for v in STUDY.variants if v.name == name)


def test_the_two_variants_differ_by_augmentation_only():
    assert [v.name for v in STUDY.variants] == ["baseline", "augment"]
    assert variant("baseline").settings == HEAD
    assert variant("augment").settings == {**HEAD, **AUGMENT}
    assert not any("train_images" in v.settings for v in STUDY.variants)   # every variant: the budget's


def test_budget_is_every_training_image_for_at_least_ten_passes():
    budget = STUDY.budget
    assert budget.train_images is None                        # all 54,000
    assert budget.steps * budget.batch_size >= 10 * augmentation.TRAIN_IMAGES
    assert budget.steps * budget.batch_size % augmentation.TRAIN_IMAGES == 0   # no pass cut short
    assert len(set(budget.seeds)) >= 3


def test_claims_read_augment_against_baseline_on_accuracy_gap_and_validation():
    assert {(c.variant, c.baseline) for c in STUDY.claims} == {("augment", "baseline")}
    assert {(c.metric, c.higher_is_better, c.kind) for c in STUDY.claims} == {
        ("test_accuracy", True, "better"), ("gap", False, "better"), ("val_accuracy", True, "better")}


@pytest.mark.slow
def test_run_records_the_last_passs_validation_accuracy(tmp_path, monkeypatch, fixture_data):
    monkeypatch.setattr(fashion, "fashion_splits", lambda: fixture_data)
    baseline = STUDY.run(variant("baseline"), 0, TINY, tmp_path / "run")
    augmented = STUDY.run(variant("augment"), 0, TINY, tmp_path / "run")
    assert baseline["steps"] == augmented["steps"] == 8               # 256 images: 4 batches a pass
    for record in (baseline, augmented):
        assert record["val_accuracy"] == record["curves"]["val_accuracy"][-1]
        assert len(record["curves"]["train_accuracy"]) == 2           # the train_val plot's points
        assert record["gap"] == pytest.approx(record["train_accuracy"] - record["test_accuracy"])
    assert not (tmp_path / "run").exists()
