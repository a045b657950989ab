"""The tta study: one variant read three ways and its claims; the reading is the export's own
serving function (what an exported TFLite file answers); and (slow) one run of its run function
on the fixture."""
import numpy as np
import pytest

from training.ablation import fashion
from training.ablation.study import Budget, Variant
from training.ablation.studies import tta as study


def test_one_variant_read_three_ways():
    (variant,) = study.STUDY.variants
    assert variant.settings == {**study.BASE, "tta": True}
    assert variant.settings["augment.flip"] and variant.settings["augment.translate"] > 0   # views to average
    readings = {"served_test_accuracy", "tta_test_accuracy", "tta_flip_test_accuracy"}
    for claim in study.STUDY.claims:
        assert claim.variant == claim.baseline == variant.name
        assert {claim.metric, claim.against} <= readings and claim.metric != claim.against
        assert claim.kind == "better" and claim.higher_is_better
    assert {c.against for c in study.STUDY.claims} >= {"served_test_accuracy"}
    assert len(set(study.STUDY.budget.seeds)) >= 5
    from training.ablation.runner import STUDIES
    assert STUDIES["tta"] is study.STUDY


def test_the_view_sets_are_what_publish_tta_bakes_in():
    cfg = fashion.run_config(dict(study.BASE), 0, study.STUDY.budget, 25600, "unused")
    sets = fashion.tta_view_sets(cfg, 28)
    assert sets["served"] == ()
    assert [v.name for v in sets["tta"]] == ["identity", "flip", "up1", "down1", "left1", "right1"]
    assert [v.name for v in sets["tta_flip"]] == ["identity", "flip"]


def test_the_reading_is_what_the_exported_file_answers(tmp_path, fixture_data):
    """The study reads ``ServingModule.serve``: with each set of views its probabilities are the
    TFLite file's that the export writes with those views."""
    from artifact.litert import LiteRTRunner
    from support.builders import tiny_config

    from training.keras2 import keras
    from training.models.registry import build_for_experiment
    from training.publish.export import export_files
    train, _, test = fixture_data
    cfg = tiny_config(None)
    keras.utils.set_random_seed(0)
    model = build_for_experiment(cfg, train.input_shape, len(train.class_names))
    sets = fashion.tta_view_sets(cfg, 28)
    x = test.x[:50]
    read = {name: fashion.served_probabilities(model, x, views) for name, views in sets.items()}
    assert np.abs(read["tta"] - read["served"]).max() > 1e-3 and np.abs(read["tta"] - read["tta_flip"]).max() > 1e-3
    for name, views in sets.items():
        export_files(tmp_path / name, model, name="t", class_names=train.class_names, color_mode="L", views=views)
        np.testing.assert_allclose(read[name], LiteRTRunner(tmp_path / name / "model.tflite").predict(x), atol=2e-5)
    accuracies = fashion.served_accuracies(model, {"test": test.take(50)}, sets)
    assert accuracies == {f"{name}_test_accuracy": float(np.mean(p.argmax(1) == test.y[:50])) for name, p in read.items()}


@pytest.mark.slow
def test_run_records_every_reading_on_test_and_validation(tmp_path, fixture_as_fashion):
    fashion.fashion_splits.cache_clear()
    budget = Budget(train_images=None, steps=4, batch_size=16, seeds=(0,), test_images=60)
    settings = {**study.STUDY.variants[0].settings, "model.widths": [8, 16]}   # a smaller network, same knobs
    try:
        record = fashion.fashion_run({}, curves=False)(Variant("fashion2", settings), 0, budget, tmp_path / "run")
    finally:
        fashion.fashion_splits.cache_clear()
    for view in ("served", "tta", "tta_flip"):
        for split in ("test", "val"):
            assert 0.0 <= record[f"{view}_{split}_accuracy"] <= 1.0
    assert record["test_images"] == 60 and not (tmp_path / "run").exists()
