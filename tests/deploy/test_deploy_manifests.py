"""deploy/k8s: every manifest validates offline against the Kubernetes schemas
(kubernetes-validate, strict: unknown fields are errors), probes point at routes
the service really has, and the names that tie the files together resolve. The
multi-worker retrain's container script is run for each completion index to check
the TF_CONFIG it builds."""
import json
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from werkzeug.exceptions import MethodNotAllowed, NotFound

from service import create_app

ROOT = Path(__file__).resolve().parents[2]   # tests/deploy/ -> the repository
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.31.0"   # a release kubernetes-validate ships schemas for
CRDS = {("serving.kserve.io/v1beta1", "InferenceService"),   # no schema shipped: checked by hand below
        ("kubeflow.org/v1", "TFJob")}


def _documents():
    return [(path.name, doc) for path in sorted(K8S.glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in yaml.safe_load_all(path.read_text()) if doc]


DOCS = _documents()
WORKLOADS = [(name, doc) for name, doc in DOCS if doc["kind"] in ("Deployment", "Job", "CronJob", "InferenceService")]


def _name(doc):
    """A one-off Job has a generateName (kubectl create gives each run its own name)."""
    return doc["metadata"].get("name") or doc["metadata"]["generateName"]


def _of_kind(kind):
    return [doc for _, doc in DOCS if doc["kind"] == kind]


def _pod_spec(doc):
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    if doc["kind"] == "InferenceService":
        return spec["predictor"]
    return spec["template"]["spec"]


def _probes():
    for name, doc in WORKLOADS:
        for container in _pod_spec(doc)["containers"]:
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                if kind in container:
                    yield f"{name}:{container['name']}:{kind}", container, container[kind]


@pytest.mark.parametrize("name,doc", [(n, d) for n, d in DOCS if (d["apiVersion"], d["kind"]) not in CRDS],
                         ids=lambda v: v if isinstance(v, str) else _name(v))
def test_manifest_validates_against_the_kubernetes_schema(name, doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_validator_rejects_a_misspelled_field_and_a_wrong_type():
    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    pod["container"] = pod.pop("containers")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    deployment = yaml.safe_load((K8S / "deployment.yaml").read_text())
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_only_the_custom_resources_lack_a_schema():
    for _, doc in DOCS:
        if (doc["apiVersion"], doc["kind"]) in CRDS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_probe_is_a_get_route_of_the_service_on_a_declared_port(tmp_path):
    urls = create_app({"model_root": str(tmp_path), "poll_interval_s": 0}).url_map.bind("localhost")
    probes = list(_probes())
    assert {p["httpGet"]["path"] for _, _, p in probes} >= {"/v2/health/live", "/v2/health/ready"}
    for where, container, probe in probes:
        path, port = probe["httpGet"]["path"], probe["httpGet"]["port"]
        try:
            urls.match(path, method="GET")
        except (NotFound, MethodNotAllowed):
            pytest.fail(f"{where}: GET {path} is not a route of the service")
        ports = {p["containerPort"] for p in container["ports"]} | {p.get("name") for p in container["ports"]}
        assert port in ports, f"{where}: probe port {port!r} is not a container port"


def test_readiness_uses_ready_and_liveness_uses_live():
    for where, _, probe in _probes():
        expected = "/v2/health/ready" if where.endswith("readinessProbe") else "/v2/health/live"
        assert probe["httpGet"]["path"] == expected, where


def _graceful_timeout() -> float:
    # In a child process: the config file may set process-wide state (environment, temp dirs).
    out = subprocess.run([sys.executable, "-c", "import runpy; print(runpy.run_path('gunicorn.conf.py')"
                          "['graceful_timeout'])"], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def test_termination_grace_outlasts_the_prestop_pause_plus_gunicorn_graceful_timeout():
    graceful = _graceful_timeout()
    for doc in _of_kind("Deployment"):
        pod = _pod_spec(doc)
        pause = 0
        for container in pod["containers"]:
            command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
            assert command[:1] == ["sleep"], f"{doc['metadata']['name']}: no preStop pause"
            pause = max(pause, float(command[1]))
        assert pod["terminationGracePeriodSeconds"] > graceful + pause, doc["metadata"]["name"]


def test_pods_run_as_non_root_with_the_image_uid():
    for _, doc in WORKLOADS:
        if doc["kind"] != "InferenceService":   # KServe's pod template runs the image's own user
            context = _pod_spec(doc)["securityContext"]
            assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001, _name(doc)


def test_names_that_tie_the_manifests_together_resolve():
    deployments = {d["metadata"]["name"]: d for d in _of_kind("Deployment")}
    claims = {d["metadata"]["name"] for d in _of_kind("PersistentVolumeClaim")}
    for _, doc in WORKLOADS:
        for volume in _pod_spec(doc).get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, _name(doc)

    def selects(selector, deployment):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        return all(labels.get(k) == v for k, v in selector.items())

    for service in _of_kind("Service"):
        if service["spec"].get("clusterIP") == "None":
            continue    # headless: the multi-worker Job's pod names, checked in its own test
        chosen = [d for d in deployments.values() if selects(service["spec"]["selector"], d)]
        assert chosen, f"Service {service['metadata']['name']} selects no Deployment"
        for port in service["spec"]["ports"]:
            for d in chosen:
                names = {p.get("name") for c in _pod_spec(d)["containers"] for p in c["ports"]}
                assert port["targetPort"] in names, (service["metadata"]["name"], d["metadata"]["name"])
    for pdb in _of_kind("PodDisruptionBudget"):
        assert any(selects(pdb["spec"]["selector"]["matchLabels"], d) for d in deployments.values())
    for hpa in _of_kind("HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] in deployments
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert all((K8S / name).is_file() for name in kustomization["resources"])


def test_gpu_variant_requests_a_gpu_and_serves_with_tensorflow():
    gpu = [d for d in _of_kind("Deployment")
           if any("nvidia.com/gpu" in c["resources"].get("limits", {}) for c in _pod_spec(d)["containers"])]
    assert gpu, "no Deployment requests nvidia.com/gpu"
    for doc in gpu:
        container = _pod_spec(doc)["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["SERVICE_BACKEND"] == "tf" and "cnn-full" in container["image"]


def test_retraining_cronjob_runs_the_retrain_command_one_at_a_time():
    (cron,) = _of_kind("CronJob")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    container = _pod_spec(cron)["containers"][0]
    assert container["command"][:4] == ["python", "-m", "training", "retrain"] and "cnn-full" in container["image"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/app/models" in mounts    # the working directory's models/: where retrain publishes


def test_kserve_inferenceservice_is_a_v2_custom_predictor_on_the_serve_image():
    (isvc,) = _of_kind("InferenceService")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    (container,) = isvc["spec"]["predictor"]["containers"]
    assert container["name"] == "kserve-container" and "cnn-serve" in container["image"]
    assert [p["containerPort"] for p in container["ports"]] == [8080]


def test_label_job_runs_a_label_command_the_cli_accepts_on_the_retrain_jobs_volume():
    from training.cli.main import build_parser
    (job,) = [doc for doc in _of_kind("Job") if _name(doc).startswith("cnn-label-")]
    assert "generateName" in job["metadata"] and job["spec"]["backoffLimit"] == 0   # a refusal is not retried
    container = _pod_spec(job)["containers"][0]
    assert container["command"] == ["python", "-m", "training", "label"] and "cnn-full" in container["image"]
    args = build_parser().parse_args(container["command"][3:] + container["args"])
    assert args.name == "fashion" and args.list and args.wait > 0
    (cron,) = _of_kind("CronJob")

    def models_claim(doc):
        pod = _pod_spec(doc)
        mounted = {m["name"] for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/app/models"}
        return {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if v["name"] in mounted}

    assert models_claim(job) == models_claim(cron) == {"cnn-models"}


def _claim_at(doc_or_pod, path):
    """The claims mounted at ``path`` in the first container of a workload (or a pod spec)."""
    pod = doc_or_pod if "containers" in doc_or_pod else _pod_spec(doc_or_pod)
    mounted = {m["name"] for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == path}
    return {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if v["name"] in mounted}


def _indexed_job():
    (job,) = [doc for doc in _of_kind("Job") if doc["spec"].get("completionMode") == "Indexed"]
    (service,) = [doc for doc in _of_kind("Service") if doc["spec"].get("clusterIP") == "None"]
    return job, service


def test_multi_worker_retrain_is_an_indexed_job_whose_pods_find_each_other_through_a_headless_service():
    job, service = _indexed_job()
    spec, pod = job["spec"], _pod_spec(job)
    container = pod["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    workers = spec["completions"]
    assert workers >= 2 and spec["parallelism"] == workers and int(env["WORKERS"]) == workers
    assert pod["subdomain"] == service["metadata"]["name"] == env["WORKER_SERVICE"]
    assert env["JOB_NAME"] == job["metadata"]["name"]          # Kubernetes names the pods <job>-<index>
    labels = spec["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in service["spec"]["selector"].items())
    port = int(env["WORKER_PORT"])
    assert port in {p["containerPort"] for p in container["ports"]} and port in {p["port"] for p in service["spec"]["ports"]}
    assert spec["backoffLimit"] == 0 and "cnn-full" in container["image"]
    (cron,) = _of_kind("CronJob")
    assert _claim_at(job, "/app/models") == _claim_at(cron, "/app/models") == {"cnn-models"}
    (data_claim,) = [d for d in _of_kind("PersistentVolumeClaim") if d["metadata"]["name"] in _claim_at(job, "/data")]
    assert "ReadWriteMany" in data_claim["spec"]["accessModes"]   # pods on several nodes read it at once


def _run_worker_script(container, env, index, tmp_path):
    """The container's command for completion ``index``, with a ``python`` on the PATH that
    prints the TF_CONFIG it was started with and its arguments instead of training."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    python = fake / "python"
    python.write_text('#!/bin/sh\nprintf "%s\\n" "$TF_CONFIG" "$@"\n')
    python.chmod(0o755)
    run = subprocess.run(container["command"] + container.get("args", []), capture_output=True, text=True,
                         env={**env, "JOB_COMPLETION_INDEX": str(index), "PATH": f"{fake}:/usr/bin:/bin"},
                         check=True, timeout=30)
    tf_config, *argv = run.stdout.splitlines()
    return json.loads(tf_config), argv


def test_each_worker_builds_its_tf_config_from_its_completion_index_and_runs_retrain_multi_worker(tmp_path):
    from training.cli.main import build_parser
    job, service = _indexed_job()
    container = _pod_spec(job)["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    workers, port = job["spec"]["completions"], env["WORKER_PORT"]
    hosts = [f"{job['metadata']['name']}-{i}.{service['metadata']['name']}:{port}" for i in range(workers)]
    for index in range(workers):
        tf_config, argv = _run_worker_script(container, env, index, tmp_path)
        # the same cluster everywhere, the pod's own index as its task; no "chief" entry: worker 0 is the chief
        assert tf_config == {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        assert argv[:2] == ["-m", "training"]
        args = build_parser().parse_args(argv[2:])
        assert (args.command, args.strategy, args.name) == ("retrain", "multi_worker", "fashion")


def test_the_tfjob_alternative_runs_the_same_retrain_on_worker_replicas():
    (tfjob,) = [doc for _, doc in DOCS if doc["kind"] == "TFJob"]
    assert tfjob["apiVersion"] == "kubeflow.org/v1" and tfjob["spec"]["runPolicy"]["backoffLimit"] == 0
    replicas = tfjob["spec"]["tfReplicaSpecs"]
    assert set(replicas) == {"Worker"} and replicas["Worker"]["replicas"] >= 2   # no Chief: worker 0 publishes
    template = replicas["Worker"]["template"]
    # the pod template is a core object: validated against its schema like the other manifests
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "worker"},
                                  "template": template}, K8S_VERSION, strict=True)
    (container,) = template["spec"]["containers"]
    assert container["name"] == "tensorflow"      # where the training operator looks for the port
    job, _ = _indexed_job()
    indexed = _pod_spec(job)["containers"][0]
    env = {e["name"]: e["value"] for e in indexed["env"]}
    assert container["command"][0] == "python" and container["image"] == indexed["image"]
    script = indexed["command"][2]
    assert script.rstrip().splitlines()[-1].split() == ["exec", *container["command"], '"$@"']
    assert _claim_at(template["spec"], "/app/models") == {"cnn-models"}
    assert template["spec"]["securityContext"]["runAsUser"] == 10001 and int(env["WORKERS"]) >= 2
