"""Changing a model's version labels (``artifact.labels``): which version is ``stable``
(answers requests that name no version) and which, if any, is the ``canary`` taking a
share of them first.

Every change is computed by a pure function from the labels as written and the versions
published now, so a bad request is refused (``LabelError``, exit 2) before anything is
written or locked; ``change`` then takes the model's lock, recomputes the change on what
is there under the lock (another job may have moved things while it waited) and writes
the labels atomically. ``rollback`` and ``retrain`` use ``after_retire`` and
``after_publish`` under the lock they already hold, so the labels never name a version
that is gone and a retrain's candidate goes live the way the job was asked to.

Nothing here imports TensorFlow.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Optional

from artifact import labels as lb
from artifact.labels import Canary, Labels
from artifact.locks import model_lock
from artifact.versions import RepositoryError, retired, versions

from training.jobs.repository import require_repository


class LabelError(RepositoryError):
    """The labels cannot be changed as asked (a version not published, no canary to promote...)."""


def require_model(models_dir, name: str) -> list:
    """The published versions of ``name``; refuses a missing repository or model (nothing created)."""
    require_repository(models_dir)
    published = versions(models_dir, name)
    if not published:
        gone = retired(models_dir, name)
        hint = (f": its versions {gone} are retired (python -m training rollback --name {name} --restore "
                f"{gone[-1]})") if gone else ""
        raise LabelError(f"no model '{name}' with a published version under {models_dir}{hint}")
    return published


def normalized(labels: Labels, published: list) -> Labels:
    """The labels as written, less what names a version no longer published: readers ignore
    those already (``artifact.labels.effective``), and ``labels.write`` refuses them."""
    stable = labels.stable if labels.stable in published else None
    canary = labels.canary if labels.canary and labels.canary.version in published else None
    return Labels(stable, canary)


def _published(version: int, published: list, what: str) -> int:
    if version not in published:
        raise LabelError(f"version {version} is not published, it cannot be {what} "
                         f"(published: {published})")
    return version


def check_percent(percent: float) -> float:
    if not 0 <= percent <= 100:
        raise LabelError(f"--percent must be within 0-100, got {percent:g}")
    return percent


def set_stable(version: int) -> Callable[[Labels, list], Labels]:
    def apply(labels: Labels, published: list) -> Labels:
        _published(version, published, "stable")
        current = normalized(labels, published)
        if current.canary and current.canary.version == version:
            raise LabelError(f"version {version} is the canary: promote it (--promote), or abort the canary "
                             "(--abort) first")
        return replace(current, stable=version)
    return apply


def set_canary(version: int, percent: float, shadow: bool = False) -> Callable[[Labels, list], Labels]:
    check_percent(percent)

    def apply(labels: Labels, published: list) -> Labels:
        _published(version, published, "the canary")
        current = normalized(labels, published)
        stable = lb.effective(current, published).stable
        if version == stable:
            unpinned = " (the newest, as no label pins stable: label the version to keep first, --stable N)"
            raise LabelError(f"version {version} is stable{unpinned if current.stable is None else ''}; "
                             "a canary must be another version")
        # Pin stable: with stable unset, a canary on the newest version would be "the newest"
        # itself (readers drop it), and publishing another version later would move stable.
        return Labels(stable, Canary(version, percent, shadow))
    return apply


def _require_canary(current: Labels, action: str) -> Canary:
    if current.canary is None:
        raise LabelError(f"there is no canary to {action}")
    return current.canary


def promote(labels: Labels, published: list) -> Labels:
    """The canary becomes stable and answers everything; the canary label is removed."""
    current = normalized(labels, published)
    return Labels(_require_canary(current, "promote").version, None)


def abort(labels: Labels, published: list) -> Labels:
    """The canary label is removed; stable answers everything, as before the canary."""
    current = normalized(labels, published)
    _require_canary(current, "abort")
    return Labels(lb.effective(current, published).stable, None)


def state(models_dir, name: str) -> dict:
    """What ``label --list`` prints: the labels as written and as they apply now."""
    published = versions(models_dir, name)
    written = lb.read(models_dir, name)
    return {"model": name, "published": published, "written": written.to_dict(),
            "labels": lb.effective(written, published).to_dict()}


def rewrite(models_dir, name: str, apply: Callable[[Labels, list], Labels]) -> tuple:
    """``apply(labels, published) -> Labels`` on the labels as written, written back only when it
    changes them (no labels file appears for nothing); the caller holds the model's lock.
    Returns (before, after)."""
    before = lb.read(models_dir, name)
    after = apply(before, versions(models_dir, name))
    if after != before:
        lb.write(models_dir, name, after)
    return before, after


def change(models_dir, name: str, apply: Callable[[Labels, list], Labels], wait: Optional[float] = 0.0) -> dict:
    """Apply ``apply(labels, published) -> Labels`` under the model's lock and write the result.
    It runs first without the lock, so a refusal creates nothing (not even the lock file)."""
    apply(lb.read(models_dir, name), require_model(models_dir, name))
    with model_lock(models_dir, name, job="label", wait=wait):
        require_model(models_dir, name)
        before, _ = rewrite(models_dir, name, apply)
        return {**state(models_dir, name), "before": before.to_dict()}


def after_retire(labels: Labels, published: list, doomed: list, to: Optional[int] = None) -> Labels:
    """The labels once ``doomed`` are retired from ``published`` (written before they go, so
    no reader follows a label to a version that is leaving). A retired canary is removed; a
    retired stable (pinned, or the newest by default) moves to ``to`` when given, else to the
    newest remaining version that is not the canary: retiring stable must not hand all the
    traffic to an unproven canary. Unpinned labels with no canary stay unpinned."""
    remaining = [v for v in published if v not in doomed]
    current = normalized(labels, published)
    canary = current.canary if current.canary and current.canary.version in remaining else None
    stable = lb.effective(current, published).stable
    if stable in doomed:
        others = [v for v in remaining if not canary or v != canary.version]
        stable = to if to is not None else (others[-1] if others else None)
    if canary and stable in (None, canary.version):
        canary = None                      # only the canary is left, or rolled back to it on purpose
    if current.stable is None and canary is None and stable in (None, remaining[-1] if remaining else None):
        stable = None                      # the newest-by-default rule already gives this
    return Labels(stable, canary)


def after_publish(labels: Labels, published: list, new: int, served: Optional[int],
                  canary: Optional[float] = None, shadow: bool = False) -> Labels:
    """The labels once a retrain published ``new`` (``served``: the version it was compared
    with). ``canary`` (a percentage) labels ``new`` the canary with stable pinned to
    ``served``; without it ``new`` becomes stable as it did before labels (a pinned stable
    moves to it; unpinned, the newest is stable anyway). A canary that was set stays."""
    current = normalized(labels, published)
    if canary is not None and served is not None:
        return Labels(served, Canary(new, check_percent(canary), shadow))
    keep = current.canary if current.canary and current.canary.version != new else None
    return Labels(new if current.stable is not None else None, keep)
