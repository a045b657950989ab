"""The transfer study's run function on a tiny budget: the fixture as Fashion-MNIST, the source
model trained and published once into the source directory, then reused."""
import numpy as np
import pytest

from training.ablation.study import Budget
from training.ablation.studies import transfer

TINY = Budget(train_images=None, steps=4, batch_size=16, seeds=(0,), test_images=60)


def test_variants_cover_every_method_and_recipe_at_every_k():
    names = (*transfer.METHODS, *(n for n in transfer.HEADS if n != "frozen"),
             *(n for n in transfer.RATES if n != "finetune"), "frozen-linear")
    keys = {(v.name, v.group) for v in transfer.STUDY.variants}
    assert keys == {(name, str(k)) for name in names for k in transfer.KS}
    for v in transfer.STUDY.variants:
        assert v.settings["k"] == int(v.group)
        if v.settings["method"] == "finetune":       # every rate on the same head recipe
            assert v.settings["fine_tune_learning_rate"] == transfer.RATES[v.name]
            assert {key: v.settings[key] for key in transfer.HEADS["frozen"]} == transfer.HEADS["frozen"]
        elif v.settings["method"] == "frozen":
            recipe = transfer.LINEAR if v.name == "frozen-linear" else transfer.HEADS[v.name]
            assert {key: v.settings[key] for key in recipe} == recipe
    for claim in transfer.STUDY.claims:
        assert {(claim.variant, claim.group), (claim.baseline, claim.group)} <= keys


def test_k_shot_draws_k_per_class_by_seed_and_validation_from_the_rest(fixture_data):
    pool = transfer.classes(fixture_data[0], transfer.TARGET)
    a, b = transfer.k_shot(pool, 3, seed=0), transfer.k_shot(pool, 3, seed=1)
    assert sorted(a.y.tolist()) == sorted([c for c in range(5) for _ in range(3)])
    assert a.x.tobytes() != b.x.tobytes()
    val = transfer.validation(pool, 3, seed=0, images=100)
    assert len(val) == 100 and transfer.validation(pool, 3, 0, 100).x.tobytes() == val.x.tobytes()
    drawn = {image.tobytes() for image in a.x}
    assert not drawn & {image.tobytes() for image in val.x}     # never an image the methods train on
    everything = transfer.validation(pool, 3, seed=0, images=10 ** 6)
    assert len(everything) == len(pool) - len(a)


@pytest.mark.slow
def test_every_method_gets_the_same_steps_and_reuses_the_source(tmp_path, fixture_as_fashion, monkeypatch):
    monkeypatch.setattr(transfer, "SOURCE_EPOCHS", 1)
    monkeypatch.setattr(transfer, "SOURCE_DIR", tmp_path / "source")
    monkeypatch.setattr(transfer, "VALIDATION_IMAGES", 40)
    study_dir = tmp_path / "transfer"      # the runner gives each run a directory inside it
    records = {v.name: transfer.STUDY.run(v, 0, TINY, study_dir / v.group / f"{v.name}-0")
               for v in transfer.STUDY.variants if v.settings["k"] == 10}
    for name, record in records.items():
        assert 0 <= record["val_accuracy"] <= 1 and 0 <= record["test_accuracy"] <= 1
        if name != "probe":
            assert record["steps"] == TINY.steps and {"seconds", "final_train_loss"} <= record.keys()
    assert records["probe"]["steps"] == 0 and records["probe"]["probe_iterations"] > 0
    assert all(r["k"] == 10 and r["train_images"] == 50 and r["test_images"] == 60 and r["val_images"] == 40
               for r in records.values())
    assert len({r["source_test_accuracy"] for r in records.values()}) == 1
    versions = list((tmp_path / "source" / "fashion-source").iterdir())
    assert len(versions) == 1          # trained once, then reused
    assert sorted(p.name for p in versions[0].iterdir()) == ["keras_weights.h5", "metadata.json"]
