"""The shipped energy rule, checked on a published version that has the energy output.

    python benchmarks/energy_rule.py [--model fashion/4] [--same-as fashion/3]

One JSON line each:

- ``agreement``: the version's served files (TFLite and SavedModel, through the service's
  runners) against ``training.publish.ood.energy`` of the Keras model's logits at the
  version's temperature (max absolute difference), and, with ``--same-as``, whether their
  probabilities equal that version's on the test split (a re-export of the same weights);
- ``rule``: the version's ``serving.max_energy`` (chosen on the validation split at publish)
  applied to the test split (share accepted) and to each foreign set of
  ``training.data.foreign`` (share rejected), with the energy's AUROC at the served
  temperature and at T = 1 (what ``benchmarks/ood.py`` measures).

Writes ``reports/energy_rule.jsonl``.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from artifact import metadata as md  # noqa: E402
from artifact.litert import LiteRTRunner  # noqa: E402
from artifact.saved_model import SavedModelRunner  # noqa: E402

from training.config import config_from_dict  # noqa: E402
from training.data import foreign  # noqa: E402
from training.data.datasets import load_data  # noqa: E402
from training.models.published import load_keras_model  # noqa: E402
from training.publish import ood  # noqa: E402


def emit(line: dict, sink) -> None:
    text = json.dumps(line)
    print(text, flush=True)
    sink.write(text + "\n")


def runners(directory: Path) -> dict:
    meta = md.read(directory)
    return {"tflite": LiteRTRunner(directory / meta.formats.tflite.path),
            "saved_model": SavedModelRunner.for_format(directory, meta.formats.saved_model)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="fashion/4")
    parser.add_argument("--same-as", default="fashion/3", help="a version with the same weights and temperature "
                        "('' for none)")
    parser.add_argument("--models-dir", default=str(ROOT / "models"))
    parser.add_argument("--out", default=str(ROOT / "reports" / "energy_rule.jsonl"))
    args = parser.parse_args(argv)
    directory = Path(args.models_dir) / args.model
    meta = md.read(directory)
    temperature = (meta.extra.get("calibration") or {}).get("temperature", 1.0)
    limit = (meta.extra.get("serving") or {}).get("max_energy")
    if limit is None:
        raise SystemExit(f"{directory} has no serving.max_energy (published before the energy rule)")
    cfg = config_from_dict({k: v for k, v in meta.config.items() if k not in ("models_dir", "output_dir")})
    _, _, test = load_data(cfg.data)
    model, _ = load_keras_model(directory)
    logits = ood.outputs(model, test.x)["logits"]
    expected = ood.energy(logits, temperature)

    served = {fmt: runner.predict_energy(test.x) for fmt, runner in runners(directory).items()}
    line = {"benchmark": "energy_rule", "kind": "agreement", "model": args.model, "temperature": temperature,
            "test_images": len(test)}
    for fmt, (_, energy) in served.items():
        line[f"energy_max_abs_diff_{fmt}"] = float(np.abs(energy - expected).max())
    if args.same_as:
        other = {fmt: runner.predict(test.x) for fmt, runner in runners(Path(args.models_dir) / args.same_as).items()}
        line["same_as"] = args.same_as
        for fmt, (probabilities, _) in served.items():
            line[f"probabilities_equal_{fmt}"] = bool(np.array_equal(probabilities, other[fmt]))
    with open(args.out, "w") as sink:
        emit(line, sink)
        test_energy = served["tflite"][1]
        line = {"benchmark": "energy_rule", "kind": "rule", "model": args.model, "max_energy": limit,
                "chosen_on": (meta.extra["serving"].get("energy_rule") or {}),
                "test_accepted": round(float(np.mean(test_energy <= limit)), 4), "foreign": {}}
        tflite = runners(directory)["tflite"]
        for name, images in foreign.foreign_sets().items():
            _, energy = tflite.predict_energy(images)
            line["foreign"][name] = {
                "images": len(images), "rejected": round(float(np.mean(energy > limit)), 4),
                "auroc_served_temperature": round(ood.auroc(test_energy, energy), 4),
                "auroc_t1": round(ood.auroc(ood.energy(logits), ood.energy(ood.outputs(model, images)["logits"])), 4)}
        emit(line, sink)


if __name__ == "__main__":
    main()
