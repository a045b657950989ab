"""``python -m training calibrate``: publish a calibrated copy of a published version.

    python -m training calibrate --from models/fashion/2

The version's Keras model is rebuilt (same weights), a temperature is fitted on the
validation split of its recorded data, and the model goes through the one publish
path (``training.publish.release.publish_version``) as the next version of the same
model, with the temperature baked into its SavedModel and TFLite graphs: the same
answers, calibrated probabilities. The test split is read only to score and report.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from training.cli.common import add_config_args, add_force_arg, with_absolute_data

# Blocks of the source version that still describe the new one: the weights, and so how they
# were trained, are the same (a retrain of the copy keeps the recipe).
KEPT_BLOCKS = ("resolved", "techniques", "preset", "dataset", "training", "transfer", "stages")
# Exports that need nothing but the model: int8 needs its representative images, a QAT
# model cannot be rebuilt from its float twin's weights.
QUANTIZATIONS = ("none", "dynamic", "float16")


def add_parser(sub) -> None:
    p = sub.add_parser("calibrate", help="publish a published version again with a temperature fitted "
                                         "on its validation split baked in (calibrated probabilities)")
    add_config_args(p)
    p.add_argument("--from", dest="source", metavar="VERSION_DIR", required=True,
                   help="the published version to calibrate, e.g. models/fashion/2; the copy is published "
                        "as the next version of the same model, in the same repository")
    add_force_arg(p)
    p.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args) -> None:
    from artifact import metadata as md
    from training.config import ConfigError, load_config
    from training.data.datasets import DataError, load_data
    from training.models.published import load_keras_model
    from training.publish.release import publish_version

    source = Path(args.source)
    meta = md.read(source)
    quantization = meta.formats.tflite.quantization if meta.formats.tflite else "none"
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"{source} is a {quantization} export; calibrate re-exports {', '.join(QUANTIZATIONS)} "
                          "versions only (calibration happens at publish: re-run the optimize that made it)")
    # the recorded recipe, published next to the source (its recorded places are another machine's)
    recorded = {k: v for k, v in meta.config.items() if k not in ("models_dir", "output_dir")}
    cfg = with_absolute_data(load_config(None, args.overrides, base=recorded))
    cfg = replace(cfg, name=meta.name, models_dir=str(source.parent.parent))
    if not cfg.publish.calibrate:
        raise ConfigError("publish.calibrate is false: nothing to calibrate")
    train, validation, test = load_data(cfg.data)
    for split, data in (("validation", validation), ("test", test)):
        recorded_split = (meta.dataset or {}).get(split) or {}
        if recorded_split.get("sha256") not in (None, data.fingerprint()["sha256"]):
            raise DataError(f"the {split} split loaded differs from the one {source} records: the temperature "
                            "must be fitted (and reported) on the version's own splits")
    model, recorded_meta = load_keras_model(source)
    extra = {k: recorded_meta[k] for k in KEPT_BLOCKS if k in recorded_meta}
    parent = {"name": meta.name, "version": meta.version, "path": str(source)}
    published = publish_version(cfg, model, test, extra=extra, parent=parent, quantization=quantization,
                                force=args.force, validation=validation,
                                history=(recorded_meta.get("training") or {}).get("history"))
    print(json.dumps({"published": str(published), "calibration": md.read(published).extra.get("calibration")}))
