"""artifact stays light: importing all of it loads no TensorFlow, Keras, Flask,
LiteRT, training or service (checked in a fresh interpreter)."""
import json
import subprocess
import sys

from support.builders import ROOT

FORBIDDEN = ("tensorflow", "tf_keras", "keras", "flask", "ai_edge_litert", "training", "service")

PROBE = """
import json, sys
import artifact, artifact.labels, artifact.metadata, artifact.versions, artifact.locks, artifact.imaging, artifact.litert, artifact.saved_model
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_importing_artifact_loads_no_framework_and_neither_side():
    run = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    loaded = set(json.loads(run.stdout))
    assert "artifact" in loaded and "PIL" in loaded and "numpy" in loaded
    assert not loaded & set(FORBIDDEN), loaded & set(FORBIDDEN)
