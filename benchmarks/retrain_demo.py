"""Batch retraining on Fashion-MNIST as data arrives, against a real server.

Steps, each printed as one JSON line (which version the running gunicorn
answers with is read from its predict responses):

1. v1: ``retrain --allow-new`` with nothing served trains the demo preset from scratch on
   20% of the training set and publishes it; the server starts on it;
2. all of the training set arrives: ``retrain`` fine-tunes v1 and publishes v2
   (a better score on the same test set); the server hot-loads it;
3. the same data with 30% of its labels shuffled: the candidate scores worse,
   nothing is published, the server stays on v2;
4. ``rollback``: v2 is retired, the server falls back to v1 without a restart.

    python benchmarks/retrain_demo.py > reports/retrain_demo.jsonl

The data sets are .npz files written into the work directory (the official
test set in each, so every step is measured on the same 10,000 images).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.data.datasets import load_fashion_mnist  # noqa: E402

NAME = "fashion-demo"


def write_arrivals(work: Path, seed: int = 0) -> dict:
    """The three data sets that arrive: 20% of the training set, all of it, all of it with
    30% of the labels shuffled among themselves."""
    train, test = load_fashion_mnist()
    rng = np.random.default_rng(seed)
    first = rng.permutation(len(train))[: len(train) // 5]
    noisy = train.y.copy()
    chosen = rng.choice(len(noisy), size=int(0.3 * len(noisy)), replace=False)
    noisy[chosen] = rng.permutation(noisy[chosen])
    sets = {"20%": (train.x[first], train.y[first]), "100%": (train.x, train.y), "100%, 30% shuffled": (train.x, noisy)}
    paths = {}
    for i, (label, (x, y)) in enumerate(sets.items()):
        paths[label] = work / f"arrival{i + 1}.npz"
        np.savez(paths[label], x_train=x[..., 0], y_train=y, x_test=test.x[..., 0], y_test=test.y,
                 class_names=np.array(train.class_names))
    wrong = float(np.mean(noisy != train.y))
    return {"paths": paths, "wrong_labels": round(wrong, 4), "probe": test.x[:1, ..., 0].tolist()}


def cli(*args, log: Path) -> tuple:
    """(exit code, the JSON line printed) of ``python -m training ...``."""
    with open(log, "a") as err:
        done = subprocess.run([sys.executable, "-m", "training", *args], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=err, text=True)
    lines = done.stdout.strip().splitlines()
    return done.returncode, json.loads(lines[-1]) if lines else {}


class Server:
    """gunicorn on a free loopback port, serving the demo's repository (LiteRT backend)."""

    def __init__(self, models: Path, log: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE_")}
        env.update({"SERVICE_BIND": f"127.0.0.1:{port}", "SERVICE_MODEL_ROOT": str(models), "SERVICE_WORKERS": "1",
                    "SERVICE_BACKEND": "tflite", "SERVICE_POLL_INTERVAL_S": "1", "TF_CPP_MIN_LOG_LEVEL": "2"})
        self._log = open(log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "service:create_app()"],
                                     cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def answering_version(self, probe: list):
        try:
            r = requests.post(f"{self.url}/v1/models/{NAME}:predict", json={"instances": probe}, timeout=10)
            return r.json().get("model_version") if r.ok else None
        except requests.RequestException:
            return None

    def wait_for(self, probe: list, version, timeout: float = 120.0):
        """The version answering once it is ``version`` (or after ``timeout``)."""
        end = time.monotonic() + timeout
        answer = self.answering_version(probe)
        while answer != str(version) and time.monotonic() < end and self.proc.poll() is None:
            time.sleep(0.5)
            answer = self.answering_version(probe)
        return answer

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self._log.close()


def step_line(step: str, code: int, report: dict, seconds: float, served) -> dict:
    def scores(block):
        return {fmt: s["accuracy"] for fmt, s in block.items()} if block else None
    return {"step": step, "exit_code": code, "decision": report.get("decision"),
            "published_version": report.get("published_version"), "current_version": report.get("current_version"),
            "start": report.get("start"), "train_images": report.get("data", {}).get("train", {}).get("examples"),
            "test_images": report.get("data", {}).get("test", {}).get("examples"),
            "candidate_accuracy": scores(report.get("candidate")), "current_accuracy": scores(report.get("current")),
            "seconds": round(seconds, 1), "served_version": served}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", help="working directory (default: a new temporary one)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="retrain-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    models, log = work / "models", work / "demo.log"
    models.mkdir(exist_ok=True)   # retrain refuses a repository that is not there
    arrivals = write_arrivals(work)
    paths, probe = arrivals["paths"], arrivals["probe"]
    common = ["--name", NAME, "--models-dir", str(models), "--set", f"output_dir={work / 'runs'}",
              "--set", "train.verbose=0"]
    server = None
    try:
        start = time.perf_counter()
        code, report = cli("retrain", *common, "--allow-new", "--preset", "retrain_demo", "--data", str(paths["20%"]),
                           log=log)
        seconds = time.perf_counter() - start
        server = Server(models, work / "server.log")
        print(json.dumps(step_line("v1: 20% of the training set, nothing served yet", code, report, seconds,
                                   server.wait_for(probe, 1, timeout=300))), flush=True)

        for label, expected, title in (("100%", 2, "all of the training set arrives"),
                                       ("100%, 30% shuffled", 2, f"{arrivals['wrong_labels']:.0%} of the labels "
                                                                  "wrong (30% shuffled)")):
            start = time.perf_counter()
            code, report = cli("retrain", *common, "--data", str(paths[label]), log=log)
            seconds = time.perf_counter() - start
            time.sleep(3)   # three polls: a version published now would be answering
            print(json.dumps(step_line(title, code, report, seconds, server.wait_for(probe, expected))), flush=True)

        start = time.perf_counter()
        code, report = cli("rollback", "--name", NAME, "--models-dir", str(models), "--reason", "demo", log=log)
        print(json.dumps({"step": "rollback", "exit_code": code, "retired_now": report.get("retired_now"),
                          "published": report.get("published"), "seconds": round(time.perf_counter() - start, 1),
                          "served_version": server.wait_for(probe, 1)}), flush=True)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
