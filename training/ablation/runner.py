"""Run a study: every (variant, seed) not yet recorded, one JSON line per finished run.

``reports/<study>/runs.jsonl`` is the study's memory. A run is identified by its
variant, group, seed and a fingerprint of the budget (seeds aside) and the
variant's settings, so an interrupted study resumes where it stopped, more seeds
add runs, and a changed budget or variant runs again. Each line is flushed and
fsynced as it is written; a line torn by a crash is dropped, not fatal. Code is not
fingerprinted: after changing what a study's run function does, delete its runs.jsonl.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

from training.config import ConfigError
from training.ablation.studies import (augmentation, batchnorm, compression, distillation, initialisation, precision,
                                       regularisation, scarcity, switches, transfer, tta)
from training.ablation.records import append_record, drop_torn_tail, machine, read_records
from training.ablation.study import Budget, Study, Variant

log = logging.getLogger(__name__)

RUNS = "runs.jsonl"
# in the order ``ablate all`` runs them and docs/evidence.md lists them
STUDIES = {module.STUDY.name: module.STUDY
           for module in (compression, distillation, initialisation, regularisation, batchnorm, scarcity,
                          augmentation, transfer, precision, switches, tta)}


def available() -> list:
    return sorted(STUDIES)


def load_study(name: str) -> Study:
    if name not in STUDIES:
        raise ConfigError(f"unknown study '{name}' (studies: {', '.join(available())}, or all)")
    return STUDIES[name]


def budget_for(study: Study, ablate) -> Budget:
    """The study's default budget with the ``ablate`` config section's values on top ("all": None)."""
    given = {key: getattr(ablate, key) for key in ("steps", "batch_size", "train_images", "test_images", "seeds")
             if getattr(ablate, key) is not None}
    given = {key: (None if value == "all" else tuple(value) if key == "seeds" else value)
             for key, value in given.items()}
    return dataclasses.replace(study.budget, **given)


def fingerprint(budget: Budget, variant: Variant) -> str:
    """What makes two runs of a variant comparable: the budget (seeds aside) and the settings."""
    payload = {"budget": {k: v for k, v in dataclasses.asdict(budget).items() if k != "seeds"},
               "settings": variant.settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _key(record: dict) -> tuple:
    return record["variant"], record["group"], record["seed"], record["fingerprint"]


def runs_path(reports_dir: Path, study: Study) -> Path:
    return Path(reports_dir) / study.name / RUNS


def current_records(study: Study, budget: Budget, records: list) -> list:
    """The records of this study's variants at this budget (any seed), the last of duplicates."""
    wanted = {(v.name, v.group): fingerprint(budget, v) for v in study.variants}
    latest = {}
    for r in records:
        if wanted.get((r.get("variant"), r.get("group"))) == r.get("fingerprint"):
            latest[_key(r)] = r
    return list(latest.values())


def run_study(study: Study, budget: Budget, reports_dir: Path, workdir: Path) -> list:
    """Run what is missing; returns the records of this budget (old and new)."""
    path = runs_path(reports_dir, study)
    path.parent.mkdir(parents=True, exist_ok=True)
    drop_torn_tail(path)
    done = {_key(r) for r in current_records(study, budget, read_records(path))}
    # seed by seed, so an interrupted study already holds whole comparisons
    todo = [(v, seed) for seed in budget.seeds for v in study.variants
            if (v.name, v.group, seed, fingerprint(budget, v)) not in done]
    total = len(study.variants) * len(budget.seeds)
    log.info("study %s: %d of %d runs already recorded in %s, %d to run", study.name, total - len(todo), total,
             path, len(todo))
    started = time.perf_counter()
    for number, (variant, seed) in enumerate(todo, 1):
        label = f"{variant.group}/{variant.name}" if variant.group else variant.name
        log.info("study %s: run %d of %d: %s, seed %d", study.name, number, len(todo), label, seed)
        start = time.perf_counter()
        result = study.run(variant, seed, budget, Path(workdir) / study.name / f"{label}-{seed}")
        record = {"study": study.name, "variant": variant.name, "group": variant.group, "seed": seed,
                  "fingerprint": fingerprint(budget, variant), "budget": dataclasses.asdict(budget),
                  "settings": variant.settings, "machine": machine(), **result}
        record.setdefault("seconds", time.perf_counter() - start)
        append_record(path, record)
        log.info("study %s: run %d of %d done in %.0f s (test accuracy %.4f; %.0f s so far)", study.name,
                 number, len(todo), time.perf_counter() - start, record.get("test_accuracy", float("nan")),
                 time.perf_counter() - started)
    return current_records(study, budget, read_records(path))
