"""Batch retraining: a candidate trained on the data as it is now, published only
when it is not worse than the version being served.

One job, under the model's lock (``artifact.locks``) from start to finish:

1. the served version (the newest) gives the recipe, its recorded config, and
   the starting weights: the candidate is fine-tuned from them at a lower peak
   learning rate (``retrain.learning_rate_scale``), or trained from scratch;
2. the data is loaded as the config says (a folder's hash split keeps every
   old test image in the test split as the folder grows);
3. the candidate trains through ``training.train`` on any ``tf.distribute``
   set-up; only the chief goes on from here;
4. it is exported into a hidden staging directory, and the candidate's and the
   served version's exported files (SavedModel and TFLite, run as the service
   runs them) answer the same test images; ``training.promotion`` decides;
5. the staging directory is renamed into the next version, with the report in
   its metadata, or removed.

A job killed at any step leaves at most a hidden staging directory (removed by
the next job) and no lock.
"""
from __future__ import annotations

import contextlib
import logging
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from artifact import metadata as md
from artifact.locks import LockBusy, model_lock
from artifact.versions import clean_staging, versions

from . import distribute, gate
from .config import ConfigError, ExperimentConfig, load_config
from .data import DataError, Dataset, dataset_record, load_data
from .evaluate import FORMATS, version_runner
from .promotion import Decision, decide, map_labels, score
from .release import publish_model, techniques
from .train import train

log = logging.getLogger(__name__)


class Refused(Exception):
    """The candidate was measured and not published; ``decision`` says why."""

    def __init__(self, decision: Decision):
        super().__init__(decision.decision)
        self.decision = decision


class RepositoryChanged(LockBusy):
    """A version of the model was published or retired, outside the lock, while this job ran."""


@dataclass
class RetrainJob:
    name: str
    models_dir: str = "models"
    data: Optional[str] = None         # a folder, an .npz file or "fashion_mnist"; None: as recorded
    from_scratch: bool = False
    preset: Optional[str] = None       # the recipe from scratch; None: the served version's config
    overrides: list = field(default_factory=list)   # --set lines
    settings: dict = field(default_factory=dict)    # retrain.* values given as flags (--metric, --tolerance)
    wait: float = 0.0                  # seconds to wait for another job's lock


def data_source(path: str) -> dict:
    """``--data``: the data config for a folder, an .npz file or the name fashion_mnist."""
    if path == "fashion_mnist":
        return {"source": "fashion_mnist", "path": None}
    given = Path(path)
    if given.is_dir():
        return {"source": "folder", "path": str(given)}
    if given.suffix == ".npz" and given.is_file():
        return {"source": "npz", "path": str(given)}
    raise DataError(f"--data '{path}' is neither an image folder, an .npz file nor 'fashion_mnist'")


def job_config(job: RetrainJob, current: Optional[md.Metadata]) -> ExperimentConfig:
    """The recipe: the served version's config (or a preset), then the job's data and
    name, then ``--set``. It is stored as it is in the new version, so the next
    retrain starts from the same recipe."""
    base = current.config if current is not None and not job.preset else None
    flags = {"name": job.name, "models_dir": str(job.models_dir), "retrain": job.settings}
    if job.data:
        flags["data"] = data_source(job.data)
    preset = job.preset or (None if base else "default")
    return load_config(preset, job.overrides, base=base, flags=flags)


def fine_tune_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """The run that starts from the served weights: the recipe at a lower peak rate
    (so it refines rather than overwrites what was learned)."""
    train_cfg = replace(cfg.train, learning_rate=cfg.train.learning_rate * cfg.retrain.learning_rate_scale,
                        epochs=cfg.retrain.epochs or cfg.train.epochs)
    return replace(cfg, train=train_cfg)


def check_comparable(current: md.Metadata, data: Dataset, fine_tune: bool) -> None:
    if tuple(current.input.shape) != tuple(data.input_shape):
        raise DataError(f"version {current.version} of '{current.name}' takes {current.input.shape} images, this "
                        f"data is decoded to {tuple(data.input_shape)}: keep data.image_size and "
                        "data.color_mode as recorded, or publish under another --name")
    if fine_tune and list(current.labels) != list(data.class_names):
        raise ConfigError(f"the classes changed (served: {current.labels}; data: {data.class_names}); "
                          "fine-tuning keeps the served model's outputs, so retrain with --from-scratch")


def measure(directory: Path, test: Dataset) -> dict:
    """Each exported format's score on ``test``, run as the service runs it; the
    version's labels are matched to the data's classes by name."""
    meta = md.read(directory)
    scores = {}
    for fmt in FORMATS:
        if meta.format_path(directory, fmt) is not None:
            predicted = version_runner(directory, fmt, meta).predict(test.x).argmax(1)
            scores[fmt] = score(test.y, map_labels(predicted, meta.labels, test.class_names), test.class_names)
    return scores


def _served(job: RetrainJob) -> Optional[Path]:
    found = versions(job.models_dir, job.name)
    return Path(job.models_dir) / job.name / str(found[-1]) if found else None


def retrain(job: RetrainJob, dist: Optional[distribute.Distribution] = None) -> dict:
    """Run the job; returns the report (``exit_code`` in it). A worker that is not the
    chief trains in step and returns only its distribution record."""
    dist = dist or distribute.make("default")
    lock = model_lock(job.models_dir, job.name, "retrain", job.wait) if dist.chief else contextlib.nullcontext()
    with lock:
        if dist.chief:
            for path in clean_staging(job.models_dir, job.name):
                log.info("removed %s, left by a killed job", path)
        return _run(job, dist)


def _run(job: RetrainJob, dist: distribute.Distribution) -> dict:
    current_dir = _served(job)
    current = md.read(current_dir) if current_dir else None
    fine_tune = current is not None and not job.from_scratch
    cfg = job_config(job, current)
    data = load_data(cfg.data)
    train_set, val_set, test = data
    init = None
    if current is not None:
        check_comparable(current, train_set, fine_tune)
    if fine_tune:
        init = current.format_path(current_dir, "keras")
        if init is None:
            raise FileNotFoundError(f"{current_dir} has no Keras weights to fine-tune; retrain with --from-scratch")
    start = {"from": "version", "version": current.version} if fine_tune else {"from": "scratch"}
    log.info("retraining '%s' from %s on %d training images", job.name,
             f"version {current.version}" if fine_tune else "scratch", len(train_set))

    run_dir = Path(cfg.output_dir) / cfg.name / "retrain"
    if dist.chief:
        shutil.rmtree(run_dir, ignore_errors=True)   # a job starts afresh: the data may have changed
    fit_cfg = fine_tune_config(cfg) if fine_tune else cfg
    result = train(fit_cfg, data, dist=dist, init_weights=init, run_dir=run_dir)
    if not dist.chief:
        return {"model": job.name, "exit_code": 0, "published_version": None, "distribution": result.distribution}

    dataset = dataset_record(cfg.data, train_set, val_set, test)
    outcome = {}

    def judge(staging: Path) -> dict:
        """Both versions' exported files on the same test images; raises to publish nothing."""
        candidate = measure(staging, test)
        decision = Decision(job.name, cfg.retrain.metric, cfg.retrain.tolerance, start, candidate,
                            measure(current_dir, test) if current else None,
                            current.version if current else None, data=dataset)
        history = result.history
        report = gate.check(min(s.accuracy for s in candidate.values()), test.y,
                            history.get("accuracy", [None])[-1], history.get("val_accuracy", [None])[-1])
        decision.publish_check = report.to_dict()
        outcome["decision"] = decide(decision, report.passed)
        if decision.exit_code:
            raise Refused(decision)
        if _served(job) != current_dir:
            raise RepositoryChanged(f"the served version of '{job.name}' changed while this job ran "
                                    f"(was {current_dir}, now {_served(job)}); nothing published, run it again")
        return {"retrain": decision.to_dict()}

    extra = {"techniques": techniques(cfg), "preset": job.preset, "dataset": dataset,
             "training": {"start": start, "learning_rate": fit_cfg.train.learning_rate,
                          "epochs": fit_cfg.train.epochs, "fit_seconds": round(result.wall_seconds, 1),
                          "history": result.history, "distribution": result.distribution}}
    parent = {"name": job.name, "version": current.version, "path": str(current_dir)} if current else None
    try:
        published = publish_model(cfg, result.model, test, extra=extra, parent=parent, check=judge)
    except Refused as refused:
        return refused.decision.to_dict()
    decision = outcome["decision"]
    decision.published_version = int(published.name)
    return decision.to_dict()
