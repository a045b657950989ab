"""The transfer study's run function on a tiny budget: the fixture as Fashion-MNIST, the source
model trained and published once into the workdir, then reused."""
import pytest

from training.ablation.study import Budget
from training.ablation.studies import transfer

TINY = Budget(train_images=None, steps=4, batch_size=16, seeds=(0,), test_images=60)


def test_variants_cover_every_method_at_every_k():
    keys = {(v.name, v.group) for v in transfer.STUDY.variants}
    assert keys == {(m, str(k)) for m in (*transfer.METHODS, "finetune-1e-5") for k in transfer.KS}
    slow = [v for v in transfer.STUDY.variants if v.name == "finetune-1e-5"]
    assert all(v.settings["method"] == "finetune" and v.settings["fine_tune_learning_rate"] == 1e-5 for v in slow)
    assert all(v.settings["k"] == int(v.group) for v in transfer.STUDY.variants)
    for claim in transfer.STUDY.claims:
        assert {(claim.variant, claim.group), (claim.baseline, claim.group)} <= keys


def test_k_shot_draws_k_per_class_by_seed(fixture_data):
    pool = transfer.classes(fixture_data[0], transfer.TARGET)
    a, b = transfer.k_shot(pool, 3, seed=0), transfer.k_shot(pool, 3, seed=1)
    assert sorted(a.y.tolist()) == sorted([c for c in range(5) for _ in range(3)])
    assert a.x.tobytes() != b.x.tobytes()


@pytest.mark.slow
def test_every_method_gets_the_same_steps_and_reuses_the_source(tmp_path, fixture_as_fashion, monkeypatch):
    monkeypatch.setattr(transfer, "SOURCE_EPOCHS", 1)
    study_dir = tmp_path / "transfer"      # the runner gives each run a directory inside it
    records = {v.name: transfer.STUDY.run(v, 0, TINY, study_dir / v.group / f"{v.name}-0")
               for v in transfer.STUDY.variants if v.settings["k"] == 10}
    for method in ("scratch", "frozen", "finetune", "finetune-1e-5"):
        assert records[method]["steps"] == TINY.steps
        assert {"test_accuracy", "seconds", "final_train_loss"} <= records[method].keys()
    assert records["probe"]["steps"] == 0 and records["probe"]["probe_iterations"] > 0
    assert all(r["k"] == 10 and r["train_images"] == 50 and r["test_images"] == 60 for r in records.values())
    assert len(list((study_dir / "source" / "models" / "fashion-source").iterdir())) == 1
