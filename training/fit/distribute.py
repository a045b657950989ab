"""Training on more than one device or machine with ``tf.distribute``.

- ``default``: no distribution (one device), the plain code path;
- ``mirrored``: ``MirroredStrategy``, one replica per local GPU (the CPU when
  there is none), gradients all-reduced every step;
- ``multi_worker``: ``MultiWorkerMirroredStrategy`` across processes or
  machines named in ``TF_CONFIG`` (``{"cluster": {"worker": ["host:port", ...]},
  "task": {"type": "worker", "index": i}}``); every worker runs the same command.

The model is built (and so compiled) inside ``strategy.scope()``. The config's
``train.batch_size`` is the batch of one replica; the global batch that each
step consumes is that times the replicas, so a run keeps its per-device memory
whatever the cluster size, and the recorded config stays the same recipe.

Only the chief writes checkpoints and logs into the run directory; the other
workers write theirs (their callbacks must run in step) into a temporary
directory. After the fit every worker reads the weights once (batch-norm moving
statistics are kept per replica and averaged on read, a collective step all
workers must join); then the chief alone restores the best epoch, evaluates and
publishes, on a plain copy of the model outside the strategy.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.config import STRATEGIES, ConfigError


@dataclass
class Distribution:
    kind: str
    strategy: "tf.distribute.Strategy"
    task: str            # "worker/0" (or "local" without a cluster)
    chief: bool

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    def record(self, per_replica_batch: int) -> dict:
        """What the run used, for the log, the metadata and the command's JSON line."""
        return {"strategy": self.kind, "task": self.task, "chief": self.chief, "replicas": self.replicas,
                "per_replica_batch": per_replica_batch, "global_batch": per_replica_batch * self.replicas}


def _cluster_task() -> tuple:
    """(task type, index, has a chief entry) from TF_CONFIG."""
    # Not a config key: TF_CONFIG is tf.distribute's own standard, which the
    # MultiWorkerMirroredStrategy itself reads from the environment and cluster
    # launchers set per worker; a copy in the config could only disagree with it.
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        raise ConfigError("--strategy multi_worker reads the cluster from TF_CONFIG, which is not set: "
                          'export TF_CONFIG=\'{"cluster": {"worker": ["host1:port", "host2:port"]}, '
                          '"task": {"type": "worker", "index": 0}}\' on each worker')
    try:
        spec = json.loads(raw)
        task = spec["task"]
        return task["type"], int(task["index"]), "chief" in spec["cluster"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"TF_CONFIG is not a cluster spec with a task ({exc}): {raw[:120]}") from None


def make(kind: str) -> Distribution:
    """The strategy for ``kind``. Call it before any other TensorFlow work: a multi-worker
    strategy configures the runtime's collective ops and must come first."""
    if kind not in STRATEGIES:
        raise ConfigError(f"unknown strategy '{kind}' ({', '.join(STRATEGIES)})")
    if kind == "multi_worker":
        task_type, index, has_chief = _cluster_task()   # a bad TF_CONFIG fails before TensorFlow loads
    from training.keras2 import tf
    if kind == "default":
        return Distribution(kind, tf.distribute.get_strategy(), "local", True)
    if kind == "mirrored":
        return Distribution(kind, tf.distribute.MirroredStrategy(), "local", True)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    # Keras' rule: the "chief" task, else worker 0 of a cluster without one.
    chief = task_type == "chief" or (task_type == "worker" and index == 0 and not has_chief)
    return Distribution(kind, strategy, f"{task_type}/{index}", chief)


@contextmanager
def run_dir(chief_dir: Path, dist: Distribution):
    """The chief writes checkpoints and logs into ``chief_dir``; another worker writes
    the same files (its callbacks must run in step) into a temporary directory, removed after."""
    if dist.chief:
        yield Path(chief_dir)
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"worker-{dist.task.replace('/', '-')}-"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def weights_digest(weights: list) -> str:
    """sha256 over every weight array, in order: equal on workers that ended in step."""
    digest = hashlib.sha256()
    for w in weights:
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()
