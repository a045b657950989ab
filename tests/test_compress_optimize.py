"""``python -m training optimize`` publishes a new version that records its lineage."""
import json

import numpy as np
import pytest

from artifact.versions import versions
from compress_helpers import trained_tiny
from training.cli import main
from training.cli_train import publish_model
from training.publish import load_keras_model
from training.prune import sparsity_report


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("optimize")
    cfg, result = trained_tiny(tmp)
    return cfg, publish_model(cfg, result.model, result.test, extra={})


@pytest.mark.slow   # minutes on 2 cores: four stages, each converting and evaluating
def test_optimize_publishes_a_version_with_lineage(source, capsys):
    cfg, source_dir = source
    main(["optimize", "--from", str(source_dir), "--stages", "distill,prune,pqat,int8",
          "--student-set", "model.widths=[4,8]", "--distill-epochs", "1", "--alpha", "0.2",
          "--sparsity", "0.5", "--prune-epochs", "1", "--qat-epochs", "1",
          "--calibration-samples", "50", "--set", "data.limit=640"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    published = source_dir.parent / "2"
    assert printed["published"] == str(published)
    assert versions(cfg.models_dir, cfg.name) == [1, 2]

    meta = json.loads((published / "metadata.json").read_text())
    assert meta["parent"] == {"name": cfg.name, "version": 1, "path": str(source_dir)}
    assert [r["stage"] for r in meta["stages"]] == ["source", "distill", "prune", "pqat", "int8"]
    for record in meta["stages"]:
        assert {"keras_accuracy", "tflite_accuracy", "params", "nonzero_params",
                "tflite_bytes", "tflite_gzip_bytes"} <= set(record["metrics"])
    distilled = meta["stages"][1]
    assert distilled["settings"]["alpha"] == 0.2
    assert distilled["metrics"]["params"] < meta["stages"][0]["metrics"]["params"]
    assert meta["stages"][3]["sparsity"]["layers"]["s1b0_conv"] == pytest.approx(0.5, abs=0.01)
    assert meta["stages"][3]["sparsity"]["layers"]["logits"] == 0.0      # first and last stay dense
    assert meta["formats"]["tflite"]["quantization"] == "qat"       # int8 from learned ranges
    assert meta["config"]["model"]["widths"] == [4, 8]             # the student's config
    assert meta["techniques"]["compression"] == ["distill", "prune", "pqat", "int8"]
    assert 0.0 <= meta["metrics"]["tflite"]["accuracy"] <= 1.0

    # The stored Keras weights are the float twin: the builder rebuilds it, sparse.
    model, _ = load_keras_model(published)
    assert sparsity_report(model)["layers"]["s1b0_conv"] == pytest.approx(0.5, abs=0.01)
    assert np.isfinite(model(np.zeros((1, 28, 28, 1), np.float32)).numpy()).all()
