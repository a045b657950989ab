"""Batch retraining: a candidate trained on the data as it is now, published only
when it is not worse than the version being served.

A missing repository, or a model with nothing published (unless the job allows a
first version), is refused before the lock is taken: a refused job creates nothing
(``training.jobs.repository``). Then one job, under the model's lock
(``artifact.locks``) from start to finish:

1. the served version (stable: the labelled one, else the newest) gives the recipe, its recorded config, and
   the starting weights: the candidate is fine-tuned from them at a lower peak
   learning rate (``retrain.learning_rate_scale``), or trained from scratch;
2. the data is loaded as the config says (a folder's hash split keeps every
   old test image in the test split as the folder grows);
3. the candidate trains through ``training.fit.train`` on any ``tf.distribute``
   set-up; only the chief goes on from here;
4. the served version is scored once on the test images, through its exported
   files run as the service runs them; the candidate goes through the one publish
   path (``training.publish.release.publish_version``), which stages it, scores it
   the same way, and asks the publish check and the served-version policy
   (``retrain.metric``), and the calibration check (the candidate's ECE at most
   ``retrain.ece_tolerance`` above the served version's, docs/retraining.md);
   ``training.jobs.promotion`` turns their verdicts into the report;
5. the staging directory is renamed into the next version, with the report in
   its metadata, or removed;
6. the labels follow (``training.jobs.labels.after_publish``): with ``canary`` the
   new version is labelled canary at that percentage and stable stays on the version
   it was compared with; without, it becomes stable, as the newest did before labels.

A job killed at any step leaves at most a hidden staging directory (removed by
the next job) and no lock.
"""
from __future__ import annotations

import contextlib
import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from artifact import labels as lb
from artifact import metadata as md
from artifact.locks import LockBusy, model_lock
from artifact.versions import clean_staging, versions

from training.compress.optimize import optimize, parse_stages
from training.config import ConfigError, ExperimentConfig
from training.data.datasets import DataError, Dataset, dataset_record, load_data
from training.fit import distribute
from training.fit.train import train
from training.jobs.labels import after_publish, rewrite
from training.jobs.promotion import Decision, decide
from training.jobs.repository import require_published
from training.jobs.retrain_job import RetrainJob, fine_tune_config, plan, repository_state
from training.publish.policies import CalibrationNotWorse, PublishCheck, PublishRefused, against_served
from training.publish.release import publish_version, techniques
from training.publish.scoring import SERVED_FORMAT, score_version

log = logging.getLogger(__name__)


class RepositoryChanged(LockBusy):
    """A version of the model was published or retired, outside the lock, while this job ran."""


def check_comparable(current: md.Metadata, data: Dataset, fine_tune: bool) -> None:
    if tuple(current.input.shape) != tuple(data.input_shape):
        raise DataError(f"version {current.version} of '{current.name}' takes {current.input.shape} images, this "
                        f"data is decoded to {tuple(data.input_shape)}: keep data.image_size and "
                        "data.color_mode as recorded, or publish under another --name")
    if fine_tune and list(current.labels) != list(data.class_names):
        raise ConfigError(f"the classes changed (served: {current.labels}; data: {data.class_names}); "
                          "fine-tuning keeps the served model's outputs, so retrain with --from-scratch")


def retrain(job: RetrainJob, dist: Optional[distribute.Distribution] = None) -> dict:
    """Run the job; returns the report (``exit_code`` in it). A worker that is not the
    chief trains in step and returns only its distribution record."""
    dist = dist or distribute.make("default")
    require_published(job.models_dir, job.name, job.allow_new)   # taking the lock creates its folder
    lock = model_lock(job.models_dir, job.name, "retrain", job.wait) if dist.chief else contextlib.nullcontext()
    with lock:
        if dist.chief:
            for path in clean_staging(job.models_dir, job.name):
                log.info("removed %s, left by a killed job", path)
        return _run(job, dist)


@dataclass
class Judge:
    """Publishes a candidate through the one publish path with the retrain policies: the
    publish check and the served-version comparison (``retrain.metric``, ``tolerance``),
    on scores measured once each. The report is written into the candidate's metadata,
    and a refusal publishes nothing."""

    job: RetrainJob
    cfg: ExperimentConfig
    test: Dataset
    data: dict                          # the dataset record of the report
    current: Optional[md.Metadata]
    current_scores: Optional[dict]      # format -> Score of the served version, measured once

    def served_ece(self) -> Optional[float]:
        """The served version's ECE on this job's test images, from the scores measured once
        through its files (its served format's): the same images the candidate is measured on,
        so it also covers a version published before calibration was recorded."""
        if not self.current_scores:
            return None
        measured = self.current_scores.get(SERVED_FORMAT) or next(iter(self.current_scores.values()))
        return measured.ece

    def policies(self) -> list:
        retrain = self.cfg.retrain
        served = [against_served(retrain.metric, self.current_scores, retrain.tolerance)] if self.current_scores else []
        ece = self.served_ece()
        calibrated = [CalibrationNotWorse(ece, retrain.ece_tolerance)] if ece is not None else []
        return [PublishCheck.from_config(self.cfg.publish), *served, *calibrated]

    def publish(self, publish, start: dict, expected: tuple) -> Decision:
        """``publish(**publishing)`` publishes a version through ``publish_version`` with the
        policies and hooks given; ``expected`` is the ``repository_state`` (the published
        versions and the served one) that must still hold when it is renamed into place."""
        decision = Decision(self.job.name, self.cfg.retrain.metric, self.cfg.retrain.tolerance, start,
                            current=self.current_scores, current_version=self.current.version if self.current else None,
                            data=self.data)

        def annotate(scores: dict, verdicts: list) -> dict:
            decision.candidate = scores
            return {"retrain": decide(decision, verdicts).to_dict()}

        def still_served() -> None:
            now = repository_state(self.job)
            if now != expected:
                raise RepositoryChanged(f"the versions of '{self.job.name}' changed while this job ran (published "
                                        f"{list(expected[0])}, serving {expected[1]}; now {list(now[0])}, serving "
                                        f"{now[1]}); nothing published, run it again")

        try:
            published = publish(policies=self.policies(), annotate=annotate, before_rename=still_served)
        except PublishRefused as refused:
            decision.candidate = refused.scores
            return decide(decision, refused.verdicts)
        decision.published_version = int(published.name)
        return decision


def _run(job: RetrainJob, dist: distribute.Distribution) -> dict:
    expected = repository_state(job)
    current_dir, current, cfg = plan(job)
    fine_tune = current is not None and not job.from_scratch
    stages = optimize_stages(cfg, current) if job.then_optimize else None   # bad stages fail before training
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
    # the recipe as it ran (a folder's "auto" size; from scratch, the budget too), recorded for the next retrain
    cfg = result.resolved.apply(cfg) if not fine_tune else replace(cfg, data=result.resolved.apply(cfg).data)
    if not dist.chief:
        return {"model": job.name, "exit_code": 0, "published_version": None, "distribution": result.distribution}

    dataset = dataset_record(cfg.data, train_set, val_set, test)
    judge = Judge(job, cfg, test, dataset, current, score_version(current_dir, test) if current else None)
    extra = {"resolved": result.resolved.to_dict(), "techniques": techniques(cfg), "preset": job.preset,
             "dataset": dataset,
             "training": {"start": start, "learning_rate": fit_cfg.train.learning_rate,
                          "epochs": result.resolved.apply(fit_cfg).train.epochs,
                          "fit_seconds": round(result.wall_seconds, 1),
                          "history": result.history, "distribution": result.distribution}}
    parent = {"name": job.name, "version": current.version, "path": str(current_dir)} if current else None
    decision = judge.publish(
        lambda **publishing: publish_version(cfg, result.model, test, extra=extra, parent=parent,
                                             history=result.history, validation=val_set, **publishing),
        start, expected)
    report = decision.to_dict()
    report["distribution"] = result.distribution    # as the other workers' lines: the weights' sha256 compares them
    newest = decision.published_version
    if stages and newest:
        lighter = _lighten(judge, cfg, stages, data, newest)
        report["then_optimize"] = lighter.to_dict()
        report["exit_code"] = report["then_optimize"]["exit_code"]
        newest = lighter.published_version or newest
    if newest:
        report["labels"] = relabel(job, newest, current.version if current else None)
    return report


def relabel(job: RetrainJob, new: int, compared: Optional[int]) -> dict:
    """Label the version this job published last (the compressed one after ``--then optimize``)
    as asked, under the job's lock; returns the labels as they apply now."""
    _, labels = rewrite(job.models_dir, job.name,
                        lambda written, published: after_publish(written, published, new, compared,
                                                                 job.canary, job.shadow))
    if job.canary is not None and compared is None:
        log.info("'%s' had no version served: version %d is stable, not a canary", job.name, new)
    return lb.effective(labels, versions(job.models_dir, job.name)).to_dict()


def optimize_stages(cfg: ExperimentConfig, current: Optional[md.Metadata]) -> list:
    """The compression stages the served version was made with (``techniques.compression``),
    else ``optimize.stages``. Distillation is not repeated: a distilled version records the
    student's config, so the candidate already has the student's architecture."""
    recorded = (current.techniques.get("compression") if current is not None else None) or cfg.optimize.stages
    stages = [s for s in parse_stages(recorded) if s != "distill"]
    if not stages:
        raise ConfigError(f"--then optimize: no compression stage to apply (recorded: {recorded}); "
                          "set --set optimize.stages=prune,pqat,int8")
    return stages


def _lighten(judge: Judge, cfg: ExperimentConfig, stages: list, data: tuple, float_version: int) -> Decision:
    """Compress the just-published float version with ``stages`` and publish the result
    only if it, too, is not worse than the version served before the job."""
    opt_cfg = replace(cfg, optimize=replace(cfg.optimize, stages=stages, name=None))
    float_dir = Path(cfg.models_dir) / cfg.name / str(float_version)
    # The state right after this job's own float publish: the labels follow once, at the end.
    return judge.publish(lambda **publishing: optimize(opt_cfg, source_dir=float_dir, data=data, **publishing),
                         {"from": "version", "version": float_version, "stages": stages},
                         repository_state(judge.job))
