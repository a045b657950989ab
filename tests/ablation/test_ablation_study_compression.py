"""The compression study's run function on a tiny budget: the committed default model as the
source, the fixture as Fashion-MNIST, a few fine-tune steps, real TF-MOT and TFLite files."""
import pytest

from training.ablation.study import Budget
from training.ablation.studies.compression import STUDY, TEACHER

TINY = Budget(train_images=300, steps=5, batch_size=64, seeds=(0,), test_images=100)


def variant(name):
    return next(v for v in STUDY.variants if v.name == name)


def test_every_claim_names_variants_of_its_group():
    groups = {v.name: v.group for v in STUDY.variants}
    assert len(groups) == len(STUDY.variants) and set(groups.values()) == {"size"}
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


def test_pqat_is_compared_with_int8_pruned_for_as_many_steps(tmp_path):
    """prune75-4x1+pqat fine-tunes twice (prune, then pqat): its claims name a control whose
    pruning stage gets both budgets, and the old half-budget int8 variant stays measured."""
    from training.ablation.studies.compression import _config
    from training.models.published import load_keras_model
    _, meta = load_keras_model(TEACHER)
    pqat = [c for c in STUDY.claims if c.variant == "prune75-4x1+pqat"]
    assert pqat and all(c.baseline == "prune75-4x1-long+int8" for c in pqat)
    assert variant("prune75-4x1+int8").settings.get("prune_budgets") is None
    long = _config(meta["config"], variant("prune75-4x1-long+int8"), 0, TINY, tmp_path, 2).optimize
    paired = _config(meta["config"], variant("prune75-4x1+pqat"), 0, TINY, tmp_path, 2).optimize
    assert long.prune_epochs == paired.prune_epochs + paired.qat_epochs == 4
    assert (long.sparsity, long.dense_block) == (paired.sparsity, paired.dense_block)


@pytest.mark.slow
def test_long_pruned_control_runs_as_many_steps_as_pqat(tmp_path, fixture_as_fashion):
    record = STUDY.run(variant("prune75-4x1-long+int8"), 0, TINY, tmp_path / "run")
    assert record["steps"] == 2 * 5 and record["quantization"] == "int8"   # 2 budgets of one 5-batch pass
    assert record["nonzero_params"] < 0.3 * record["params"]
