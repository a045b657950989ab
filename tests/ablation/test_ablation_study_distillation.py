"""The distillation study on a tiny budget: the fixture as the project's split, a few steps, the
committed teacher; and the pilot's plateau rule on synthetic records."""
import pytest

from training.ablation import fashion
from training.ablation.study import Budget
from training.ablation.studies import distillation
from training.ablation.studies.distillation import DEFAULT, GRID, STUDY, plateau
from training.config import DistillConfig

TINY = Budget(train_images=256, steps=8, batch_size=64, seeds=(0,), test_images=100)


def variant(name):
    return next(v for v in STUDY.variants if v.name == name)


def test_grid_is_two_by_two_and_holds_the_distill_default():
    assert len({t for t, _ in GRID}) >= 2 and len({a for _, a in GRID}) >= 2
    assert (DistillConfig.temperature, DistillConfig.alpha) in GRID
    assert variant(DEFAULT).settings["alpha"] == DistillConfig.alpha
    assert len(STUDY.budget.seeds) >= 5
    for claim in STUDY.claims:
        assert claim.baseline == "scratch" and variant(claim.variant).settings["temperature"] > 0


def pilot_records(means: dict) -> list:
    return [{"asked_steps": steps, "seed": seed, "val_accuracy": mean + (0.001 if seed else -0.001)}
            for steps, mean in means.items() for seed in (0, 1)]


def test_plateau_is_the_first_count_that_doubling_barely_improves():
    assert plateau(pilot_records({200: 0.70, 400: 0.80, 800: 0.84, 1600: 0.843})) == 800
    assert plateau(pilot_records({200: 0.70, 400: 0.80, 800: 0.84, 1600: 0.86})) is None   # still climbing
    assert plateau(pilot_records({200: 0.80, 400: 0.79})) == 200                            # already over


@pytest.mark.slow
def test_scratch_and_distilled_students_train_equal_steps(tmp_path, monkeypatch, fixture_data):
    monkeypatch.setattr(fashion, "fashion_splits", lambda: fixture_data)
    scratch = STUDY.run(variant("scratch"), 0, TINY, tmp_path / "run")
    distilled = STUDY.run(variant(DEFAULT), 0, TINY, tmp_path / "run")
    assert scratch["steps"] == distilled["steps"] == 8              # 256 images: 4 batches a pass
    assert scratch["params"] == distilled["params"] < 100_000
    assert {"test_accuracy", "val_accuracy", "kept_test_accuracy", "seconds", "curves"} <= distilled.keys()
    assert distilled["test_images"] == 100 and len(distilled["curves"]["val_accuracy"]) == 2
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_pilot_reads_validation_only_and_resumes(tmp_path, monkeypatch, fixture_data):
    monkeypatch.setattr(fashion, "fashion_splits", lambda: fixture_data)
    monkeypatch.setattr(distillation, "PILOT_STEPS", (4, 8))
    monkeypatch.setattr(distillation, "PILOT_SEEDS", (0,))
    records = distillation.pilot(TINY, tmp_path / "reports", tmp_path / "work")
    assert [r["asked_steps"] for r in records] == [4, 8]
    assert all("test_accuracy" not in r and 0 <= r["val_accuracy"] <= 1 for r in records)
    again = distillation.pilot(TINY, tmp_path / "reports", tmp_path / "work")   # nothing left to run
    assert [r["seconds"] for r in again] == [r["seconds"] for r in records]
