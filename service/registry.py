"""Served model versions: load, warm up, swap, retire - and hot reload.

Lives in ``app.extensions["model_registry"]``; nothing loads until
``start()`` runs in a worker (gunicorn ``post_worker_init`` or the first
request), so the gunicorn master never touches TensorFlow. A background
thread re-scans the repository every ``poll_interval_s``: a new version is
loaded and warmed up before it takes traffic, then versions the policy no
longer wants are retired (their batcher drains first). A version that failed
to load is not retried until its directory changes or an admin reload.

The default model (``POST /predict`` without ``?model=``) is
``SERVICE_DEFAULT_MODEL`` when set, else the first model in name order that has
a version being served: a folder with no published version (a stray folder, a
lock folder left by a job) or whose versions all failed to load is never picked.
It is worked out again after every scan and logged whenever it changes, the
first scan included (``event: default_model``).

Labels (``artifact.labels``: ``<root>/<name>/labels.json``) are read on the same
scan, so a promotion or an abort takes effect within one poll, without a restart.
The versions they name are served on top of the version policy's (under
``latest`` they replace it: the newest is what ``stable`` means without a file, so
a repository without labels is served exactly as before). A request that names no
version goes to ``stable``, or to the canary for ``percent`` of them
(``route``); with ``shadow`` the canary answers none but sees a copy. New labels
take effect only once the versions they name are loaded, and a version stops
being served only after the labels no longer route to it; a request already
holding a retired version still finishes on it (``Batcher.close``).
"""
from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from artifact import labels as labels_file
from artifact.metadata import MetadataError

from . import energy as energy_rule
from . import repository
from .backends import choose_backend, load_backend
from .batching import Batcher
from .config import ServiceConfig
from .errors import NotFound, Unavailable
from .metrics import Metrics, VersionMetrics

log = logging.getLogger("service")


@dataclass
class LoadedVersion:
    info: repository.VersionInfo
    backend_name: str
    device: str
    batcher: Batcher
    observer: VersionMetrics | None = None   # set once warm-up calls are done
    backend: object = None                   # the runtime itself, for Monte Carlo dropout (service/confidence.py)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def version(self) -> int:
        return self.info.version

    @property
    def has_energy(self) -> bool:
        """Whether the backend's rows carry the energy as their last column (service/energy.py)."""
        return bool(getattr(self.backend, "energy", False))

    def predict(self, pixels: np.ndarray, deadline: float) -> np.ndarray:
        return self.predict_energy(pixels, deadline)[0]

    def predict_energy(self, pixels: np.ndarray, deadline: float) -> tuple:
        """(probabilities [n,K], energy [n] or None): the batcher's rows split."""
        out, energy = energy_rule.split(self.batcher.submit(pixels, deadline), self.has_energy)
        if self.observer is not None:
            self.observer.answered(out)
        return out, energy


@dataclass(frozen=True)
class Route:
    """Which version answers a request, under which label, and which one sees a shadow copy."""
    version: LoadedVersion
    label: str = ""                          # "stable", "canary", or "" (pinned by version)
    shadow: LoadedVersion | None = None      # the canary in shadow mode


def split_fraction(key: str) -> float:
    """A request key's fixed place in [0, 1): the same key always picks the same side of
    the split (one user stays on one version), and keys spread evenly."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0 ** 64


@dataclass
class VersionState:
    state: str = "START"        # START, LOADING, AVAILABLE, UNLOADING, END (TF Serving)
    error: str = ""
    mtime: float = 0.0
    backend: str = ""
    device: str = ""


@dataclass
class _Model:
    serving: dict[int, LoadedVersion] = field(default_factory=dict)
    states: dict[int, VersionState] = field(default_factory=dict)
    wanted: list[int] = field(default_factory=list)
    written: labels_file.Labels = field(default_factory=labels_file.Labels)   # as last read
    labels: labels_file.Labels = field(default_factory=labels_file.Labels)    # as routed now


class ModelRegistry:
    def __init__(self, config: ServiceConfig, metrics: Metrics):
        self.config = config
        self.metrics = metrics
        self._models: dict[str, _Model] = {}
        self._lock = threading.Lock()        # guards _models
        self._sync_lock = threading.Lock()   # one scan/load at a time
        self._scanned = threading.Event()
        self._stop = threading.Event()
        self._started = False
        self.draining = False
        self._default_logged: tuple | None = None   # (model, reason, served) last logged

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._watch, name="model-watcher", daemon=True).start()

    def _watch(self) -> None:
        while True:
            try:
                self.sync()
            except Exception:
                log.exception("repository scan failed", extra={"event": "scan_error"})
            self._scanned.set()
            self._publish_ready()
            if self.config.poll_interval_s <= 0 or self._stop.wait(self.config.poll_interval_s):
                return

    def wait_scanned(self, timeout: float) -> bool:
        """Until the first scan has loaded (or failed to load) every wanted version."""
        return self._scanned.wait(timeout)

    def wait_ready(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.ready():
                return True
            time.sleep(0.05)
        return self.ready()

    def drain(self) -> None:
        """SIGTERM: readiness false and no more reloads. Requests still arriving
        on open connections are served: they were accepted before the stop."""
        self.draining = True
        self._stop.set()
        self._publish_ready()

    # -- loading -----------------------------------------------------------
    def sync(self, force: bool = False) -> dict[str, list[int]]:
        cfg = self.config
        with self._sync_lock:
            found = repository.scan(cfg.model_root)
            for name, versions in found.items():
                with self._lock:
                    model = self._models.setdefault(name, _Model())
                model.written = self._read_labels(name, model.written)
                labelled = labels_file.effective(model.written, versions)
                wanted = repository.wanted_versions(versions, cfg.version_policy, cfg.versions)
                if cfg.version_policy == "latest":
                    wanted = []   # "latest" is what stable means without labels
                wanted = sorted(set(wanted) | set(_label_versions(labelled)))
                with self._lock:
                    model.wanted = wanted
                for version in wanted:
                    self._ensure_loaded(name, model, version, force)
                # Route by the new labels before anything is retired, so nothing routes
                # to a version once it is gone.
                self._set_labels(name, model, labelled)
                if any(v in model.serving for v in wanted):
                    for version in [v for v in model.serving if v not in wanted]:
                        self._retire(name, model, version)
            for name in [n for n in self._models if n not in found]:
                model = self._models[name]
                for version in list(model.serving):
                    self._retire(name, model, version)
                with self._lock:
                    del self._models[name]
            self._publish_ready()
            self._log_default()
            return {name: sorted(m.serving) for name, m in self._models.items()}

    def _read_labels(self, name: str, previous: labels_file.Labels) -> labels_file.Labels:
        """The labels file as written; a file that cannot be read keeps the labels in force."""
        try:
            return labels_file.read(self.config.model_root, name)
        except (MetadataError, OSError) as exc:
            log.warning("labels unreadable, keeping the previous ones", extra={
                "event": "labels_error", "model": name, "error": str(exc)})
            return previous

    def _set_labels(self, name: str, model: _Model, labelled: labels_file.Labels) -> None:
        """Route by ``labelled`` as far as its versions are loaded: a canary that failed to
        load answers nothing; a stable that failed leaves stable to the newest served."""
        with self._lock:
            serving = sorted(model.serving)
            stable = labelled.stable if labelled.stable in model.serving else (serving[-1] if serving else None)
            canary = labelled.canary if labelled.canary and labelled.canary.version in model.serving else None
            if canary is not None and canary.version == stable:
                canary = None
            now = labels_file.Labels(stable, canary)
            changed, model.labels = now != model.labels, now
        if changed:
            log.info("labels", extra={"event": "labels", "model": name, **now.to_dict()})

    def _ensure_loaded(self, name: str, model: _Model, version: int, force: bool) -> None:
        path = Path(self.config.model_root) / name / str(version)
        mtime = path.stat().st_mtime
        state = model.states.get(version)
        if version in model.serving:
            return
        if state and state.state == "END" and state.error and state.mtime == mtime and not force:
            return  # failed before and unchanged: do not retry every poll
        with self._lock:
            model.states[version] = VersionState("LOADING", mtime=mtime)
        started = time.monotonic()
        try:
            loaded = self._load(name, version)
        except Exception as exc:
            log.exception("model load failed", extra={"event": "model_load", "model": name,
                                                      "version": version, "result": "error"})
            self.metrics.model_load(name, "error", time.monotonic() - started)
            with self._lock:
                model.states[version] = VersionState("END", f"{type(exc).__name__}: {exc}", mtime)
            return
        with self._lock:  # the swap: from here on new requests may use it
            model.serving[version] = loaded
            model.states[version] = VersionState("AVAILABLE", mtime=mtime,
                                                 backend=loaded.backend_name, device=loaded.device)
        seconds = time.monotonic() - started
        self.metrics.model_load(name, "ok", seconds, loaded.backend_name, loaded.device)
        self.metrics.set_serving(name, version, loaded.backend_name, loaded.device, True)
        log.info("model version available", extra={
            "event": "model_load", "model": name, "version": version, "result": "ok",
            "backend": loaded.backend_name, "device": loaded.device, "seconds": round(seconds, 3)})

    def _load(self, name: str, version: int) -> LoadedVersion:
        cfg = self.config
        info = repository.read_version(Path(cfg.model_root) / name, version)
        info.min_confidence  # a bad serving block in metadata.json fails the load, not a request
        info.max_energy
        kind = choose_backend(cfg.backend, info, cfg.device)
        backend = load_backend(kind, info, cfg.resolved_model_threads, cfg.device)
        batcher = Batcher(backend.predict, cfg.max_batch_size, cfg.max_batch_delay_ms / 1000.0,
                          cfg.max_queue)
        loaded = LoadedVersion(info, kind, backend.device, batcher, backend=backend)
        if cfg.warmup:
            # Through the batcher, so that the interpreter requests will use is the warm one.
            for n in sorted({1, cfg.max_batch_size}):
                zeros = np.zeros((n, *info.input.shape), np.uint8)
                out = batcher.submit(zeros, time.monotonic() + cfg.warmup_timeout_s, admit=True)
                if out.shape != (n, len(info.labels) + bool(getattr(backend, "energy", False))):
                    batcher.close()
                    raise ValueError(f"model output shape {out.shape} does not match "
                                     f"{len(info.labels)} labels")
        # Observed from here on: warm-up calls stay out of the metrics.
        loaded.observer = batcher.observer = self.metrics.version(name, version, kind, backend.device)
        return loaded

    def _retire(self, name: str, model: _Model, version: int) -> None:
        with self._lock:
            loaded = model.serving.pop(version)
            model.states[version].state = "UNLOADING"
        loaded.batcher.close()  # finishes queued jobs; late ones run inline
        with self._lock:
            model.states[version].state = "END"
        self.metrics.set_serving(name, version, loaded.backend_name, loaded.device, False)
        log.info("model version retired", extra={"event": "model_unload", "model": name, "version": version})

    # -- lookups -----------------------------------------------------------
    def get(self, name: str, version: int | None = None) -> LoadedVersion:
        retry = self.config.retry_after_s
        if not self._scanned.is_set():
            raise Unavailable("models are loading", retry)
        with self._lock:
            model = self._models.get(name)
            if model is None:
                raise NotFound(f"model {name!r} not found")
            if version is None:
                if model.labels.stable in model.serving:
                    return model.serving[model.labels.stable]
                if model.serving:
                    return model.serving[max(model.serving)]
                raise Unavailable(f"model {name!r} has no version available yet", retry)
            if version in model.serving:
                return model.serving[version]
            state = model.states.get(version)
            if state and state.state in ("START", "LOADING"):
                raise Unavailable(f"model {name!r} version {version} is loading", retry)
        raise NotFound(f"model {name!r} version {version} is not served")

    def route(self, name: str, key: str | None = None) -> Route:
        """The version for a request that pins nothing: stable, or the canary for its share.

        ``key`` (the client's request id) fixes the draw, so one client stays on one
        version; without it the draw is random."""
        stable = self.get(name)
        with self._lock:
            model = self._models.get(name)
            canary = model.labels.canary if model else None
            canary_lv = model.serving.get(canary.version) if canary else None
        if canary_lv is None or canary_lv is stable:
            return Route(stable, labels_file.STABLE)
        if canary.shadow:
            return Route(stable, labels_file.STABLE, shadow=canary_lv)
        draw = split_fraction(key) if key else random.random()
        if draw * 100 < canary.percent:
            return Route(canary_lv, labels_file.CANARY)
        return Route(stable, labels_file.STABLE)

    def get_label(self, name: str, label: str) -> LoadedVersion:
        """The version a label names now (TF Serving's ``/labels/<label>``)."""
        if label not in (labels_file.STABLE, labels_file.CANARY):
            raise NotFound(f"unknown label {label!r}; the labels are "
                           f"{labels_file.STABLE!r} and {labels_file.CANARY!r}")
        if label == labels_file.STABLE:
            return self.get(name)
        self.get(name)   # 503 while loading, 404 for an unknown model
        with self._lock:
            canary = self._models[name].labels.canary if name in self._models else None
        if canary is None:
            raise NotFound(f"model {name!r} has no canary: label 'canary' names no version")
        return self.get(name, canary.version)

    def labels(self, name: str) -> labels_file.Labels:
        """The labels as routed now (``stable`` filled in, versions not served dropped)."""
        with self._lock:
            model = self._models.get(name)
            if model is None:
                raise NotFound(f"model {name!r} not found")
            return model.labels

    @property
    def scanned(self) -> bool:
        return self._scanned.is_set()

    def names(self) -> list[str]:
        """Models with a version published or served: a folder with neither is not a model."""
        with self._lock:
            return sorted(name for name, m in self._models.items() if m.wanted or m.serving)

    def _choose_default(self) -> tuple[str | None, str]:
        """(the default model or None, why): the module docstring's rule."""
        if self.config.default_model:
            return self.config.default_model, "SERVICE_DEFAULT_MODEL"
        with self._lock:
            names = sorted(self._models)
            served = [name for name in names if self._models[name].serving]
        if not served:
            return None, "no model has a version served"
        skipped = names[:names.index(served[0])]
        why = "the first model by name with a version served"
        return served[0], why + (f" (skipped, none served: {', '.join(skipped)})" if skipped else "")

    def default_model(self) -> str:
        name, _ = self._choose_default()
        if name:
            return name
        if not self._scanned.is_set():
            raise Unavailable("models are loading", self.config.retry_after_s)
        if self.names():
            raise Unavailable("no model has a version available yet", self.config.retry_after_s)
        raise NotFound("no model in the repository")

    def _log_default(self) -> None:
        """Says which model answers ``POST /predict`` without ``?model=``, at the first scan
        and whenever that changes (a model gained or lost its only servable version)."""
        name, why = self._choose_default()
        served = name is not None and any(lv.name == name for lv in self.serving())
        if (name, why, served) == self._default_logged:
            return
        self._default_logged = (name, why, served)
        level = logging.INFO if served else logging.WARNING
        text = (f"default model: {name} ({why})" if served else
                f"default model: {name or 'none'} ({why}); POST /predict without ?model= fails until "
                "it has a version served")
        log.log(level, text, extra={"event": "default_model", "model": name, "reason": why})

    def states(self, name: str) -> dict[int, VersionState]:
        with self._lock:
            model = self._models.get(name)
            if model is None:
                raise NotFound(f"model {name!r} not found")
            return {v: VersionState(**vars(s)) for v, s in model.states.items()}

    def serving(self) -> list[LoadedVersion]:
        with self._lock:
            return [lv for m in self._models.values() for lv in m.serving.values()]

    def _publish_ready(self) -> None:
        self.metrics.ready.set(int(self.ready()))

    def ready(self) -> bool:
        """Every model with a version the policy wants serves at least one."""
        if self.draining or not self._scanned.is_set():
            return False
        with self._lock:
            models = [m for m in self._models.values() if m.wanted]
            return bool(models) and all(m.serving for m in models)


def _label_versions(labels: labels_file.Labels) -> list[int]:
    return [v for v in (labels.stable, labels.canary.version if labels.canary else None) if v is not None]
