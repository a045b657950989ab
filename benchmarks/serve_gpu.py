"""Serve with the tf backend (GPU when visible), report placement and throughput.

Starts gunicorn with ``service:create_app()`` on a loopback port, asks the
service where the model runs, then drives it with concurrent V2 binary UINT8
requests for a few seconds. With ``--compare tflite`` the same load runs
against a LiteRT server in the same process, and a ratio line follows,
because absolute numbers on shared machines drift. Runs on CPU too.

    python benchmarks/serve_gpu.py [--model-root models] [--seconds 10] [--clients 16]

Every result is one JSON line on stdout; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

REPO = Path(__file__).resolve().parents[1]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def find_model(root: Path) -> tuple | None:
    """(name, Metadata) of the first model with a published version."""
    sys.path.insert(0, str(REPO))
    from artifact import metadata as md
    from artifact.versions import scan
    for name, versions in scan(root).items():
        if versions:
            return name, md.read(root / name / str(versions[-1]))
    return None


def tiny_model_root() -> Path:
    """No published model: build the tests' nearest-centroid model (needs tests/data)."""
    sys.path.insert(0, str(REPO / "tests"))
    from support.service import build_artifact
    root = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    build_artifact(root)
    return root


def start(root: Path, backend: str, args) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, SERVICE_BIND=f"127.0.0.1:{port}", SERVICE_MODEL_ROOT=str(root),
               SERVICE_BACKEND=backend, SERVICE_WORKERS="1", SERVICE_THREADS=str(args.clients + 4),
               SERVICE_MAX_BATCH_SIZE=str(args.max_batch), SERVICE_MAX_BATCH_DELAY_MS=str(args.delay_ms),
               SERVICE_MAX_QUEUE=str(4 * args.clients), SERVICE_POLL_INTERVAL_S="0",
               SERVICE_LOG_LEVEL="WARNING", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "service:create_app()"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    end = time.monotonic() + 180
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{backend} server exited with {proc.returncode}")
        try:
            if requests.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                return proc, url
        except requests.ConnectionError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise TimeoutError(f"{backend} server not ready")


def drive(url: str, model: str, meta, pixels: np.ndarray, args) -> dict:
    header = json.dumps({"inputs": [{"name": meta.input_name, "datatype": "UINT8", "shape": list(pixels.shape),
                                     "parameters": {"binary_data_size": pixels.size}}],
                         "outputs": [{"name": meta.output_name, "parameters": {"binary_data": True}}]}).encode()
    body, headers = header + pixels.tobytes(), {"Inference-Header-Content-Length": str(len(header))}
    latencies, errors = [], [0]
    lock, stop = threading.Lock(), threading.Event()

    def client():
        session = requests.Session()
        while not stop.is_set():
            t0 = time.perf_counter()
            r = session.post(f"{url}/v2/models/{model}/infer", data=body, headers=headers)
            with lock:
                (latencies.append(time.perf_counter() - t0) if r.status_code == 200 else
                 errors.__setitem__(0, errors[0] + 1))

    for _ in range(20):  # warm the path outside the timed window
        requests.post(f"{url}/v2/models/{model}/infer", data=body, headers=headers)
    threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in threads:
        t.join(30)
    elapsed = time.perf_counter() - started
    lat = sorted(latencies)
    return {"requests_per_s": round(len(lat) / elapsed, 1),
            "images_per_s": round(len(lat) * pixels.shape[0] / elapsed, 1),
            "p50_ms": round(1000 * statistics.median(lat), 2) if lat else None,
            "p99_ms": round(1000 * lat[int(0.99 * (len(lat) - 1))], 2) if lat else None,
            "requests": len(lat), "errors": errors[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-root", type=Path, default=REPO / "models")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16, help="concurrent client threads")
    parser.add_argument("--images", type=int, default=1, help="images per request")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--delay-ms", type=float, default=2.0)
    parser.add_argument("--compare", default="tflite", help="second backend to run side by side, or ''")
    args = parser.parse_args()

    root = args.model_root
    found = find_model(root)
    if found is None:
        log(f"no published model under {root}; using the tests' tiny model")
        root = tiny_model_root()
        found = find_model(root)
    model, meta = found
    pixels = np.random.default_rng(0).integers(0, 256, (args.images, *meta.input.shape), dtype=np.uint8)

    results = {}
    for backend in ["tf"] + ([args.compare] if args.compare else []):
        log(f"starting {backend} server ...")
        proc, url = start(root, backend, args)
        try:
            info = requests.get(f"{url}/v2/models/{model}").json()["parameters"]
            gauge = [line for line in requests.get(url + "/metrics").text.splitlines()
                     if line.startswith("service_model_backend{")]
            print(json.dumps({"event": "placement", "backend": info["backend"], "device": info["device"],
                              "model": model, "version": info["version"], "metrics": gauge}), flush=True)
            result = drive(url, model, meta, pixels, args)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        results[backend] = result
        print(json.dumps({"event": "throughput", "backend": backend, "device": info["device"],
                          "clients": args.clients, "images_per_request": args.images,
                          "max_batch": args.max_batch, "delay_ms": args.delay_ms,
                          "seconds": args.seconds, **result}), flush=True)
    if len(results) == 2 and results[args.compare]["images_per_s"]:
        print(json.dumps({"event": "ratio", "tf_over_" + args.compare: round(
            results["tf"]["images_per_s"] / results[args.compare]["images_per_s"], 3)}), flush=True)


if __name__ == "__main__":
    main()
