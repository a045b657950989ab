"""Every command refuses bad input before it spends time: exit 2 (usage), one line saying
what is wrong, and nothing written. One row per mistake; each runs the real command in a
fresh folder holding only the inputs the row needs, and the folder is compared before and
after."""
import shutil

import numpy as np
import pytest
from PIL import Image

from artifact import captures
from artifact import drift
from artifact import metadata as md
from support.builders import ROOT
from training.cli.main import main

SMALL_VERSION = ROOT / "models" / "fashion-small" / "2"     # a committed version: tflite, weights, metadata


def write_inputs(folder):
    """The files rows refer to, under ``inputs/``."""
    inputs = folder / "inputs"
    for name in ("a", "b", "c"):                 # one image per class
        (inputs / "one-per-class" / name).mkdir(parents=True)
        Image.fromarray(np.full((20, 20), 60 * "abc".index(name), np.uint8)).save(inputs / "one-per-class" / name / "x.png")
    (inputs / "not-hdf5.h5").write_text("these are not weights\n")
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(inputs / "shirt.png")
    corrupt = inputs / "models" / "fashion" / "1"
    shutil.copytree(SMALL_VERSION, corrupt, ignore=shutil.ignore_patterns("saved_model"))
    (corrupt / "model.tflite").write_bytes(b"TFL3 but truncated")
    (inputs / "models" / "fashion" / "1" / "keras_weights.h5").write_text("not hdf5 either\n")
    captured = inputs / "captured"                  # one capture of fashion/1 (the service's format), no label yet
    (captured / "fashion").mkdir(parents=True)
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(captured / "fashion" / "r1.png")
    captures.append(captured, captures.INDEX, [{"request_id": "r1", "time": "2026-01-01T00:00:00.000Z",
                                                "model": "fashion", "version": 1, "prediction": "Bag",
                                                "confidence": 0.9, "probabilities": [0.9, 0.1],
                                                "file": "fashion/r1.png"}])
    labelled = inputs / "labelled"                  # the same, labelled Bag: not a class of one-per-class
    shutil.copytree(captured, labelled)
    captures.append(labelled, captures.LABELS, [{"request_id": "r1", "label": "Bag", "time": "2026-01-01T00:00:01Z"}])
    watched = inputs / "models" / "watched" / "1"            # metadata with a drift reference: all drift reads
    watched.mkdir(parents=True)
    meta = md.read(SMALL_VERSION)
    probs = np.random.default_rng(0).dirichlet(np.ones(len(meta.labels)), 100)
    md.write(watched, meta.updated({drift.BLOCK: drift.reference_block(probs, meta.labels)}))
    (inputs / "captures").mkdir()
    (inputs / "captures" / "index.jsonl").write_text('{"model": "watched", "version": 1, "probabilities": [1.0]}\n')
    (inputs / "other-captures").mkdir()
    (inputs / "other-captures" / "index.jsonl").write_text('{"model": "other", "version": 1, "probabilities": []}\n')


TINY = ["--preset", "tiny"]
ROWS = [
    # (command line, what the one line must say)
    (["train", *TINY, "--set", "train.optimizer=foo"], "'train.optimizer' must be one of adam, adamw, sgd"),
    (["train", *TINY, "--set", "train.schedule=foo"], "'train.schedule' must be one of"),
    (["train", *TINY, "--set", "model.name=foo"], "'model.name' must be one of cnn, resnet, transfer"),
    (["train", *TINY, "--set", "model.activation=foo"], "'model.activation' must be one of"),
    (["train", *TINY, "--set", "train.learning_rate=-1"], "'train.learning_rate' must be above 0"),
    (["train", *TINY, "--set", "data.validation_split=1.5"], "'data.validation_split' must be in [0, 1)"),
    (["train", *TINY, "--set", "train.epochs=0"], "'train.epochs' must be at least 1"),
    (["train", *TINY, "--set", "nosuch.key=1"], "unknown config key 'nosuch'"),
    (["train", "--preset", "nosuch"], "no config file or preset 'nosuch'"),
    (["train", "--preset", "folder", "--set", "data.path=inputs/one-per-class"], "image folder"),
    (["train", "--preset", "folder", "--set", "data.path=inputs/missing"], "inputs/missing"),
    (["publish", *TINY, "--checkpoint", "inputs/not-hdf5.h5"], "inputs/not-hdf5.h5"),
    (["publish", *TINY, "--checkpoint", "inputs/none.h5"], "inputs/none.h5"),
    (["config", *TINY, "--set", "optimize.stages=prune,int8"], "optimize.stages=[prune,int8]"),
    (["evaluate", *TINY, "--images", "inputs/shirt.png"], "--images needs --model-dir"),
    (["evaluate", "--model-dir", "inputs/models/fashion/1", "--images", "inputs/shirt.png"], "model.tflite"),
    (["evaluate", "--model-dir", "inputs/nowhere/1"], "inputs/nowhere/1"),
    (["preview-augment", *TINY, "--samples", "0"], "--samples"),
    (["optimize", "--from", "inputs/models/fashion/1", "--stages", "prune,prune"], "prune"),
    (["optimize", "--from", "inputs/models/fashion/1", "--stages", ""], "stage"),
    (["optimize", "--from", "inputs/models/fashion/1", "--stages", "prune,int8"], "keras_weights.h5"),
    (["transfer", *TINY, "--backbone", "nosuch"], "unknown backbone 'nosuch'"),
    (["retrain", "--name", "typo", "--models-dir", "inputs/models"], "typo"),
    (["retrain", "--name", "fashion", "--models-dir", "inputs/missing"], "inputs/missing"),
    (["rollback", "--name", "typo", "--models-dir", "inputs/models"], "typo"),
    (["retrain", "--name", "fashion", "--models-dir", "inputs/models", "--canary", "150"], "within 0-100"),
    (["label", "--name", "typo", "--models-dir", "inputs/models", "--list"], "typo"),
    (["label", "--name", "fashion", "--models-dir", "inputs/missing", "--promote"], "inputs/missing"),
    (["label", "--name", "fashion", "--models-dir", "inputs/models", "--stable", "7"], "version 7 is not published"),
    (["label", "--name", "fashion", "--models-dir", "inputs/models", "--canary", "1", "--percent", "150"],
     "within 0-100"),
    (["label", "--name", "fashion", "--models-dir", "inputs/models", "--canary", "1"], "version 1 is stable"),
    (["label", "--name", "fashion", "--models-dir", "inputs/models", "--promote"], "no canary to promote"),
    (["label", "--name", "fashion", "--models-dir", "inputs/models", "--abort"], "no canary to abort"),
    (["feedback", "--capture-dir", "inputs/missing", "--request-id", "r1", "--label", "Bag"], "inputs/missing"),
    (["feedback", "--capture-dir", "inputs/captured", "--request-id", "r2", "--label", "Bag",
      "--models-dir", "inputs/models"], "'r2' was not captured"),
    (["feedback", "--capture-dir", "inputs/captured", "--request-id", "r1", "--label", "Spaceship",
      "--models-dir", "inputs/models"], "'Spaceship' is not a class of fashion version 1"),
    (["feedback", "--capture-dir", "inputs/captured", "--request-id", "r1", "--label", "Bag",
      "--models-dir", "inputs/nowhere"], "inputs/nowhere"),
    (["captures", "--capture-dir", "inputs/missing", "--out", "out"], "inputs/missing"),
    (["captures", "--capture-dir", "inputs/captured", "--out", "out"], "no labelled captures"),
    (["captures", "--capture-dir", "inputs/labelled", "--out", "out", "--merge-with", "inputs/one-per-class"],
     "'Bag' is not a class of"),
    (["captures", "--capture-dir", "inputs/labelled", "--out", "out", "--merge-with", "inputs/missing"],
     "inputs/missing"),
    (["captures", "--capture-dir", "inputs/labelled", "--out", "inputs/one-per-class"], "not empty"),
    (["ablate", "--study", "nosuch"], "unknown study 'nosuch'"),
    (["drift", "--name", "typo", "--models-dir", "inputs/models", "--capture-dir", "inputs/captures"], "typo"),
    (["drift", "--name", "watched", "--models-dir", "inputs/missing", "--capture-dir", "inputs/captures"],
     "inputs/missing"),
    (["drift", "--name", "watched", "--models-dir", "inputs/models"], "drift needs --capture-dir"),
    (["drift", "--name", "watched", "--models-dir", "inputs/models", "--capture-dir", "inputs"], "no captures"),
    (["drift", "--name", "watched", "--models-dir", "inputs/models", "--capture-dir", "inputs/captures"],
     "probabilities must be a list of 10 numbers"),
    (["drift", "--name", "watched", "--models-dir", "inputs/models", "--capture-dir", "inputs/other-captures"],
     "no captures of 'watched' version 1"),
    (["drift", "--name", "watched", "--models-dir", "inputs/models", "--capture-dir", "inputs/captures",
      "--version", "2"], "no published version 2"),
    (["drift", "--name", "fashion", "--models-dir", "inputs/models", "--capture-dir", "inputs/captures"],
     "has no drift_reference"),
    (["drift", "--name", "fashion", "--models-dir", "inputs/models", "--record-reference"], "needs --version"),
]


def tree(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("argv,says", ROWS, ids=[" ".join(argv)[:60] for argv, _ in ROWS])
def test_a_bad_input_is_refused_with_one_line_and_nothing_written(argv, says, tmp_path, monkeypatch, capsys):
    write_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith(("usage:", " "))]
    assert exit_.value.code == 2, err
    problems = [line for line in err if "error:" in line]
    assert len(problems) == 1 and says in problems[0], err
    assert tree(tmp_path) == before
