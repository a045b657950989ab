"""The compression study's run function on a tiny budget: the committed default model as the
source, the fixture as Fashion-MNIST, a few fine-tune steps, real TF-MOT and TFLite files."""
import pytest

from training.ablation.study import Budget
from training.ablation.studies.compression import STUDY

TINY = Budget(train_images=300, steps=5, batch_size=64, seeds=(0,), test_images=100)


def variant(name):
    return next(v for v in STUDY.variants if v.name == name)


def test_every_claim_names_variants_of_its_group():
    groups = {v.name: v.group for v in STUDY.variants}
    assert len(groups) == len(STUDY.variants) and set(groups.values()) == {"size", "distill"}
    for claim in STUDY.claims:
        assert groups[claim.variant] == groups[claim.baseline] == claim.group


@pytest.mark.slow
def test_pruned_pqat_variant_is_sparse_int8_and_smaller(tmp_path, fixture_as_fashion):
    float_record = STUDY.run(variant("float"), 0, TINY, tmp_path / "run")
    record = STUDY.run(variant("prune75-4x1+pqat"), 0, TINY, tmp_path / "run")
    assert {"test_accuracy", "steps", "seconds", "gzip_bytes", "nonzero_params"} <= record.keys()
    assert record["quantization"] == "qat" and float_record["quantization"] == "none"
    assert record["steps"] == 2 * 5 and float_record["steps"] == 0      # 270 images: 5 batches a pass
    assert record["nonzero_params"] < 0.3 * record["params"]
    assert record["gzip_bytes"] < float_record["gzip_bytes"] / 4
    assert record["test_images"] == 100 and 0.0 <= record["test_accuracy"] <= 1.0
    assert not (tmp_path / "run").exists()      # checkpoints and files go when the run ends


@pytest.mark.slow
def test_distilled_student_trains_as_long_as_scratch(tmp_path, fixture_as_fashion):
    scratch = STUDY.run(variant("student"), 1, TINY, tmp_path / "run")
    distilled = STUDY.run(variant("distill-T2-a0.1"), 1, TINY, tmp_path / "run")
    assert scratch["steps"] == distilled["steps"] > 0
    assert scratch["params"] == distilled["params"] < 100_000
    assert distilled["final_train_loss"] > 0 and scratch["final_train_loss"] > 0
