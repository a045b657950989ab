"""service.config: defaults < SERVICE_* environment < the dict given to create_app."""
import ast
import os
import runpy

import pytest

from service import create_app
from service.config import ServiceConfig
from support.builders import ROOT


def test_environment_overrides_defaults_and_dict_overrides_environment():
    env = {"SERVICE_MAX_BATCH_SIZE": "4", "SERVICE_WARMUP": "false", "SERVICE_VERSIONS": "1, 3",
           "SERVICE_MAX_BATCH_DELAY_MS": "2.5", "SERVICE_BACKEND": "tflite"}
    cfg = ServiceConfig.load({"backend": "tf"}, environ=env)
    assert cfg.max_batch_size == 4 and cfg.warmup is False and cfg.versions == [1, 3]
    assert cfg.max_batch_delay_ms == 2.5
    assert cfg.backend == "tf"
    assert ServiceConfig.load(environ={}).max_batch_size == ServiceConfig().max_batch_size


@pytest.mark.parametrize("overrides, error", [
    ({"no_such_key": 1}, KeyError),
    ({"backend": "onnx"}, ValueError),
    ({"version_policy": "specific"}, ValueError),   # needs versions
    ({"max_batch_size": 0}, ValueError),
    ({"graceful_timeout_s": 0}, ValueError),
    ({"warmup_timeout_s": 0}, ValueError),
    ({"accept_defer_max_s": -1}, ValueError),
])
def test_bad_settings_are_errors(overrides, error):
    with pytest.raises(error):
        ServiceConfig.load(overrides, environ={})


def test_unparsable_environment_value_names_the_variable():
    with pytest.raises(ValueError, match="SERVICE_MAX_ITEMS"):
        ServiceConfig.load(environ={"SERVICE_MAX_ITEMS": "many"})


def test_bind_is_service_bind_else_port_else_the_default():
    assert ServiceConfig.load(environ={}).bind == "0.0.0.0:8080"
    assert ServiceConfig.load(environ={"PORT": "9090"}).bind == "0.0.0.0:9090"
    assert ServiceConfig.load(environ={"PORT": "9090", "SERVICE_BIND": "127.0.0.1:7"}).bind == "127.0.0.1:7"
    assert ServiceConfig.load({"bind": "127.0.0.1:8"}, environ={"PORT": "9090"}).bind == "127.0.0.1:8"
    with pytest.raises(ValueError, match="PORT"):
        ServiceConfig.load(environ={"PORT": "eighty"})


def _gunicorn_settings(monkeypatch, env: dict) -> dict:
    """gunicorn.conf.py as gunicorn reads it, in a fresh namespace, under ``env``."""
    for name in [n for n in os.environ if n.startswith("SERVICE_") or n == "PORT"]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/nonexistent-not-made")   # no temporary dir made
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_gunicorn_takes_every_value_from_service_config(monkeypatch):
    conf = _gunicorn_settings(monkeypatch, {
        "PORT": "9191", "SERVICE_WORKERS": "3", "SERVICE_THREADS": "5", "SERVICE_WORKER_TIMEOUT_S": "61",
        "SERVICE_GRACEFUL_TIMEOUT_S": "7", "SERVICE_KEEPALIVE_S": "2"})
    assert (conf["bind"], conf["workers"], conf["threads"]) == ("0.0.0.0:9191", 3, 5)
    assert (conf["timeout"], conf["graceful_timeout"], conf["keepalive"]) == (61, 7, 2)
    defaults = ServiceConfig()
    conf = _gunicorn_settings(monkeypatch, {})
    assert (conf["timeout"], conf["graceful_timeout"], conf["keepalive"]) == (
        defaults.worker_timeout_s, defaults.graceful_timeout_s, defaults.keepalive_s)
    assert conf["bind"] == defaults.bind
    # The start hook gunicorn finds by its name.
    from service.worker import post_worker_init
    assert conf["post_worker_init"] is post_worker_init


def _environment_reads(path) -> set:
    """Variables a module reads with os.environ[...], os.environ.get(...) or os.getenv(...);
    any other use of the environment counts as "*" (it could read anything)."""
    names, uses, reads = set(), 0, 0
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
            uses += 1
        key = None
        if isinstance(node, ast.Subscript) and getattr(node.value, "attr", "") == "environ":
            key = node.slice
        elif isinstance(node, ast.Call) and node.args and isinstance(node.func, ast.Attribute) and (
                node.func.attr == "getenv" or (node.func.attr == "get" and getattr(node.func.value, "attr", "") == "environ")):
            key = node.args[0]
        if key is not None:
            reads += 1
            names.add(key.value if isinstance(key, ast.Constant) else "*")
    return names | ({"*"} if uses > reads else set())


def test_no_service_module_reads_the_environment_besides_config():
    """Settings come from ServiceConfig; the two variables read elsewhere belong to
    libraries (prometheus_client's directory, CUDA's device list)."""
    allowed = {"service/metrics.py": {"PROMETHEUS_MULTIPROC_DIR"}, "service/backends.py": {"CUDA_VISIBLE_DEVICES"}}
    for path in sorted((ROOT / "service").glob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel != "service/config.py":
            assert _environment_reads(path) == allowed.get(rel, set()), rel


def test_model_threads_share_the_cores_between_workers(monkeypatch):
    monkeypatch.setattr("service.config.cpu_count", lambda: 16)
    assert ServiceConfig(workers=4).resolved_model_threads == 4
    assert ServiceConfig(workers=32).resolved_model_threads == 1
    assert ServiceConfig(workers=4, model_threads=3).resolved_model_threads == 3


def test_create_app_is_light_and_configures_flask(monkeypatch, tmp_path):
    import subprocess
    import sys
    # In a fresh interpreter: building the app imports neither TensorFlow nor LiteRT.
    code = ("import sys, service; app = service.create_app({'model_root': '/nonexistent'});"
            "print(app.config['MAX_CONTENT_LENGTH'], 'tensorflow' in sys.modules, 'ai_edge_litert' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"SERVICE_MAX_CONTENT_LENGTH": "1234", "PATH": "/usr/bin"},
                         cwd=str(ROOT))
    assert out.stdout.split() == ["1234", "False", "False"]
    monkeypatch.setenv("SERVICE_ADMIN_TOKEN", "from-env")
    app = create_app({"model_root": str(tmp_path), "poll_interval_s": 0})
    assert app.extensions["service_config"].admin_token == "from-env"


def test_defaults_fit_the_machine(monkeypatch):
    monkeypatch.setattr("service.config.cpu_count", lambda: 2)
    monkeypatch.setattr("service.backends.gpu_visible", lambda: False)
    cfg = ServiceConfig.load(environ={})
    assert (cfg.workers, cfg.resolved_model_threads) == (2, 1)      # 2 cores: 2 workers x 1 thread
    assert cfg.threads == 2 * cfg.max_batch_size and cfg.max_batch_delay_ms == 0
    assert cfg.max_items > cfg.max_batch_size
    assert ServiceConfig.load({"max_batch_size": 4}, environ={}).threads == 8
    monkeypatch.setattr("service.config.cpu_count", lambda: 64)
    assert ServiceConfig.load(environ={}).workers == 8                # capped: TF workers are heavy
    monkeypatch.setattr("service.backends.gpu_visible", lambda: True)
    assert ServiceConfig.load(environ={}).workers == 1                # one process batches for the GPU
    assert ServiceConfig.load({"backend": "tflite"}, environ={}).workers == 8


@pytest.mark.parametrize("text, limit", [("200000 100000\n", 2), ("150000 100000", 2), ("max 100000", None),
                                         ("50000 100000", 1), ("garbage", None)])
def test_cgroup_cpu_quota_caps_the_core_count(tmp_path, text, limit):
    from service.config import cgroup_cpu_limit
    path = tmp_path / "cpu.max"
    path.write_text(text)
    assert cgroup_cpu_limit(str(path)) == limit
    assert cgroup_cpu_limit(str(tmp_path / "absent")) is None
