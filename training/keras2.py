"""The Keras 2 switch: every module that uses TensorFlow, Keras or TF-MOT imports them from here.

TF-MOT 0.8.1 works only with Keras 2 (``tf_keras``), and TensorFlow reads
``TF_USE_LEGACY_KERAS`` at the first touch of ``tf.keras``: it is set here, before
TensorFlow is imported, so no import order elsewhere can get Keras 3 by accident.
``tfmot`` loads on first use (``from training.keras2 import tfmot``): it costs
seconds, and most commands never prune or quantize.

TensorFlow's C++ start-up lines (oneDNN notes, CUDA probing that reads like a failure
on a CPU-only machine) go to file descriptor 2 before any Python logging exists. They
are captured here, during the import and the first device query, and kept in
``STARTUP_LOG``: ``python -m training -v`` prints them, a crash log includes them.
"""
import os
import sys
import tempfile

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_quietly():
    """Import TensorFlow and probe the devices with fd 2 pointing at a temporary file."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf
            import tf_keras as keras
            tf.config.list_physical_devices()      # the CUDA probe happens here, not at import
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        return tf, keras, sink.read().decode(errors="replace")


tf, keras, STARTUP_LOG = _import_quietly()
if os.environ.get("TRAINING_SHOW_TF_STARTUP"):     # python -m training -v (training.cli.main)
    sys.stderr.write(STARTUP_LOG)

__all__ = ["STARTUP_LOG", "keras", "tf", "tfmot"]


def __getattr__(name: str):
    if name == "tfmot":
        import tensorflow_model_optimization as tfmot
        return tfmot
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
