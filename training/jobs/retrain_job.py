"""A retrain job as given on the command line, and the recipe it trains with.

Nothing here imports TensorFlow, so a bad flag, path or config key, a missing
repository or a model with nothing published is reported (exit 2) before the job
loads it or creates anything; ``training.jobs.retrain`` runs the job.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from artifact import labels as lb
from artifact import metadata as md
from artifact.versions import versions

from training.config import ConfigError, ExperimentConfig, load_config
from training.data.datasets import DataError
from training.jobs.repository import identity, require_published


@dataclass
class RetrainJob:
    """``name`` and ``models_dir`` are resolved once, when the job is made, from the flags,
    the preset and the ``--set`` lines (``training.jobs.repository.identity``): the lock,
    the comparison and the publish all read them from here."""
    name: str
    models_dir: Optional[str] = None   # --models-dir; None: --set models_dir, the preset's, or the default
    data: Optional[str] = None         # a folder, an .npz file or "fashion_mnist"; None: as recorded
    from_scratch: bool = False
    preset: Optional[str] = None       # the recipe from scratch; None: the served version's config
    overrides: list = field(default_factory=list)   # --set lines
    settings: dict = field(default_factory=dict)    # retrain.* values given as flags (--metric, --tolerance)
    wait: float = 0.0                  # seconds to wait for another job's lock
    then_optimize: bool = False        # also publish the promoted model compressed like the served one
    allow_new: bool = False            # a model with nothing published may get a first version from the preset
    canary: Optional[float] = None     # publish the candidate as the canary at this percentage; None: as stable
    shadow: bool = False               # with canary: it sees a copy of stable's traffic and answers none

    def __post_init__(self) -> None:
        self.name, self.models_dir = identity(self.name, self.models_dir, self.overrides, self.preset)
        if self.canary is not None and not 0 <= self.canary <= 100:
            raise ConfigError(f"--canary must be a percentage within 0-100, got {self.canary:g}")
        if self.shadow and self.canary is None:
            raise ConfigError("--shadow goes with --canary PERCENT")


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
    flags = {"name": job.name, "models_dir": job.models_dir, "retrain": job.settings}
    if job.data:
        flags["data"] = data_source(job.data)
    preset = job.preset or (None if base else "default")
    cfg = load_config(preset, job.overrides, base=base, flags=flags)
    if (cfg.name, cfg.models_dir) != (job.name, job.models_dir):   # identity() read the same lines: a bug if not
        raise ConfigError(f"the recipe names {cfg.models_dir}/{cfg.name}, the job {job.models_dir}/{job.name}")
    return cfg


def fine_tune_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """The run that starts from the served weights: the recipe at a lower peak rate
    (so it refines rather than overwrites what was learned)."""
    budget = {"epochs": cfg.retrain.epochs, "steps": 0} if cfg.retrain.epochs else {}
    train_cfg = replace(cfg.train, learning_rate=cfg.train.learning_rate * cfg.retrain.learning_rate_scale,
                        **budget)
    return replace(cfg, train=train_cfg)


def served(job: RetrainJob) -> Optional[Path]:
    """The version the service answers with now, or None: the stable label's version
    (``artifact.labels``; the newest when no label pins one). A canary is not what is
    served: the candidate must beat the version that answers by default."""
    stable = lb.effective(lb.read(job.models_dir, job.name), versions(job.models_dir, job.name)).stable
    return Path(job.models_dir) / job.name / str(stable) if stable is not None else None


def repository_state(job: RetrainJob) -> tuple:
    """(the published versions, the served version's directory): a job that finds either
    changed before it publishes knows someone changed the model outside the lock (with
    stable pinned, a version published meanwhile leaves ``served`` as it was)."""
    return tuple(versions(job.models_dir, job.name)), served(job)


def plan(job: RetrainJob) -> tuple:
    """(the served version's directory, its metadata, the recipe); None, None, the preset's
    recipe when nothing is served yet and the job allows a first version. A missing
    repository or model is refused first, before anything is read or created."""
    require_published(job.models_dir, job.name, job.allow_new)
    current_dir = served(job)
    current = md.read(current_dir) if current_dir else None
    return current_dir, current, job_config(job, current)
