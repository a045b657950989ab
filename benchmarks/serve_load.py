"""The service under load, beside the model's own in-process limit, in one run.

For each backend (tflite, tf) it measures, on 127.0.0.1 only:

1. the in-process ceiling: the same model file, backend and model-thread
   count the service's defaults give a worker, called directly with batch 1
   and with each batch size the service reached;
2. the service with its default settings, for each endpoint (``/predict``
   with a PNG, V2 infer with a JSON UINT8 tensor and with a binary one, v1
   predict with a b64 PNG and with a pixel array) at each concurrency:
   req/s, p50, p99, errors, mean batch, client connections per worker
   (sampled half-way), the workers' CPU time per request (from /proc,
   steadier than latency on a shared machine) and the ratio to the ceilings; plus the same at
   concurrency 1 with batching off (``max_batch_size=1``) for the p50 check;
   and per endpoint the request path's cost at one connection
   (``kind: "overhead"``): the p50 minus the in-process p50 of one
   single-image call of the same model and backend, measured just before
   each of that endpoint's one-connection runs (medians over ``--repeats``);
3. a sustained run at ``--sustain-concurrency`` with a new version
   published (atomic rename) every ``--reload-every`` seconds, one
   ``kill -9`` of a worker half-way, then a SIGTERM to the master under
   load: non-2xx, resets and timeouts per segment, so each event is
   accounted for on its own line.

``--variant NAME:KEY=VALUE,...`` adds a server beside the default one,
with other ``SERVICE_*`` settings, or with ``dir=PATH`` another checkout of
the project (e.g. ``git archive <commit>``): every server is started first
and each sweep point runs on each of them in turn, so old and new are
compared under the same machine load.

The load comes from wrk (Debian package ``wrk``; ``make system-deps``
installs it), which costs far less CPU than a Python client on a small
machine. The model is the committed ``models/<model>/<latest>`` copied
into a temporary repository. Every loop is bounded in count and time.

    python benchmarks/serve_load.py [--seconds 10] [--sustain-seconds 600] > reports/serve_load.jsonl
    python benchmarks/serve_load.py --version 1 --backends tflite --sustain-seconds 0 \
        --variant old:dir=/tmp/old-checkout       # old vs new code, side by side

One JSON object per result on stdout; progress on stderr.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from artifact import metadata as md  # noqa: E402
from artifact.versions import publish as publish_version  # noqa: E402
from service.config import ServiceConfig  # noqa: E402
from service.repository import read_version, scan  # noqa: E402
from training.ablation.records import machine  # noqa: E402
from timing import images_per_s, p50_ms  # noqa: E402  (benchmarks/timing.py)

WRK_SCRIPT = r"""
local f = assert(io.open(os.getenv("WRK_BODY"), "rb")); wrk.body = f:read("*a"); f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("WRK_CTYPE")
local ihcl = os.getenv("WRK_IHCL")
if ihcl and ihcl ~= "" then wrk.headers["Inference-Header-Content-Length"] = ihcl end
function done(s, latency, requests)
  local e = s.errors
  io.write(string.format('WRK_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\n', s.requests, s.duration,
    e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


# The service writes per-request metrics every metrics_flush_s (0.5 s by default) and at a
# scrape, but a scrape flushes only the worker that answers it: wait for the others.
FLUSH_WAIT_S = 0.7


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# Fields every record of this run carries (the model served), set once in main().
RUN_FIELDS: dict = {}


def emit(record: dict) -> None:
    print(json.dumps({"bench": "serve_load", **RUN_FIELDS, **record}), flush=True)


# -- requests ---------------------------------------------------------------

def write_bodies(pixels: np.ndarray, folder: Path) -> dict[str, dict]:
    """One request body per endpoint, all carrying the same 28x28 image."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(buf, format="PNG")
    png = buf.getvalue()
    b64 = base64.b64encode(png).decode()
    v2_json = json.dumps({"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, *pixels.shape],
                                      "data": pixels.ravel().tolist()}]}).encode()
    header = json.dumps({"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, *pixels.shape],
                                     "parameters": {"binary_data_size": pixels.size}}]}).encode()
    bodies = {
        "predict_png": ("/predict", "image/png", png, ""),
        "v2_json": ("/v2/models/{m}/infer", "application/json", v2_json, ""),
        "v2_binary": ("/v2/models/{m}/infer", "application/octet-stream", header + pixels.tobytes(),
                      str(len(header))),
        "v1_b64": ("/v1/models/{m}:predict", "application/json",
                   json.dumps({"instances": [{"b64": b64}]}).encode(), ""),
        "v1_pixels": ("/v1/models/{m}:predict", "application/json",
                      json.dumps({"instances": [pixels.tolist()]}).encode(), ""),
    }
    out = {}
    for name, (path, ctype, body, ihcl) in bodies.items():
        (folder / name).write_bytes(body)
        out[name] = {"path": path, "ctype": ctype, "file": folder / name, "ihcl": ihcl}
    return out


def wrk(url: str, body: dict, concurrency: int, seconds: float, script: Path,
        event=None, at: float = 0.0) -> tuple[dict, dict]:
    """One wrk run; ``event()`` (if given) runs ``at`` seconds in. Returns (result, event's info)."""
    env = dict(os.environ, WRK_BODY=str(body["file"]), WRK_CTYPE=body["ctype"], WRK_IHCL=body["ihcl"])
    cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
           "-s", str(script), url]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    info = {}
    if event is not None:
        time.sleep(at)
        info = event()
    out, _ = proc.communicate(timeout=seconds + 60)
    match = re.search(r"^WRK_JSON (.*)$", out, re.M)
    if match is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    raw = json.loads(match.group(1))
    secs = raw["duration_us"] / 1e6
    return {"requests": raw["requests"], "seconds": round(secs, 2),
            "req_per_s": round(raw["requests"] / secs, 1),
            "p50_ms": round(raw["p50_us"] / 1000, 2), "p99_ms": round(raw["p99_us"] / 1000, 2),
            "non_2xx": raw["status"], "resets": raw["read"] + raw["write"],
            "connect_errors": raw["connect"], "timeouts": raw["timeout"]}, info


# -- the service ------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """gunicorn with the repository's gunicorn.conf.py and the service defaults."""

    def __init__(self, root: Path, backend: str, log_path: Path, checkout: Path = REPO, **settings):
        self.url = f"http://127.0.0.1:{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SERVICE_", "PROMETHEUS_"))}
        env.update(SERVICE_BIND=self.url.removeprefix("http://"), SERVICE_MODEL_ROOT=str(root),
                   SERVICE_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
        env.update({f"SERVICE_{k.upper()}": str(v) for k, v in settings.items()})
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "service:create_app()"],
            cwd=checkout, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        end = time.monotonic() + 300
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {log_path}")
            try:
                if requests.get(self.url + "/v2/health/ready", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"server not ready after 300 s; see {log_path}")

    def workers(self) -> list[int]:
        pid = self.proc.pid
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    @staticmethod
    def connections(worker: int) -> int:
        """The worker's open client connections: its sockets but the listener."""
        fds = Path(f"/proc/{worker}/fd").iterdir()
        return sum(os.readlink(fd).startswith("socket:") for fd in fds) - 1

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the workers have used so far, all threads."""
        total = 0
        for worker in self.workers():
            fields = Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
        return total / os.sysconf("SC_CLK_TCK")

    def connection_spread(self) -> dict:
        """Client connections per worker, most first (how evenly accept() shared them)."""
        return {"connections_per_worker": sorted(map(self.connections, self.workers()), reverse=True)}

    def metric_sums(self, name: str) -> float:
        """Sum of every series of ``name`` over all workers (multiprocess scrape)."""
        text = requests.get(self.url + "/metrics", timeout=10).text
        return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))

    def status_counts(self) -> dict[str, float]:
        text = requests.get(self.url + "/metrics", timeout=10).text
        counts: dict[str, float] = {}
        for status, value in re.findall(r'^service_requests_total{[^}]*status="(\d+)"[^}]*} (\S+)$', text, re.M):
            counts[status] = counts.get(status, 0) + float(value)
        return counts

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# -- in-process ceiling -------------------------------------------------------

class Ceiling:
    """images/s of one direct backend call, per batch size, measured once each."""

    def __init__(self, backend: str, info, threads: int, seconds: float):
        from service.backends import load_backend
        self.model = load_backend(backend, info, threads, "cpu")
        self.shape = info.input.shape
        self.seconds = seconds
        self.rates: dict[int, float] = {}

    def single_latency_ms(self, calls: int = 400) -> float:
        """Median wall time of one single-image call (the request path's baseline)."""
        return p50_ms(self.model, np.zeros((1, *self.shape), np.uint8), calls)

    def rate(self, batch: int) -> float:
        if batch not in self.rates:
            self.rates[batch] = images_per_s(self.model, np.zeros((batch, *self.shape), np.uint8), self.seconds)
        return self.rates[batch]


# -- the runs -----------------------------------------------------------------

def parse_variant(text: str) -> tuple[str, dict]:
    """``NAME:KEY=VALUE,...``: a server with other SERVICE_* settings (``dir=`` another checkout)."""
    name, _, rest = text.partition(":")
    settings = dict(item.split("=", 1) for item in rest.split(",") if item)
    return name, settings


def sweep(args, backend: str, root: Path, model: str, bodies: dict, script: Path, work: Path) -> None:
    cfg = ServiceConfig.load({"backend": backend}, environ={})
    threads = cfg.resolved_model_threads
    info = read_version(root / model, max(scan(root)[model]))
    ceiling = Ceiling(backend, info, threads, args.ceiling_seconds)
    single = ceiling.rate(1)
    emit({"kind": "ceiling", "backend": backend, "model_threads": threads, "batch": 1,
          "images_per_s": round(single, 1), "p50_latency_ms": round(ceiling.single_latency_ms(), 3)})
    # (name, batching, concurrencies, settings); every server runs side by side.
    variants = [("default", "on", args.concurrency, {}), ("default", "off", [1], {"max_batch_size": 1})]
    for text in args.variant:
        name, settings = parse_variant(text)
        variants.append((name, "on" if settings.get("max_batch_size") != "1" else "off",
                         args.concurrency, settings))
    services = []
    try:
        for name, batching, _, settings in variants:
            settings = dict(settings)
            checkout = Path(settings.pop("dir", REPO))
            services.append(Service(root, backend, work / f"{backend}-{name}-{batching}.log", checkout,
                                    poll_interval_s=0, **settings))
        for endpoint, body in bodies.items():
            path = body["path"].format(m=model)
            for service in services:
                wrk(service.url + path, body, 4, 1, script)  # warm-up: connections, caches, first-call paths
            for c in sorted({c for v in variants for c in v[2]}):
                p50s: dict[tuple, list[float]] = {}
                in_process: list[float] = []
                # Repeats rotate over the servers, so a change in the machine's load
                # hits each of them alike.
                for repeat in range(args.repeats):
                    if c == 1:
                        in_process.append(ceiling.single_latency_ms())
                    for (name, batching, concurrencies, _), service in zip(variants, services):
                        if c not in concurrencies:
                            continue
                        result = sweep_point(service, service.url + path, body, c, args, script, ceiling)
                        emit({"kind": "service", "backend": backend, "variant": name, "endpoint": endpoint,
                              "batching": batching, "workers": cfg.workers, "threads": cfg.threads,
                              "model_threads": threads, "concurrency": c, "repeat": repeat, **result})
                        log(f"{backend} {name} {endpoint} batching={batching} c={c}: {result['req_per_s']} "
                            f"req/s p50 {result['p50_ms']} ms, batch {result['mean_batch']}")
                        p50s.setdefault((name, batching), []).append(result["p50_ms"])
                if c == 1:
                    base = float(np.median(in_process))
                    for (name, batching), values in p50s.items():
                        p50 = float(np.median(values))
                        emit({"kind": "overhead", "backend": backend, "variant": name, "endpoint": endpoint,
                              "batching": batching, "repeats": len(values), "p50_ms": round(p50, 3),
                              "in_process_p50_ms": round(base, 3), "overhead_ms": round(p50 - base, 3)})
    finally:
        for service in services:
            service.stop()


def sweep_point(service: Service, url: str, body: dict, c: int, args, script: Path, ceiling: Ceiling) -> dict:
    """One wrk run, with the mean batch it reached and its ratios to the ceilings."""
    time.sleep(FLUSH_WAIT_S)
    sums = (service.metric_sums("service_batch_size_sum"), service.metric_sums("service_batch_size_count"))
    cpu = service.cpu_seconds()
    result, spread = wrk(url, body, c, args.seconds, script, service.connection_spread, args.seconds / 2)
    cpu = service.cpu_seconds() - cpu
    time.sleep(FLUSH_WAIT_S)   # every worker's deferred counts written (after the CPU reading)
    calls = service.metric_sums("service_batch_size_count") - sums[1]
    rows = service.metric_sums("service_batch_size_sum") - sums[0]
    mean_batch = rows / calls if calls else 0.0
    reached = ceiling.rate(max(1, round(mean_batch)))
    # Worker CPU per request: what the request path costs, whatever else runs on the machine.
    return {**result, **spread, "mean_batch": round(mean_batch, 2),
            "worker_cpu_ms_per_request": round(1000 * cpu / max(1, result["requests"]), 3),
            "ratio_to_ceiling_batch1": round(result["req_per_s"] / ceiling.rate(1), 3),
            "ratio_to_ceiling_at_batch": round(result["req_per_s"] / reached, 3)}


def publish(model_dir: Path, source: Path) -> int:
    """A new version the way training publishes (staging copy, then one rename)."""
    def write(staging: Path) -> md.Metadata:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        return md.read(staging)
    return int(publish_version(model_dir.parent, model_dir.name, write).name)


async def sigterm_under_load(service: Service, body: dict, path: str, c: int, seconds: float) -> dict:
    """``c`` keep-alive clients (a raw HTTP/1.1 client, so that every outcome is
    told apart), SIGTERM to the master half-way. ``lost``: a request written
    on an open connection that got no response (reset or closed) - what
    "SIGTERM loses no accepted request" counts; ``refused``: a connect after
    the listener closed, which reached no server and ends that client."""
    host, port = service.url.removeprefix("http://").split(":")
    headers = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Type: {body['ctype']}",
               f"Content-Length: {body['file'].stat().st_size}"]
    if body["ihcl"]:
        headers.append(f"Inference-Header-Content-Length: {body['ihcl']}")
    request = ("\r\n".join(headers) + "\r\n\r\n").encode() + body["file"].read_bytes()
    counts = {"ok": 0, "non_2xx": 0, "lost": 0, "refused": 0, "ok_after_sigterm": 0}
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds
    sent = asyncio.Event()

    async def client():
        reader = writer = None
        while time.monotonic() < stop_at:
            if writer is None:
                try:
                    reader, writer = await asyncio.open_connection(host, int(port))
                except OSError:
                    counts["refused"] += 1
                    if sent.is_set():
                        return
                    await asyncio.sleep(0.05)
                    continue
            started = time.monotonic()
            try:
                writer.write(request)
                await writer.drain()
                head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)).decode("latin-1")
                fields = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if ": " in line)
                fields = {k.lower(): v for k, v in fields.items()}
                await reader.readexactly(int(fields.get("content-length", 0)))
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
                counts["lost"] += 1
                writer.close()
                writer = None
                continue
            latencies.append(time.monotonic() - started)
            status = int(head.split(" ", 2)[1])
            counts["ok" if 200 <= status < 300 else "non_2xx"] += 1
            if sent.is_set() and 200 <= status < 300:
                counts["ok_after_sigterm"] += 1
            if fields.get("connection", "").lower() == "close":
                writer.close()
                writer = None
        if writer is not None:
            writer.close()

    async def terminate():
        await asyncio.sleep(seconds / 2)
        service.proc.send_signal(signal.SIGTERM)
        sent.set()
        started = time.monotonic()
        code = await asyncio.get_running_loop().run_in_executor(None, service.proc.wait, 60)
        return code, round(time.monotonic() - started, 2)

    stopper = asyncio.create_task(terminate())
    await asyncio.gather(*(client() for _ in range(c)))
    code, exit_s = await stopper
    p50, p99 = (np.percentile(latencies, [50, 99]) * 1000).round(2) if latencies else (0.0, 0.0)
    return {"seconds": seconds, "sigterm_at_s": seconds / 2, "exit_code": code, "exit_seconds": exit_s,
            **counts, "p50_ms": float(p50), "p99_ms": float(p99)}


def sustain(args, backend: str, root: Path, model: str, bodies: dict, script: Path, work: Path) -> None:
    model_dir = root / model
    source = model_dir / str(max(scan(root)[model]))
    service = Service(root, backend, work / f"{backend}-sustain.log", poll_interval_s=args.poll_interval)
    body = bodies["v2_binary"]
    url = service.url + body["path"].format(m=model)
    c = args.sustain_concurrency
    segments = max(1, round(args.sustain_seconds / args.reload_every))
    kill_at = segments // 2
    totals = {"requests": 0, "non_2xx": 0, "resets": 0, "connect_errors": 0, "timeouts": 0}
    try:
        for i in range(segments):
            def event(i=i):
                info = {"published_version": publish(model_dir, source)}
                if i == kill_at:
                    victim = service.workers()[0]
                    connections = service.connections(victim)
                    os.kill(victim, signal.SIGKILL)
                    info.update(killed_worker=victim, killed_worker_connections=connections)
                return info
            result, info = wrk(url, body, c, args.reload_every, script, event, args.reload_every / 2)
            for key in totals:
                totals[key] += result[key]
            served = requests.get(service.url + f"/v2/models/{model}", timeout=10).json()["versions"]
            emit({"kind": "sustain_segment", "backend": backend, "segment": i, "concurrency": c,
                  "seconds": args.reload_every, **info, "serving_versions": served, **result})
            log(f"{backend} sustain {i + 1}/{segments}: {result['req_per_s']} req/s, "
                f"non-2xx {result['non_2xx']}, resets {result['resets']} {info}")
        time.sleep(FLUSH_WAIT_S)
        counted = service.status_counts()
        result = asyncio.run(sigterm_under_load(service, body, body["path"].format(m=model), c, 10.0))
        emit({"kind": "sustain_sigterm", "backend": backend, "concurrency": c, **result})
        log(f"{backend} SIGTERM under load: {result}")
        emit({"kind": "sustain_total", "backend": backend, "concurrency": c,
              "seconds": segments * args.reload_every, "reloads": segments, "kill_9": 1, **totals,
              "server_counted_by_status": counted})
    finally:
        service.stop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-root", type=Path, default=REPO / "models")
    p.add_argument("--model", default="fashion")
    p.add_argument("--version", type=int, default=None, help="the model version served (default: the latest)")
    p.add_argument("--endpoints", default=None, help="comma-separated subset of the endpoints")
    p.add_argument("--variant", action="append", default=[],
                   help="NAME:KEY=VALUE,... another server beside the default one (dir=PATH: another checkout)")
    p.add_argument("--backends", default="tflite,tf")
    p.add_argument("--concurrency", default="1,8,32,64")
    p.add_argument("--seconds", type=float, default=10.0, help="per sweep point")
    p.add_argument("--repeats", type=int, default=1,
                   help="runs of each sweep point per server (the overhead lines take their medians)")
    p.add_argument("--ceiling-seconds", type=float, default=3.0)
    p.add_argument("--sustain-seconds", type=float, default=600.0)
    p.add_argument("--sustain-concurrency", type=int, default=16)
    p.add_argument("--reload-every", type=float, default=60.0)
    p.add_argument("--poll-interval", type=float, default=2.0, help="server's repository scan period")
    p.add_argument("--skip-sweep", action="store_true")
    args = p.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    if shutil.which("wrk") is None:
        print("serve_load: wrk not found; install it with `apt-get install wrk` (make system-deps)",
              file=sys.stderr)
        return 2
    versions = scan(args.model_root).get(args.model)
    if not versions:
        print(f"serve_load: no version of {args.model!r} under {args.model_root}", file=sys.stderr)
        return 2
    version = versions[-1] if args.version is None else args.version
    if version not in versions:
        print(f"serve_load: {args.model!r} has no version {version}", file=sys.stderr)
        return 2
    RUN_FIELDS["model"] = f"{args.model}/{version}"
    RUN_FIELDS["machine"] = machine()   # CPU model and cores: request-path costs differ by CPU
    work = Path(tempfile.mkdtemp(prefix="serve-load-"))
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT)
    with np.load(REPO / "tests" / "data" / "fashion_fixture.npz") as data:
        pixels = data["x_test"][0][:, :, None]
    bodies = write_bodies(pixels, work)
    swept = {name: bodies[name] for name in args.endpoints.split(",")} if args.endpoints else bodies
    log(f"serve_load: cores {os.cpu_count()}, logs in {work}")
    for backend in args.backends.split(","):
        root = work / f"repo-{backend}"
        shutil.copytree(args.model_root / args.model / str(version), root / args.model / "1")
        if not args.skip_sweep:
            sweep(args, backend, root, args.model, swept, script, work)
        if args.sustain_seconds > 0:
            sustain(args, backend, root, args.model, bodies, script, work)
        shutil.rmtree(root)
    shutil.rmtree(work)  # kept, with the server logs, when a run fails
    return 0


if __name__ == "__main__":
    sys.exit(main())
