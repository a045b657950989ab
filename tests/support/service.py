"""For the service tests: a tiny real model and real gunicorn servers.

The model is a nearest-centroid classifier fitted on the committed
Fashion-MNIST fixture (class means as weights), with a stand-in ``mc_dropout``
signature (random pixels dropped per row), written in plain TensorFlow
(tf.Module, no tf_keras) and published through ``artifact`` as training
publishes: ``<root>/<name>/<version>/{saved_model/, model.tflite, metadata.json}``.
``tests/service/conftest.py`` builds it and the shared servers once per session.
"""
from __future__ import annotations

import functools
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import requests

from artifact import metadata as md
from artifact.saved_model import MC_DROPOUT_SIGNATURE
from artifact.versions import publish

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "data" / "fashion_fixture.npz"
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
TEMPERATURE = 8.0  # keeps softmax probabilities away from exact 0/1


@functools.lru_cache(maxsize=1)
def fashion_data() -> dict:
    """The committed fixture's arrays (read once)."""
    with np.load(FIXTURE) as d:
        return {k: d[k] for k in d.files}


def png_bytes(pixels: np.ndarray, mode: str = "L", **save_args) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(pixels, mode=mode).save(buf, format=save_args.pop("format", "PNG"), **save_args)
    return buf.getvalue()


def centroid_weights():
    data = fashion_data()
    x = data["x_train"].reshape(len(data["x_train"]), -1).astype(np.float32) / 255.0
    means = np.stack([x[data["y_train"] == k].mean(axis=0) for k in range(10)])
    # argmin ||x - m_k||^2 == argmax (2 x.m_k - ||m_k||^2)
    return (2 * means.T / TEMPERATURE).astype(np.float32), (-(means ** 2).sum(1) / TEMPERATURE).astype(np.float32)


def reference_top1(pixels: np.ndarray) -> np.ndarray:
    w, b = centroid_weights()
    x = pixels.reshape(len(pixels), -1).astype(np.float32) / 255.0
    return np.argmax(x @ w + b, axis=1)


def reference_energy(pixels: np.ndarray) -> np.ndarray:
    """-logsumexp of the tiny model's logits: what an ``energy=True`` artifact serves."""
    w, b = centroid_weights()
    z = pixels.reshape(len(pixels), -1).astype(np.float64) / 255.0 @ w + b
    top = z.max(axis=1)
    return -(top + np.log(np.exp(z - top[:, None]).sum(axis=1)))


def _module(tf, faulty: bool = False, energy: bool = False):
    w, b = centroid_weights()

    class Centroids(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(w, trainable=False)
            self.b = tf.Variable(b, trainable=False)

        def logits(self, x):
            return tf.matmul(tf.reshape(x / 255.0, [-1, 784]), self.w) + self.b

        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.uint8, name="pixels")])
        def serve(self, pixels):
            if faulty:  # a model that fails at run time on all-white pixels: the 500 path
                tf.debugging.assert_less(tf.reduce_min(pixels), tf.constant(255, tf.uint8),
                                         message="internal model assertion")
            logits = self.logits(tf.cast(pixels, tf.float32))
            if energy:    # the second output training exports (training/publish/export.py), T = 1
                return {"probabilities": tf.nn.softmax(logits), md.ENERGY_NAME: -tf.reduce_logsumexp(logits, -1)}
            return {"probabilities": tf.nn.softmax(logits)}

        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.uint8, name="pixels")])
        def mc_dropout(self, pixels):
            # a stand-in for Monte Carlo dropout: each row drops half its pixels at random
            return {"probabilities": tf.nn.softmax(self.logits(tf.nn.dropout(tf.cast(pixels, tf.float32), 0.5)))}

        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32, name="pixels")])
        def serve_float(self, pixels):
            return {"probabilities": tf.nn.softmax(self.logits(pixels))}

    return Centroids()


def _convert(tf, saved_dir: Path, module, variant: str) -> bytes:
    data = fashion_data()

    def representative(dtype):
        for img in data["x_train"][:200:4]:
            yield [img[None, :, :, None].astype(dtype)]

    if variant == "int8io":  # float-input graph, int8 input and output tensors
        conv = tf.lite.TFLiteConverter.from_concrete_functions(
            [module.serve_float.get_concrete_function()], module)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: representative(np.float32)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        return conv.convert()
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_dir))
    if variant == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif variant == "uint8out":  # fully integer inside, uint8 pixels in, uint8 out
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: representative(np.uint8)
        conv.inference_output_type = tf.uint8
    elif variant != "none":
        raise ValueError(variant)
    return conv.convert()


def build_artifact(models_dir: Path, variant: str = "none", faulty: bool = False,
                   name: str = "fashion", energy: bool = False, serving: dict = None) -> Path:
    """Publish the next version of ``name`` under ``models_dir``; returns its directory.
    ``energy``: the serving signature (and the TFLite file) has the energy output;
    ``serving``: the metadata's ``serving`` block."""
    import tensorflow as tf
    module = _module(tf, faulty, energy)

    def write(staging: Path) -> md.Metadata:
        formats = md.Formats(saved_model=md.SavedModelFormat())
        saved_dir = staging / formats.saved_model.path
        signatures = {md.SIGNATURE: module.serve}
        if not faulty:        # the faulty model stands for a version published without it
            signatures[MC_DROPOUT_SIGNATURE] = module.mc_dropout
        tf.saved_model.save(module, str(saved_dir), signatures=signatures)
        if not faulty:
            formats.tflite = md.TFLiteFormat(quantization=variant)
            (staging / formats.tflite.path).write_bytes(_convert(tf, saved_dir, module, variant))
        meta = md.Metadata(name=name, labels=list(LABELS), input=md.InputSpec.of(28, 28, "L"),
                           formats=formats, techniques={"test": "nearest centroid"})
        return meta.updated({"serving": serving}) if serving else meta

    return publish(models_dir, name, write)


def publish_copy(src_version: Path, model_dir: Path, version: int) -> Path:
    """Publish a copy of a version as the next version of ``model_dir``, which must be ``version``."""
    def write(staging: Path) -> md.Metadata:
        shutil.copytree(src_version, staging, dirs_exist_ok=True)
        return md.read(staging)

    published = publish(model_dir.parent, model_dir.name, write)
    assert published.name == str(version), f"published {published}, expected version {version}"
    return published


def model_root(tmp_path_factory, artifact: Path, label: str, faulty: Path = None) -> Path:
    """A new repository holding ``artifact`` as fashion/1 (and ``faulty`` as faulty/1)."""
    root = tmp_path_factory.mktemp(label)
    shutil.copytree(artifact, root / "fashion" / "1")
    if faulty:
        shutil.copytree(faulty, root / "faulty" / "1")
    return root


def metric(text: str, name: str, **labels) -> float:
    """Sum of the samples of ``name`` in a scrape whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:{{(.*)}})? (\S+)", line)
        if match:
            have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            if all(have.get(k) == str(v) for k, v in labels.items()):
                total += float(match.group(2))
    return total


def wait_for(check, timeout: float = 30.0) -> bool:
    """Poll ``check`` until it is true (True) or ``timeout`` seconds pass (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.1)
    return False


def repository_of_copies(tmp_path: Path, artifact: Path, versions=(1,)) -> Path:
    """A new repository ``tmp_path/models`` holding ``versions`` of the artifact as model 'fashion'."""
    model_dir = tmp_path / "models" / "fashion"
    model_dir.mkdir(parents=True)
    for version in versions:
        publish_copy(artifact, model_dir, version)
    return model_dir.parent


def server_for_copies(tmp_path: Path, artifact: Path, versions=(1,), **settings) -> "Server":
    """A tflite server (not yet waited for) on ``repository_of_copies``; ``settings`` go to
    ``Server`` (polling for changes continuously unless ``poll_interval_s`` says otherwise)."""
    settings = {"poll_interval_s": 0, **settings}
    return Server(repository_of_copies(tmp_path, artifact, versions), tmp_path / "s.log", backend="tflite",
                  **settings)


def worker_pids(server: "Server") -> list[int]:
    pid = server.proc.pid
    return sorted(int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real gunicorn process on a loopback port."""

    def __init__(self, root: Path, log_path: Path, **settings):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = root
        env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE_")}
        env.update({"SERVICE_BIND": f"127.0.0.1:{self.port}", "SERVICE_MODEL_ROOT": str(root),
                    "SERVICE_WORKERS": "1", "SERVICE_THREADS": "8", "SERVICE_MODEL_THREADS": "1",
                    "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"})
        env.update({f"SERVICE_{k.upper()}": str(v) for k, v in settings.items()})
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "service:create_app()"],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait(self, path: str = "/v2/health/ready", timeout: float = 240.0) -> "Server":
        """Until ``path`` answers 200; on failure the process is stopped, never leaked.

        Generous: TensorFlow's import alone takes 20 s on 2 busy cores."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if requests.get(self.url + path, timeout=5).status_code == 200:
                    return self
            except requests.RequestException:  # not listening yet, or too busy to answer
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"{path} not 200 after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode
