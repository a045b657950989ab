"""One typed configuration object for the service.

Order of precedence: dataclass defaults, then ``SERVICE_<FIELD>`` environment
variables, then the dict passed to ``create_app(config=...)``. Unknown keys are
an error, not silently ignored. This module is light (no TensorFlow) because
``gunicorn.conf.py`` imports it in the master process.
"""
from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass, field

ENV_PREFIX = "SERVICE_"
BACKENDS = ("auto", "tf", "tflite")
DEVICES = ("auto", "cpu", "gpu")
POLICIES = ("latest", "all", "specific")


def cpu_count() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota
    (a container limited to 2 CPUs on a 64-core node sees all 64 in its affinity)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return min(cores, cgroup_cpu_limit() or cores)


def cgroup_cpu_limit(path: str = "/sys/fs/cgroup/cpu.max") -> int | None:
    """``cpu.max`` holds "<quota> <period>" or "max <period>"; None when unlimited or absent."""
    try:
        quota, period = open(path).read().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


MAX_AUTO_WORKERS = 8  # each TF worker holds its own TensorFlow runtime: hundreds of MB


def default_workers(backend: str, device: str) -> int:
    """One worker per core on CPU, one in all on a GPU.

    Measured on 2 cores (issue 12): LiteRT with 1 thread runs a single image
    faster than with 2, and 2 workers of 1 thread beat 1 worker of 2 threads
    by 1.3-2.6x, because request parsing holds the GIL. A GPU wants one
    process that batches: several would each hold the whole model in GPU memory."""
    from .backends import gpu_visible  # cheap: no TensorFlow import
    if backend != "tflite" and device != "cpu" and gpu_visible():
        return 1
    return max(1, min(MAX_AUTO_WORKERS, cpu_count()))


@dataclass
class ServiceConfig:
    # model repository: <model_root>/<name>/<integer version>/
    model_root: str = "models"
    default_model: str = ""          # for POST /predict; "" = first model by name with a version served
    version_policy: str = "latest"   # latest | all | specific
    versions: list[int] = field(default_factory=list)  # for policy "specific"
    poll_interval_s: float = 5.0     # hot-reload watcher period; 0 disables it
    # runtime
    backend: str = "auto"            # auto | tf | tflite
    device: str = "auto"             # auto | cpu | gpu (tf backend only)
    model_threads: int = 0           # TF intra-op / LiteRT threads; 0 = cores // workers
    warmup: bool = True
    warmup_timeout_s: float = 120.0  # deadline of each warm-up call at load; a slower model fails to load
    # gunicorn (read by gunicorn.conf.py; model_threads uses workers)
    bind: str = "0.0.0.0:8080"       # without SERVICE_BIND: 0.0.0.0:$PORT when PORT is set (platforms set it)
    workers: int = 0                 # 0 = one per core (at most 8), one on a GPU
    threads: int = 0                 # request threads per worker; 0 = 2 x max_batch_size
    worker_timeout_s: int = 60       # s without a heartbeat before the master kills a worker
    graceful_timeout_s: int = 30     # s for queued and in-flight requests after SIGTERM
    keepalive_s: int = 5             # s an idle kept-alive connection stays open
    # worker tuning (service/worker.py says what each was measured against)
    gil_switch_interval_s: float = 0.0005   # sys.setswitchinterval in each worker (Python: 0.005)
    keepalive_linger_s: float = 0.005       # a request thread's wait for its connection's next request
    gc_young_threshold: int = 20_000        # young-generation GC threshold once models are loaded
    accept_defer_per_conn_s: float = 0.0001  # accept() delay per connection a worker holds
    accept_defer_max_s: float = 0.003        # ... capped at this
    # dynamic batching
    max_batch_size: int = 16         # images per model call; larger requests run in chunks
    max_batch_delay_ms: float = 0.0  # extra wait for company; 0 = batch only what is waiting
    max_queue: int = 64              # queued requests per model version, then 429
    request_timeout_ms: float = 10000.0  # deadline per request, then 504
    # input limits
    max_content_length: int = 8 * 1024 * 1024   # bytes, then 413
    max_items: int = 256                         # images per request, then 400
    max_image_pixels: int = 4096 * 4096          # decoded w*h, then 400 (bomb guard)
    # labels (artifact.labels): copies of stable's traffic waiting for the canary in shadow
    # mode, per worker; more are dropped (counted), never queued without bound
    shadow_max_pending: int = 16
    # "not sure" answers: below this top probability the label is withheld, for every
    # model; None = each version's metadata.json serving.min_confidence (absent: 0)
    min_confidence: float | None = None
    # "unfamiliar input" answers (service/energy.py): above this energy the label is withheld,
    # for every model; None = each version's metadata.json serving.max_energy (absent: off);
    # inf turns the rule off everywhere
    max_energy: float | None = None
    # capture (service/capture.py): a sample of served images for labelling and drift checks;
    # off while capture_dir is "". The rate is the share of predict requests kept; the
    # budget in MB covers the images and the index, the oldest images dropped first
    capture_dir: str = ""
    capture_rate: float = 0.01
    capture_max_mb: float = 100.0
    # prediction drift (service/drift.py): answers per served version in each worker's sliding
    # window, tested against the version's drift_reference; 0 turns it off. 500: the smallest
    # window that caught every foreign mix of benchmarks/drift.py (docs/service.md "Drift")
    drift_window: int = 500
    # metrics (service/metrics.py): per-request updates are written every this many seconds,
    # at every /metrics scrape and at worker exit; 0 writes each one at once
    metrics_flush_s: float = 0.5
    # operations
    admin_token: str = ""            # empty: admin routes answer 404
    retry_after_s: int = 5           # Retry-After header on 503
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.version_policy not in POLICIES:
            raise ValueError(f"version_policy must be one of {POLICIES}, got {self.version_policy!r}")
        if self.version_policy == "specific" and not self.versions:
            raise ValueError("version_policy 'specific' needs versions, e.g. SERVICE_VERSIONS=1,3")
        for name in ("max_batch_size", "max_items", "max_content_length", "gc_young_threshold",
                     "worker_timeout_s", "graceful_timeout_s", "shadow_max_pending"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("workers", "threads", "model_threads", "max_queue", "keepalive_s", "drift_window",
                     "keepalive_linger_s", "accept_defer_per_conn_s", "accept_defer_max_s",
                     "metrics_flush_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("warmup_timeout_s", "gil_switch_interval_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.drift_window:
            from artifact.drift import MIN_IMAGES   # numpy only
            if self.drift_window < MIN_IMAGES:
                raise ValueError(f"drift_window must be 0 (off) or at least {MIN_IMAGES}: a smaller window "
                                 f"is never tested, got {self.drift_window}")
        if self.min_confidence is not None:
            if isinstance(self.min_confidence, bool) or not 0.0 <= float(self.min_confidence) <= 1.0:
                raise ValueError(f"min_confidence must be a number in [0, 1], got {self.min_confidence!r}")
            self.min_confidence = float(self.min_confidence)
        if self.max_energy is not None:
            if isinstance(self.max_energy, bool) or not isinstance(self.max_energy, (int, float)) \
                    or math.isnan(self.max_energy) or self.max_energy == -math.inf:
                raise ValueError(f"max_energy must be a number (inf: off), got {self.max_energy!r}")
            self.max_energy = float(self.max_energy)
        if not 0.0 <= self.capture_rate <= 1.0:
            raise ValueError(f"capture_rate must be in [0, 1], got {self.capture_rate!r}")
        if not self.capture_max_mb > 0:
            raise ValueError(f"capture_max_mb must be > 0, got {self.capture_max_mb!r}")
        if self.workers == 0:
            self.workers = default_workers(self.backend, self.device)
        if self.threads == 0:
            # A batch fills only from requests in flight in this worker: one
            # batch's worth runs while the next one's requests are parsed.
            self.threads = 2 * self.max_batch_size

    @property
    def resolved_model_threads(self) -> int:
        """Threads for one model call, so that workers x threads ~ cores."""
        if self.model_threads > 0:
            return self.model_threads
        return max(1, cpu_count() // self.workers)

    @classmethod
    def load(cls, overrides: dict | None = None, environ=None) -> "ServiceConfig":
        environ = os.environ if environ is None else environ
        values: dict = {}
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        for name in names:
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = _parse(name, raw, hints[name])
        if "bind" not in values and environ.get("PORT"):
            values["bind"] = "0.0.0.0:" + str(_parse_port(environ["PORT"]))
        for key, value in (overrides or {}).items():
            name = key.lower().removeprefix(ENV_PREFIX.lower())
            if name not in names:
                raise KeyError(f"unknown service config key: {key!r}")
            values[name] = _parse(name, value, hints[name]) if isinstance(value, str) else value
        return cls(**values)


def _parse_port(raw: str) -> int:
    """PORT is what Knative/KServe and Cloud Run set; SERVICE_BIND, when given, wins."""
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise ValueError(f"PORT: expected a TCP port number, got {raw!r}")
    return port


def _parse(name: str, raw: str, hint) -> object:
    try:
        if hint == typing.Optional[float]:  # "" or "none": unset
            return None if raw.strip().lower() in ("", "none") else float(raw)
        if hint is bool:
            if raw.strip().lower() in ("1", "true", "yes", "on"):
                return True
            if raw.strip().lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if hint is int:
            return int(raw)
        if hint is float:
            return float(raw)
        if typing.get_origin(hint) is list:
            return [int(v) for v in raw.replace(" ", "").split(",") if v]
        return raw
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{name.upper()}: cannot parse {raw!r} as {hint}") from None
