"""tf.distribute: two multi-worker processes on loopback (train, and retrain as the Kubernetes
multi-worker Job runs it) end in step, and only the chief publishes."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from artifact import metadata as md
from artifact.versions import versions
from support.builders import ROOT
from support.service import free_port


def run_two_workers(command: list) -> list:
    """``command`` as worker 0 and worker 1 of a two-process TF_CONFIG cluster on loopback;
    each one's last stdout line as JSON, once both exit 0."""
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        workers.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True))
    outputs = []
    for proc in workers:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    return outputs


def test_two_multi_worker_processes_end_with_identical_weights_and_only_the_chief_publishes(tmp_path):
    command = [sys.executable, "-m", "training", "train", "--preset", "tiny", "--strategy", "multi_worker",
               "--publish", "--set", "train.epochs=1", "--set", "train.verbose=0", "--set", "train.batch_size=32",
               "--set", "model.head_pool=flatten", "--set", "augment.enabled=false",   # passes the publish check
               "--set", f"output_dir={tmp_path / 'runs'}", "--set", f"models_dir={tmp_path / 'models'}"]
    outputs = run_two_workers(command)
    chief, other = (o["distribution"] for o in outputs)
    assert (chief["task"], chief["chief"], other["task"], other["chief"]) == ("worker/0", True, "worker/1", False)
    assert chief["replicas"] == 2 and chief["global_batch"] == 2 * chief["per_replica_batch"]
    assert chief["weights_sha256"] == other["weights_sha256"]          # all-reduced: the same model
    assert outputs[0]["published"] and outputs[1]["published"] is None
    assert versions(tmp_path / "models", "tiny") == [1]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["tiny"]   # the other wrote to a temp dir

    # The published weights are the weights both workers ended with.
    from training.models.published import load_keras_model
    from training.fit.distribute import weights_digest
    version = tmp_path / "models" / "tiny" / "1"
    model, _ = load_keras_model(version)
    assert weights_digest(model.get_weights()) == chief["weights_sha256"]
    assert md.read(version).extra["training"]["distribution"]["replicas"] == 2


def test_mirrored_strategy_trains_on_the_local_devices(tiny_config, fixture_data):
    from training.fit.distribute import make
    from training.fit.train import train
    result = train(tiny_config("train.epochs=1", "data.limit=300"), data=fixture_data, dist=make("mirrored"))
    assert result.distribution["strategy"] == "mirrored" and result.distribution["replicas"] >= 1
    assert result.model is not None and 0.0 <= result.test_accuracy <= 1.0
    assert np.isfinite(result.history["loss"][0])


def test_multi_worker_without_tf_config_is_a_one_line_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    run = subprocess.run([sys.executable, "-m", "training", "train", "--preset", "tiny", "--strategy", "multi_worker",
                          "--set", f"output_dir={tmp_path}"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2 and run.stderr.strip().splitlines()[-1].startswith("error: --strategy multi_worker")
    assert "Traceback" not in run.stderr


@pytest.mark.slow
def test_retrain_as_two_multi_worker_processes_publishes_once_from_the_chief_with_the_weights_both_ended_with(tmp_path):
    """The command the Kubernetes Indexed Job (deploy/k8s/retrain-multiworker.yaml) runs in each pod."""
    common = ["--set", "train.verbose=0", "--set", f"output_dir={tmp_path / 'runs'}"]
    first = subprocess.run([sys.executable, "-m", "training", "train", "--preset", "tiny", "--publish",
                            "--set", "train.epochs=1", "--set", "train.batch_size=32", "--set", "model.head_pool=flatten",
                            "--set", "augment.enabled=false", "--set", f"models_dir={tmp_path / 'models'}", *common],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    # the gate is opened wide: what is checked here is who publishes and what, not whether it is better
    command = [sys.executable, "-m", "training", "retrain", "--name", "tiny", "--models-dir", str(tmp_path / "models"),
               "--strategy", "multi_worker", "--tolerance", "1", "--set", "retrain.ece_tolerance=1",
               "--set", "retrain.epochs=1", *common]
    chief, other = run_two_workers(command)
    assert (chief["distribution"]["task"], chief["distribution"]["chief"]) == ("worker/0", True)
    assert (other["distribution"]["task"], other["distribution"]["chief"]) == ("worker/1", False)
    assert chief["distribution"]["replicas"] == 2
    assert chief["distribution"]["weights_sha256"] == other["distribution"]["weights_sha256"]
    assert chief["decision"] == "publish" and chief["published_version"] == 2 and other["published_version"] is None
    assert "decision" not in other                          # the other worker judged and published nothing
    assert versions(tmp_path / "models", "tiny") == [1, 2]

    from training.models.published import load_keras_model
    from training.fit.distribute import weights_digest
    version = tmp_path / "models" / "tiny" / "2"
    model, _ = load_keras_model(version)
    assert weights_digest(model.get_weights()) == chief["distribution"]["weights_sha256"]
    recorded = md.read(version)
    assert recorded.extra["training"]["distribution"]["replicas"] == 2 and recorded.parent["version"] == 1
