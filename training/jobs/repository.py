"""Which model a job works on, and the refusals that come before it touches anything.

A job's repository has one spelling: the config key ``models_dir``. ``--models-dir X``
is its shorthand, as ``--metric`` is ``retrain.metric``'s: it sits above the preset
and below ``--set models_dir=X``, which wins when both are given. ``--name`` and
``--set name=...`` work the same way. The job resolves both once (``identity``), so
the lock, the served version it compares with and the folder it publishes into are
always the same folder.

The checks here read the file system and create nothing: a refused job leaves no
model folder, no ``.lock`` and no run folder (the lock file is created when it is
taken, so these run first). Nothing here imports TensorFlow.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from artifact.versions import RepositoryError, retired, scan, versions

from training.config import ConfigError, load_config, parse_override

IDENTITY = ("name", "models_dir")   # the top-level keys that say which model a job works on


class NotInRepository(RepositoryError):
    """The repository, or a published version of the model, is not there: the job was refused
    before it created anything."""


def identity(name: Optional[str], models_dir: Optional[str], overrides: list,
             preset: Optional[str] = None) -> tuple:
    """(name, models_dir) as the config would resolve them: defaults < ``preset`` < the
    ``--name``/``--models-dir`` flags < ``--set`` lines (the last one wins). Only the
    ``--set`` lines for these two keys are read here, so the job's other overrides are
    still applied on top of the recipe they belong to (the served version's config)."""
    flags = {key: str(value) for key, value in (("name", name), ("models_dir", models_dir)) if value is not None}
    chosen = [text for text in overrides or [] if set(parse_override(text)) & set(IDENTITY)]
    cfg = load_config(preset, chosen, flags=flags)
    if not cfg.models_dir.strip():
        raise ConfigError("'models_dir' is empty: give the model repository's folder")
    if not cfg.name.strip() or "/" in cfg.name or cfg.name.startswith("."):
        raise ConfigError(f"'name' must be a plain folder name (no '/', not hidden), got {cfg.name!r}")
    return cfg.name, cfg.models_dir


def require_repository(models_dir) -> None:
    """A missing repository is a typo or an unmounted volume, never a place to start one."""
    root = Path(models_dir)
    if not root.is_dir():
        raise NotInRepository(f"no model repository '{root}' (models_dir, --models-dir): give an existing "
                              "folder; nothing was created")


def require_published(models_dir, name: str, allow_new: bool) -> None:
    """A model with no published version is refused unless the caller asked for a first
    version (``allow_new``): a typo in ``--name`` would otherwise train a preset from
    scratch for an hour and publish it under the typo."""
    require_repository(models_dir)
    if allow_new or versions(models_dir, name):
        return
    gone = retired(models_dir, name)
    if gone:
        raise NotInRepository(f"model '{name}' under {models_dir} has only retired versions {gone}: put one "
                              f"back first (python -m training rollback --name {name} --restore {gone[-1]}), "
                              "or pass --allow-new to train a new first version from --preset")
    served = [model for model, found in scan(models_dir).items() if found]
    known = f" (models there: {', '.join(served)})" if served else " (it holds no published model)"
    raise NotInRepository(f"model '{name}' has no published version under {models_dir}{known}: publish a first "
                          f"one with python -m training train --publish --set name={name} "
                          f"--set models_dir={models_dir}, or pass --allow-new to train it from --preset")
