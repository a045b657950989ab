"""``optimize``'s defaults: what --help states is what runs, and one distillation alpha everywhere."""
import json
import re
from pathlib import Path

import pytest

from training.cli.main import build_parser
from training.cli.optimize import config_from_args
from training.config import DistillConfig, OptimizeConfig

ROOT = Path(__file__).resolve().parents[2]


def optimize_help(capsys) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["optimize", "--help"])
    return " ".join(capsys.readouterr().out.split())      # argparse wraps lines anywhere


def test_help_states_the_defaults_that_run(capsys):
    text = optimize_help(capsys)
    cfg = config_from_args(build_parser().parse_args(["optimize"]))
    o, d = cfg.optimize, cfg.distill
    assert f"default {','.join(o.stages)}" in text
    assert f"(default {','.join(map(str, o.dense_block))})" in text
    assert f"--prune-epochs PRUNE_EPOCHS fine-tune epochs while pruning (default {o.prune_epochs})" in text
    assert f"hard-label weight (default {d.alpha})" in text
    assert (o.stages, o.dense_block, o.prune_epochs) == (OptimizeConfig().stages, OptimizeConfig().dense_block,
                                                         OptimizeConfig().prune_epochs)


def test_a_version_saved_elsewhere_with_older_compression_settings_gets_the_current_defaults(tmp_path):
    version = tmp_path / "fashion" / "1"
    version.mkdir(parents=True)
    saved = json.loads((ROOT / "tests" / "data" / "metadata_schema0.json").read_text())
    saved["config"]["optimize"] = {"stages": ["prune", "pqat", "int8"], "dense_block": [1, 1], "prune_epochs": 2}
    saved["config"] |= {"models_dir": "/elsewhere/models", "output_dir": "/elsewhere/runs"}
    (version / "metadata.json").write_text(json.dumps(saved))
    cfg = config_from_args(build_parser().parse_args(["optimize", "--from", str(version)]))
    assert (cfg.optimize.stages, cfg.optimize.dense_block, cfg.optimize.prune_epochs) == (["prune", "int8"], [4, 1], 3)
    assert (cfg.models_dir, cfg.output_dir) == ("models", "runs")
    assert cfg.model.widths == saved["config"]["model"]["widths"]      # how the version was made is kept


def test_stages_flag_overrides_the_default():
    cfg = config_from_args(build_parser().parse_args(["optimize", "--stages", "prune,pqat,int8"]))
    assert cfg.optimize.stages == ["prune", "pqat", "int8"]


def test_one_distillation_alpha_in_docs_and_code():
    """Every alpha written in the docs, the README and the training code is the default
    (0 is the unlabelled case, not a choice of weight)."""
    pattern = re.compile(r"(?:--alpha|distill\.alpha=|alpha:|alpha =|alpha)\s*([0-9]*\.[0-9]+|[1-9])\b")
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "training").glob("*.py"))]
    found = {}
    for path in files:
        for line in path.read_text().splitlines():
            if "transfer" in line or "width multiplier" in line:
                continue                  # transfer.alpha is MobileNetV2's width, not this one
            for value in pattern.findall(line):
                found.setdefault(float(value), []).append(f"{path.name}: {line.strip()}")
    assert set(found) <= {DistillConfig.alpha}, found
    assert DistillConfig.alpha in found        # it is documented somewhere


def test_a_list_key_given_as_a_comma_string_shows_the_list_syntax(capsys):
    from training.cli.main import main
    with pytest.raises(SystemExit) as exit_info:
        main(["optimize", "--set", "optimize.stages=prune,int8"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    assert "'optimize.stages' must be a list of str" in err and '--set "optimize.stages=[prune,int8]"' in err
