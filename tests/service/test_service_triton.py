"""The unmodified tritonclient.http client talks KServe V2 to the service."""
import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from support.service import LABELS, fashion_data, png_bytes, reference_top1


@pytest.fixture(scope="module")
def client(tf_server):
    c = httpclient.InferenceServerClient(url=tf_server.url.removeprefix("http://"))
    yield c
    c.close()


def test_health_and_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("fashion") and client.is_model_ready("fashion", "1")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    assert client.get_model_metadata("fashion")["inputs"][0]["shape"] == [-1, 28, 28, 1]
    config = client.get_model_config("fashion")
    assert config["max_batch_size"] == 16 and config["input"][0]["dims"] == [28, 28, 1]


@pytest.mark.parametrize("binary", [True, False])
def test_uint8_infer(client, binary):
    x = fashion_data()["x_test"][:5, :, :, None]
    inp = httpclient.InferInput("pixels", list(x.shape), "UINT8")
    inp.set_data_from_numpy(x, binary_data=binary)
    out = httpclient.InferRequestedOutput("probabilities", binary_data=binary)
    result = client.infer("fashion", [inp], outputs=[out], model_version="1", request_id="r1")
    probs = result.as_numpy("probabilities")
    assert probs.dtype == np.float32 and probs.shape == (5, 10)
    assert probs.argmax(1).tolist() == reference_top1(x).tolist()
    assert result.get_response()["model_version"] == "1"


def test_bytes_infer_with_classification(client):
    x = fashion_data()["x_test"][:3]
    files = np.array([png_bytes(img) for img in x], dtype=np.object_)
    inp = httpclient.InferInput("images", [3], "BYTES")
    inp.set_data_from_numpy(files, binary_data=True)
    out = httpclient.InferRequestedOutput("probabilities", binary_data=True, class_count=2)
    top = client.infer("fashion", [inp], outputs=[out]).as_numpy("probabilities")
    assert top.shape == (3, 2)
    expected = reference_top1(x[..., None])
    for row, k in zip(top, expected):
        score, index, label = row[0].decode().split(":")
        assert int(index) == k and label == LABELS[k] and float(score) > float(row[1].decode().split(":")[0])


def test_errors_surface_as_client_exceptions(client):
    inp = httpclient.InferInput("pixels", [1, 3, 3, 1], "UINT8")
    inp.set_data_from_numpy(np.zeros((1, 3, 3, 1), np.uint8))
    with pytest.raises(InferenceServerException, match="does not match"):
        client.infer("fashion", [inp])
    with pytest.raises(InferenceServerException, match="not found"):
        client.infer("nope", [inp])
