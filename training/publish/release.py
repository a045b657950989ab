"""The one publish path: stage a version, score it once, decide, write its metadata once.

``train --publish``, ``publish``, ``optimize``, ``transfer`` and ``retrain`` all call
``publish_version``:

1. ``artifact.versions.publish`` opens a hidden staging directory;
2. with a validation split (and ``publish.calibrate``), a temperature is fitted on the
   model's validation probabilities (``training.publish.calibration``; with ``publish.tta``,
   the mean over the test-time views the graphs will average, ``training.publish.tta``); the
   model's files are exported into the directory (SavedModel, TFLite, Keras weights), the
   temperature and the views baked into both graphs;
3. the staged version is scored once, through the runners the service uses, on the
   held-out test split (``training.publish.scoring``), ECE and NLL included;
4. each policy judges those scores (``training.publish.policies``); any refusal raises
   ``PublishRefused`` and the staging directory is removed;
   with a validation split, the staged served file answers it once more: those answers are the
   version's ``drift_reference`` (``artifact.drift``), what the service's drift test compares with,
   and (a file with the energy output) the energy rule's threshold, ``serving.max_energy``;
5. the metadata is built once (files, sizes, metrics, each verdict's record, the
   config and what the caller adds) and ``artifact`` writes it once, as it renames the
   directory into the next version.
"""
from __future__ import annotations

import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from artifact import drift
from artifact.versions import publish

from training.config import ExperimentConfig
from training.data.datasets import Dataset, dataset_record
from training.fit.train import TrainResult, predict_probabilities
from training.models.cnn import initializer_for
from training.publish import calibration, ood, tta
from training.publish.export import export_files
from training.publish.policies import Policy, PublishCheck, PublishRefused
from training.publish.scoring import SERVED_FORMAT, metrics_block, score_version, version_runner

log = logging.getLogger(__name__)


def techniques(cfg: ExperimentConfig) -> dict:
    """What the run applied, with the settings a reader needs to reproduce it."""
    init = initializer_for(cfg.model.activation, cfg.model.initializer)
    return {
        "initializer": {"choice": cfg.model.initializer, "resolved": type(init).__name__,
                        "activation": cfg.model.activation},
        "batch_norm": cfg.model.batch_norm,
        "dropout": {"stages": cfg.model.dropout, "head": cfg.model.head_dropout},
        "augmentation": cfg.augment.__dict__ if cfg.augment.enabled else False,
        "label_smoothing": cfg.train.label_smoothing,
        "weight_decay": cfg.model.weight_decay,
    }


# ``--set`` keys and flags that say where files go, not what is made: a path of the machine
# the command ran on, which another machine's rerun would not share.
WHERE_KEYS = ("models_dir", "output_dir")
WHERE_FLAGS = ("--models-dir", "--output-dir")


def command_line(forced: bool = False, argv=None) -> str:
    """The running command as a user would retype it to make this version again.

    Left out: where files went (``--set models_dir=...``, ``--set output_dir=...``,
    ``--models-dir``, ``--output-dir``), and ``--force`` unless it overrode a refusal
    (``forced``; the publish check records ``forced`` either way). A path under the working
    directory is written relative to it, so the line holds no path of the machine it ran on."""
    argv = list(sys.argv if argv is None else argv)
    script, args = Path(argv[0]), argv[1:]
    head = ["python", "-m", script.parent.name] if script.name == "__main__.py" else ["python", argv[0]]
    kept, skip = [], False
    for i, arg in enumerate(args):
        if skip:
            skip = False
            continue
        following = args[i + 1] if i + 1 < len(args) else ""
        if arg == "--force" and not forced:
            continue
        if arg in WHERE_FLAGS or (arg == "--set" and following.split("=", 1)[0] in WHERE_KEYS):
            skip = True
            continue
        if arg.split("=", 1)[0] in WHERE_FLAGS or (arg.startswith("--set=")
                                                    and arg[len("--set="):].split("=", 1)[0] in WHERE_KEYS):
            continue
        kept.append(_relative(arg))
    return shlex.join(head + kept)


def _relative(arg: str) -> str:
    """``arg`` (or the value of ``key=value``) with a path under the working directory made relative."""
    key, sep, value = arg.partition("=") if "=" in arg else ("", "", arg)
    if os.path.isabs(value):
        try:
            value = str(Path(value).relative_to(Path.cwd()))
        except ValueError:
            pass
    return f"{key}{sep}{value}"


def default_policies(cfg: ExperimentConfig) -> list:
    """What every publish must pass: the publish check."""
    return [PublishCheck.from_config(cfg.publish)]


def fit_calibration(cfg: ExperimentConfig, model, validation: Optional[Dataset], views: tuple = ()) -> Optional[dict]:
    """The temperature fitted on ``model``'s validation probabilities, as the start of the
    ``calibration`` block; None without a validation split or with ``publish.calibrate`` off.
    With test-time ``views`` the probabilities are their mean, as the graphs answer before the
    temperature (the mean of several views is softer than one view's answer).
    Only the validation split is read: the test split is for reporting, never for choosing."""
    if validation is None or len(validation) == 0 or not cfg.publish.calibrate:
        return None
    probabilities = predict_probabilities(tta.averaged(model, views) if views else model, validation)
    temperature = calibration.fit_temperature(probabilities, validation.y)
    log.info("calibration: temperature %.4f fitted on %d validation images", temperature, len(validation))
    return {"temperature": round(temperature, 6), "bins": calibration.BINS,
            "validation_examples": len(validation), "fitted_on": "validation"}


def calibration_block(fitted: dict, scores: dict, test: Dataset) -> dict:
    """``fitted`` completed with the test split's ECE and NLL before and after, from the
    staged TFLite file's probabilities; "before" un-tempers the same probabilities
    (softmax(log(p) * T)), which equals the un-calibrated graph's answer up to float rounding."""
    measured = scores.get(SERVED_FORMAT)
    if measured is None or measured.probabilities is None:
        return fitted | {"test": None, "measured_with": None}
    test = calibration.measures(measured.probabilities, test.y, fitted["temperature"])
    return fitted | {"test": test, "measured_with": SERVED_FORMAT}


# The energy rule keeps this share of in-distribution VALIDATION images: the operating point
# docs/evidence.md measured (FPR at 95% TPR; on fashion/3 it rejected 97% of digits and 99%
# of noise), and about the share a 5% refusal rate costs in answered clothes.
ENERGY_ACCEPT = ood.TPR


def served_answers(directory: Path, metadata, validation: Dataset) -> tuple:
    """(format, probabilities, energy or None): the validation split as the version's served
    file (TFLite, else the SavedModel) answers it, run as the service runs it."""
    fmt = SERVED_FORMAT if metadata.format_path(directory, SERVED_FORMAT) is not None else "saved_model"
    probabilities, energy = version_runner(directory, fmt, metadata).predict_energy(validation.x)
    return fmt, probabilities, energy


def drift_reference(directory: Path, metadata, validation: Optional[Dataset],
                    answers: Optional[tuple] = None) -> Optional[dict]:
    """The ``drift_reference`` block: ``served_answers`` (``answers`` when the caller has them);
    None without enough validation images. Validation, not test: the service compares live
    traffic with it, and the test split stays for reporting how often that comparison alarms
    (benchmarks/drift.py)."""
    if validation is None or len(validation) < drift.MIN_IMAGES:
        return None
    fmt, probabilities, _ = answers or served_answers(directory, metadata, validation)
    return drift.reference_block(probabilities, metadata.labels, "validation", fmt)


def energy_rule(answers: tuple) -> Optional[dict]:
    """The ``serving`` block's energy rule: ``max_energy``, the validation energy below or at
    which ``ENERGY_ACCEPT`` of the validation images fall, and what it was measured on; None
    for a file without the energy output. Only the validation split chooses it."""
    fmt, _, energy = answers
    if energy is None or len(energy) == 0:
        return None
    limit = round(ood.accept_threshold(energy, ENERGY_ACCEPT), 4)     # the value the service reads
    accepted = float(np.mean(energy <= limit))
    log.info("energy rule: max_energy %.4f keeps %.1f%% of %d validation images", limit, 100 * accepted,
             len(energy))
    return {"max_energy": limit,
            "energy_rule": {"accept": ENERGY_ACCEPT, "validation_accepted": round(accepted, 4),
                            "validation_examples": int(len(energy)), "fitted_on": "validation",
                            "measured_with": fmt}}


def publish_version(cfg: ExperimentConfig, model, test: Dataset, *, extra: dict,
                    policies: Optional[Sequence[Policy]] = None, force: bool = False,
                    quantization: str = "none", representative=None, parent: Optional[dict] = None,
                    weights_model=None, history: Optional[dict] = None,
                    annotate: Optional[Callable[[dict, list], dict]] = None,
                    before_rename: Optional[Callable[[], None]] = None,
                    validation: Optional[Dataset] = None) -> Path:
    """Publish ``model`` as the next version of ``cfg.name`` in ``cfg.models_dir``; returns its directory.

    ``policies`` (default: the publish check) judge the staged version's scores on ``test``;
    a refusal raises ``PublishRefused`` (with every verdict and the scores) and leaves
    nothing behind, unless ``force``, which publishes and records ``forced: true``.
    ``annotate(scores, verdicts)`` returns further metadata blocks (a retrain's report);
    ``before_rename()`` runs last and may raise to publish nothing (the served version
    changed meanwhile). ``extra`` holds the caller's blocks (techniques, dataset, training...).
    ``validation``: the split a temperature is fitted on (``fit_calibration``); without it the
    graphs serve the model's own probabilities and no ``calibration`` block is written.
    """
    policies = list(policies if policies is not None else default_policies(cfg))
    # publish.tta's views, baked into the graphs: everything scored below is their mean
    views = tta.views(cfg.publish, cfg.augment, side=int(model.input_shape[1]))
    fitted = fit_calibration(cfg, model, validation, views)   # before staging: a failure leaves nothing behind

    def write(staging: Path):
        metadata = export_files(staging, model, name=cfg.name, class_names=test.class_names,
                                color_mode=cfg.data.color_mode if cfg.data.source == "folder" else "L",
                                quantization=quantization, representative=representative,
                                weights_model=weights_model,
                                temperature=fitted["temperature"] if fitted else 1.0, views=views)
        scores = score_version(staging, test, metadata)
        verdicts = [policy.judge(scores, test, history) for policy in policies]
        for verdict in verdicts:
            for warning in verdict.record.get("warnings", []):
                log.warning("%s", warning)
        failed = [v for v in verdicts if not v.passed]
        if failed and not force:
            raise PublishRefused(verdicts, scores)
        records = {v.policy: v.record | ({"forced": True} if not v.passed else {}) for v in verdicts}
        if "publish_check" in records:
            records["publish_check"].setdefault("forced", False)
        blocks = {"config": cfg.to_dict(), "parent": parent, "command": command_line(forced=bool(failed)), **extra, **records,
                  "metrics": metrics_block(scores, metadata.sizes)}
        if fitted is not None:
            blocks["calibration"] = calibration_block(fitted, scores, test)
        answers = served_answers(staging, metadata, validation) if validation is not None and len(validation) else None
        rule = energy_rule(answers) if answers is not None else None
        if rule is not None:
            blocks["serving"] = {**(blocks.get("serving") or {}), **rule}
        reference = drift_reference(staging, metadata, validation, answers)
        if reference is not None:       # last: what `drift --record-reference` appends to an older version
            blocks[drift.BLOCK] = reference
        if annotate is not None:
            blocks |= annotate(scores, verdicts)
        if before_rename is not None:
            before_rename()
        return metadata.updated(blocks)

    return publish(cfg.models_dir, cfg.name, write)


def publish_result(cfg: ExperimentConfig, result: TrainResult, preset: str = None, force: bool = False) -> Path:
    """Publish a finished ``train`` run with its training record."""
    cfg = result.resolved.apply(cfg)   # the config as it ran: a retrain of this version keeps its input size
    extra = {
        "resolved": result.resolved.to_dict(),
        "techniques": techniques(cfg),
        "preset": preset,
        "dataset": dataset_record(cfg.data, result.train, result.validation, result.test),
        "training": {"params": int(result.model.count_params()), "fit_seconds": round(result.wall_seconds, 1),
                     "history": result.history, "budget": result.budget, "distribution": result.distribution},
    }
    return publish_version(cfg, result.model, result.test, extra=extra, history=result.history, force=force,
                           validation=result.validation)
