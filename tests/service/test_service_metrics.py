"""Deferred per-request metrics (service/metrics.py): a flush writes what each update
would have written at once, and a scrape is never behind its own worker."""
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from service.config import ServiceConfig
from service.metrics import Metrics
from support.builders import ROOT

UPDATES = textwrap.dedent("""
    import os, sys, tempfile
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp()
    import numpy as np
    from service.metrics import Metrics
    m = Metrics(float(sys.argv[1]))
    vm = m.version("fashion", 1, "tflite", "CPU:0")
    rng = np.random.default_rng(0)
    for i in range(300):
        vm.depth(i % 3)
        vm.ran(1 + i % 20, float(rng.random() * 0.02), [float(x) for x in rng.random(2) * 0.01])
        vm.answered(rng.random((2, 10)).astype(np.float32))
        vm.not_sure(i % 2)
        vm.unfamiliar(1)
        m.request("fashion", "1", "/r", "POST", 200 + (i % 2) * 200, float(rng.random() * 0.01))
        m.request("fashion", "1", "/r", "POST", 200, 0.001)   # on a bucket's bound
    print(m.render().decode())
""")


def _scrape(flush_s: float) -> list[str]:
    out = subprocess.run([sys.executable, "-c", UPDATES, str(flush_s)], cwd=ROOT, check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    return sorted(line for line in out.splitlines() if line and not line.startswith("#"))


def test_a_flush_writes_what_each_update_would_have_written():
    """Multiprocess mode (as under gunicorn): the summed flush (0.5 s, flushed by the scrape)
    against each update written at once (0), with the installed prometheus_client."""
    deferred, direct = _scrape(0.5), _scrape(0)
    assert deferred == direct
    assert any(line.startswith("service_request_duration_seconds_bucket") for line in deferred)


def _value(m: Metrics, name: str, **labels) -> float:
    return m.registry.get_sample_value(name, labels) or 0.0


def test_updates_wait_for_the_flush_and_a_scrape_flushes():
    m = Metrics(60.0)
    m.request("fashion", "1", "/predict", "POST", 200, 0.002)
    assert _value(m, "service_requests_total", model="fashion", version="1", endpoint="/predict",
                  method="POST", status="200") == 0                          # not yet written
    assert b'status="200",version="1"} 1.0' in m.render()                    # a scrape flushes first
    assert _value(m, "service_request_duration_seconds_bucket", model="fashion", version="1",
                  endpoint="/predict", le="0.0025") == 1


def test_the_background_flush_runs_every_interval():
    m = Metrics(0.05)
    vm = m.version("fashion", 1, "tflite", "CPU:0")
    vm.depth(3)
    vm.ran(4, 0.01, [0.001] * 4)
    vm.answered(np.array([[0.1, 0.9], [0.6, 0.4]], np.float32))
    end = time.monotonic() + 5
    while _value(m, "service_batch_size_count", model="fashion", version="1", backend="tflite",
                 device="CPU:0") == 0 and time.monotonic() < end:
        time.sleep(0.01)
    labels = {"model": "fashion", "version": "1"}
    assert _value(m, "service_queue_depth", **labels) == 3
    assert _value(m, "service_queue_seconds_count", **labels, backend="tflite", device="CPU:0") == 4
    assert _value(m, "service_prediction_confidence_count", **labels) == 2
    assert _value(m, "service_prediction_confidence_sum", **labels) == pytest.approx(1.5)


def test_the_flush_interval_is_a_setting():
    assert ServiceConfig().metrics_flush_s == 0.5
    assert ServiceConfig.load(environ={"SERVICE_METRICS_FLUSH_S": "0"}).metrics_flush_s == 0.0
    with pytest.raises(ValueError, match="metrics_flush_s"):
        ServiceConfig(metrics_flush_s=-1)
