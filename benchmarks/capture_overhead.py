"""What capture costs the request path: ``POST /predict`` with capture off, at the default
rate (1%) and at rate 1 (every request kept), on the same server layout.

For each setting a gunicorn with the service defaults (tflite, one worker per core)
serves the latest version of ``models/<model>/`` copied into a temporary repository, and
wrk sends one 28x28 PNG per request at each concurrency for ``--seconds``. The settings
are run in turn, ``--rounds`` times, so a change in the machine's load hits all of them.
Each line: req/s, p50 and p99 latency, non-2xx, and for capture the images captured and
dropped during the run (``service_captures_total``) and the bytes on disk after it (with
a 2 MB budget too, which the run overflows, so dropping the oldest is part of the cost).
Loopback only.

First, in process, what ``Capture.offer`` itself costs a request thread (the random draw
and, for a kept request, a ``put_nowait`` on the writer's queue): the part of capture on
the request path, without the machine's load in the way.

    python benchmarks/capture_overhead.py > reports/capture_overhead.jsonl
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

WRK_SCRIPT = r"""
local f = assert(io.open(os.getenv("WRK_BODY"), "rb")); wrk.body = f:read("*a"); f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/png"
function done(s, latency, requests)
  io.write(string.format('WRK_JSON {"requests":%d,"duration_us":%d,"status":%d,"p50_us":%d,"p99_us":%d}\n',
    s.requests, s.duration, s.errors.status, latency:percentile(50), latency:percentile(99)))
end
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(root: Path, log_path: Path, **settings) -> tuple:
    url = f"http://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVICE_", "PROMETHEUS_"))}
    env.update(SERVICE_BIND=url.removeprefix("http://"), SERVICE_MODEL_ROOT=str(root), SERVICE_BACKEND="tflite",
               TF_CPP_MIN_LOG_LEVEL="2")
    env.update({f"SERVICE_{k.upper()}": str(v) for k, v in settings.items()})
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "service:create_app()"],
                            cwd=REPO, env=env, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)
    end = time.monotonic() + 300
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited; see {log_path}")
        try:
            if requests.get(url + "/v2/health/ready", timeout=5).status_code == 200:
                return url, proc
        except requests.RequestException:
            pass
        time.sleep(0.3)
    stop(proc)
    raise TimeoutError(f"server not ready; see {log_path}")


def stop(proc) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wrk(url: str, body: Path, script: Path, concurrency: int, seconds: int) -> dict:
    out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script),
                          url + "/predict"], env=dict(os.environ, WRK_BODY=str(body)), capture_output=True,
                         text=True, timeout=seconds + 60).stdout
    raw = json.loads(re.search(r"^WRK_JSON (.*)$", out, re.M).group(1))
    secs = raw["duration_us"] / 1e6
    return {"requests": raw["requests"], "req_per_s": round(raw["requests"] / secs, 1),
            "p50_ms": round(raw["p50_us"] / 1000, 2), "p99_ms": round(raw["p99_us"] / 1000, 2),
            "non_2xx": raw["status"]}


def captured(url: str) -> dict:
    text = requests.get(url + "/metrics", timeout=10).text
    counts = {"captured": 0.0, "dropped": 0.0}
    for result, value in re.findall(r'^service_captures_total{[^}]*result="(\w+)"[^}]*} (\S+)$', text, re.M):
        counts[result] += float(value)
    return {k: int(v) for k, v in counts.items()}


def offer_cost(repository: Path, model: str, folder: Path, n: int = 20000) -> list:
    """What ``Capture.offer`` costs the request thread, in process: off, at 1% and at rate 1
    (the writer thread busy meanwhile; when its queue is full the offer is a counted drop)."""
    sys.path.insert(0, str(REPO))
    from service.capture import Capture
    from service.metrics import Metrics
    from service.registry import LoadedVersion
    from service.repository import read_version
    lv = LoadedVersion(read_version(repository / model, 1), "tflite", "cpu", batcher=None)
    pixels = [np.zeros(lv.info.input.shape, np.uint8)]
    row = [np.full(len(lv.info.labels), 1.0 / len(lv.info.labels), np.float32)]
    records = []
    for name, directory, rate in (("off", "", 0.01), ("rate_0.01", folder / "offer-1", 0.01),
                                  ("rate_1", folder / "offer-2", 1.0)):
        capture = Capture(str(directory), rate, 100.0, None, Metrics())
        times = np.empty(n)
        for i in range(n):
            start = time.perf_counter_ns()
            capture.offer(lv, f"r{i}", pixels, row)
            times[i] = time.perf_counter_ns() - start
        records.append({"bench": "capture_overhead", "kind": "offer_in_process", "capture": name, "calls": n,
                        "mean_us": round(times.mean() / 1000, 2), "p50_us": round(np.percentile(times, 50) / 1000, 2),
                        "p99_us": round(np.percentile(times, 99) / 1000, 2)})
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fashion")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", default="1,8")
    args = parser.parse_args()
    source = REPO / "models" / args.model
    latest = max(int(p.name) for p in source.iterdir() if p.name.isdigit())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shutil.copytree(source / str(latest), tmp / "models" / args.model / "1",
                        ignore=shutil.ignore_patterns("saved_model", "*.h5"))
        with np.load(REPO / "tests" / "data" / "fashion_fixture.npz") as d:
            buf = io.BytesIO()
            Image.fromarray(d["x_test"][0]).save(buf, format="PNG")
        (tmp / "body.png").write_bytes(buf.getvalue())
        (tmp / "wrk.lua").write_text(WRK_SCRIPT)
        for record in offer_cost(tmp / "models", args.model, tmp):
            print(json.dumps({**record, "model": f"{args.model}/{latest}"}), flush=True)
        settings = {"off": {}, "rate_0.01": {"capture_rate": 0.01}, "rate_1": {"capture_rate": 1.0},
                    # a budget the run overflows many times: the oldest images are dropped as it goes
                    "rate_1_budget_2mb": {"capture_rate": 1.0, "capture_max_mb": 2}}
        for round_ in range(args.rounds):
            for name, extra in settings.items():
                folder = tmp / f"capture-{name}-{round_}"
                options = {"capture_dir": folder, **extra} if extra else {}
                url, proc = start(tmp / "models", tmp / "server.log", **options)
                seen = {"captured": 0, "dropped": 0}
                try:
                    for concurrency in map(int, args.concurrency.split(",")):
                        log(f"round {round_} capture {name} concurrency {concurrency}")
                        result = wrk(url, tmp / "body.png", tmp / "wrk.lua", concurrency, args.seconds)
                        record = {"bench": "capture_overhead", "kind": "service", "model": f"{args.model}/{latest}", "round": round_,
                                  "capture": name, "concurrency": concurrency, "seconds": args.seconds, **result}
                        if extra:
                            time.sleep(1)    # the writer catches up before counting
                            now = captured(url)
                            record.update({k: now[k] - seen[k] for k in now})    # during this run
                            seen = now
                            record["disk_bytes"] = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
                        print(json.dumps(record), flush=True)
                finally:
                    stop(proc)


if __name__ == "__main__":
    main()
