"""service.config: defaults < SERVICE_* environment < the dict given to create_app."""
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
])
def test_bad_settings_are_errors(overrides, error):
    with pytest.raises(error):
        ServiceConfig.load(overrides, environ={})


def test_unparsable_environment_value_names_the_variable():
    with pytest.raises(ValueError, match="SERVICE_MAX_ITEMS"):
        ServiceConfig.load(environ={"SERVICE_MAX_ITEMS": "many"})


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
