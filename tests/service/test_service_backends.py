"""Both runtimes, every TFLite flavour the training side may publish, same answers."""
import shutil
import threading

import numpy as np
import pytest
import requests

from service import backends, repository
from support.service import build_artifact, fashion_data, reference_top1


@pytest.fixture(scope="module")
def variants(tmp_path_factory, artifact):
    root = tmp_path_factory.mktemp("variants") / "fashion"
    root.mkdir()
    shutil.copytree(artifact, root / "1")  # quantization "none"
    for variant in ["dynamic", "float16", "uint8out", "int8io"]:   # versions 2..5
        build_artifact(root.parent, variant=variant)
    return root


def test_tf_and_every_tflite_variant_agree_on_top1(variants):
    x = fashion_data()["x_test"][:64, :, :, None]
    expected = reference_top1(x)
    tf_probs = backends.TFBackend(repository.read_version(variants, 1), threads=1, device="cpu").predict(x)
    assert tf_probs.dtype == np.float32 and tf_probs.shape == (64, 10)
    assert (tf_probs.argmax(1) == expected).all()
    for version in range(1, 6):
        info = repository.read_version(variants, version)
        backend = backends.TFLiteBackend(info, threads=1)
        probs = np.concatenate([backend.predict(x[:1]), backend.predict(x[1:])])  # batch resize both ways
        agreement = (probs.argmax(1) == expected).mean()
        quant = info.metadata.formats.tflite.quantization
        # float variants match exactly; fully-quantized ones may flip a near tie
        assert agreement >= (1.0 if quant in ("none", "dynamic", "float16") else 0.9), (quant, agreement)
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=0.02)
        # same numbers as the SavedModel, within what the weight format costs
        if quant in ("none", "dynamic", "float16"):
            np.testing.assert_allclose(probs, tf_probs, atol={"none": 1e-5}.get(quant, 0.01))
        else:  # dequantized outputs: close on average, a near tie may move
            assert np.abs(probs - tf_probs).mean() < 0.01


def test_tflite_calls_from_several_threads_at_once_each_get_their_own_answer(variants):
    x = fashion_data()["x_test"][:32, :, :, None]
    backend = backends.TFLiteBackend(repository.read_version(variants, 1), threads=1)
    expected = backend.predict(x)
    results = {}
    barrier = threading.Barrier(4)

    def call(i):
        barrier.wait()  # all four at once: the idle pool holds one interpreter
        results[i] = [backend.predict(x[j:j + 8]) for j in range(0, 32, 8)]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        np.testing.assert_array_equal(np.concatenate(results[i]), expected)


def test_auto_backend_choice(variants, monkeypatch):
    info = repository.read_version(variants, 1)
    monkeypatch.setattr(backends, "gpu_visible", lambda: False)
    assert backends.choose_backend("auto", info, "auto") == "tflite"
    monkeypatch.setattr(backends, "gpu_visible", lambda: True)
    assert backends.choose_backend("auto", info, "auto") == "tf"
    assert backends.choose_backend("auto", info, "cpu") == "tflite"
    assert backends.choose_backend("tf", info, "auto") == "tf"


def test_tf_and_tflite_servers_give_the_same_top1(tf_server, tflite_server):
    x = fashion_data()["x_test"][:24]
    req = {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [24, 28, 28, 1], "data": x.ravel().tolist()}],
           "outputs": [{"name": "probabilities", "parameters": {"classification": 1}}]}
    answers = {}
    for server in (tf_server, tflite_server):
        r = requests.post(server.url + "/v2/models/fashion/infer", json=req)
        assert r.status_code == 200, r.text
        answers[r.headers["X-Model-Backend"]] = [int(s.split(":")[1]) for s in r.json()["outputs"][0]["data"]]
    assert set(answers) == {"tf", "tflite"}
    assert answers["tf"] == answers["tflite"] == reference_top1(x[..., None]).tolist()
