"""The Keras 2 switch: every module that uses TensorFlow, Keras or TF-MOT imports them from here.

TF-MOT 0.8.1 works only with Keras 2 (``tf_keras``), and TensorFlow reads
``TF_USE_LEGACY_KERAS`` at the first touch of ``tf.keras``: it is set here, before
TensorFlow is imported, so no import order elsewhere can get Keras 3 by accident.
``tfmot`` loads on first use (``from training.keras2 import tfmot``): it costs
seconds, and most commands never prune or quantize. TensorFlow's C++ start-up lines
are kept off the terminal (``training.quiet``).
"""
import os

from training.quiet import captured_stderr

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

with captured_stderr():
    import tensorflow as tf  # noqa: E402
    import tf_keras as keras  # noqa: E402
    tf.config.list_physical_devices()       # the CUDA probe happens here, not at import

__all__ = ["keras", "tf", "tfmot"]


def __getattr__(name: str):
    if name == "tfmot":
        import tensorflow_model_optimization as tfmot
        return tfmot
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
