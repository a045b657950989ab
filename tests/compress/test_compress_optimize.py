"""``python -m training optimize`` publishes a new version that records its lineage."""
import json

import numpy as np
import pytest

from artifact.versions import versions
from training.cli.main import main
from training.models.published import load_keras_model
from training.publish.release import publish_version
from training.compress.prune import sparsity_report


@pytest.fixture(scope="module")
def source(trained):
    cfg, result = trained
    return cfg, publish_version(cfg, result.model, result.test, extra={}, force=True)


@pytest.mark.slow   # minutes on 2 cores: four stages, each converting and evaluating
def test_optimize_publishes_a_version_with_lineage(source, capsys):
    cfg, source_dir = source
    main(["optimize", "--from", str(source_dir), "--stages", "distill,prune,pqat,int8",
          "--student-set", "model.widths=[4,8]", "--distill-epochs", "1", "--alpha", "0.2",
          "--sparsity", "0.5", "--prune-epochs", "1", "--qat-epochs", "1",
          "--calibration-samples", "50", "--set", "data.limit=640", "--force",
          # a version's own places are not inherited (another machine's paths): publish beside it
          "--set", f"models_dir={cfg.models_dir}", "--set", f"output_dir={cfg.output_dir}"])
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


def optimize_config(*argv):
    from training.cli.main import build_parser
    from training.cli.optimize import config_from_args
    return config_from_args(build_parser().parse_args(["optimize", *argv]))


def test_set_and_yaml_reach_the_pruning_and_distillation_settings(tmp_path):
    from training.compress.optimize import prune_settings
    settings = prune_settings(optimize_config("--set", "optimize.sparsity=0.6",
                                              "--set", "optimize.dense_block=[4, 1]"))
    assert (settings.target, settings.dense_block, settings.keep_ends) == (0.6, (4, 1), True)

    preset = tmp_path / "compress.yaml"
    preset.write_text("optimize:\n  stages: [distill, prune, int8]\n  sparsity: 0.5\n  keep_ends: false\n"
                      "  ramp: 0.5\n  prune_epochs: 3\ndistill:\n  alpha: 0.2\n  temperature: 2\n")
    cfg = optimize_config("--preset", str(preset))
    settings = prune_settings(cfg)
    assert (settings.target, settings.keep_ends, settings.ramp, settings.epochs) == (0.5, False, 0.5, 3)
    assert cfg.optimize.stages == ["distill", "prune", "int8"]
    assert (cfg.distill.alpha, cfg.distill.temperature) == (0.2, 2.0)


def test_flags_are_shorthands_and_an_explicit_set_wins():
    from training.compress.optimize import prune_settings
    cfg = optimize_config("--sparsity", "0.6", "--set", "optimize.sparsity=0.7", "--dense-block", "2,1",
                          "--prune-ends", "--unlabelled", "--stages", "prune, pqat, int8", "--qat-lr", "0.001")
    assert cfg.optimize.sparsity == 0.7 and cfg.optimize.dense_block == [2, 1]
    assert cfg.optimize.keep_ends is False and cfg.distill.labelled is False
    assert cfg.optimize.stages == ["prune", "pqat", "int8"] and cfg.optimize.qat_learning_rate == 0.001
    two_four = prune_settings(optimize_config("--two-four"))
    assert (two_four.target, two_four.m_by_n) == (0.5, (2, 4))
    unset = optimize_config()                        # no flag given: the config's own defaults
    assert unset.optimize.sparsity == 0.75 and unset.optimize.stages == ["prune", "int8"]


@pytest.mark.parametrize("override, message", [
    ("optimize.sparsty=0.5", "unknown config key 'optimize.sparsty'"),
    ("optimize.ramp=0", "'optimize.ramp' must be in (0, 1], got 0.0"),
    ("optimize.stages=[int8, prune]", "out of order"),
])
def test_bad_compression_settings_stop_the_cli_before_any_training(override, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["optimize", "--preset", "tiny", "--set", override, "--set", f"output_dir={tmp_path}"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())               # nothing trained
