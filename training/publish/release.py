"""The one publish path: stage a version, score it once, decide, write its metadata once.

``train --publish``, ``publish``, ``optimize``, ``transfer`` and ``retrain`` all call
``publish_version``:

1. ``artifact.versions.publish`` opens a hidden staging directory;
2. the model's files are exported into it (SavedModel, TFLite, Keras weights);
3. the staged version is scored once, through the runners the service uses, on the
   held-out test split (``training.publish.scoring``);
4. each policy judges those scores (``training.publish.policies``); any refusal raises
   ``PublishRefused`` and the staging directory is removed;
5. the metadata is built once (files, sizes, metrics, each verdict's record, the
   config and what the caller adds) and ``artifact`` writes it once, as it renames the
   directory into the next version.
"""
from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from artifact.versions import publish

from training.config import ExperimentConfig
from training.data.datasets import Dataset, dataset_record
from training.fit.train import TrainResult
from training.models.cnn import initializer_for
from training.publish.export import export_files
from training.publish.policies import Policy, PublishCheck, PublishRefused
from training.publish.scoring import metrics_block, score_version

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


def command_line() -> str:
    """The running command as a user would retype it, so a version says how it was made."""
    script = Path(sys.argv[0])
    head = ["python", "-m", script.parent.name] if script.name == "__main__.py" else ["python", sys.argv[0]]
    return shlex.join(head + sys.argv[1:])


def default_policies(cfg: ExperimentConfig) -> list:
    """What every publish must pass: the publish check."""
    return [PublishCheck.from_config(cfg.publish)]


def publish_version(cfg: ExperimentConfig, model, test: Dataset, *, extra: dict,
                    policies: Optional[Sequence[Policy]] = None, force: bool = False,
                    quantization: str = "none", representative=None, parent: Optional[dict] = None,
                    weights_model=None, history: Optional[dict] = None,
                    annotate: Optional[Callable[[dict, list], dict]] = None,
                    before_rename: Optional[Callable[[], None]] = None) -> Path:
    """Publish ``model`` as the next version of ``cfg.name`` in ``cfg.models_dir``; returns its directory.

    ``policies`` (default: the publish check) judge the staged version's scores on ``test``;
    a refusal raises ``PublishRefused`` (with every verdict and the scores) and leaves
    nothing behind, unless ``force``, which publishes and records ``forced: true``.
    ``annotate(scores, verdicts)`` returns further metadata blocks (a retrain's report);
    ``before_rename()`` runs last and may raise to publish nothing (the served version
    changed meanwhile). ``extra`` holds the caller's blocks (techniques, dataset, training...).
    """
    policies = list(policies if policies is not None else default_policies(cfg))

    def write(staging: Path):
        metadata = export_files(staging, model, name=cfg.name, class_names=test.class_names,
                                color_mode=cfg.data.color_mode if cfg.data.source == "folder" else "L",
                                quantization=quantization, representative=representative,
                                weights_model=weights_model)
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
        blocks = {"config": cfg.to_dict(), "parent": parent, "command": command_line(), **extra, **records,
                  "metrics": metrics_block(scores, metadata.sizes)}
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
    return publish_version(cfg, result.model, result.test, extra=extra, history=result.history, force=force)
