"""Export a Keras model as the serving artifact's files: SavedModel, TFLite and Keras weights.

The serving contract (docs/service.md): uint8 pixels [N,H,W,C] in, probabilities
[N,K] out, with the scaling done inside the graph so no client repeats it.
"""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Callable, Iterable, Optional

from artifact.metadata import ENERGY_NAME, INPUT_NAME, OUTPUT_NAME, SIGNATURE, Formats, InputSpec, Metadata
from artifact.saved_model import MC_DROPOUT_SIGNATURE

from training.data.pipeline import to_float
from training.fit.precision import float32_copy
from training.keras2 import keras, tf
from training.publish import tta
from training.publish.calibration import EPSILON

# "qat": a quantization-aware-trained model, converted from its own fake-quant
# ranges as the TF-MOT guide does. Not with a representative data set: that
# re-calibration mis-scales a Dense -> BN -> ReLU block (default model's head:
# 0.91 accuracy in Keras, 0.58 in TFLite).
QUANTIZATIONS = ("none", "dynamic", "float16", "int8", "qat")


class inference_batch_norm:
    """Within the block, ``model(x, training=True)`` runs dropout but keeps every batch norm
    layer in inference mode (moving statistics, no updates): a Keras 2 batch norm layer whose
    ``trainable`` is False ignores ``training`` (the behaviour fine-tuning relies on).
    Monte Carlo dropout needs exactly that: the dropout masks random, the normalisation the
    one the model was trained for."""

    def __init__(self, model):
        self.layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]

    def __enter__(self):
        self.was = [layer.trainable for layer in self.layers]
        for layer in self.layers:
            layer.trainable = False
        return self

    def __exit__(self, *exc):
        for layer, was in zip(self.layers, self.was):
            layer.trainable = was


def mc_dropout_ready(model) -> bool:
    """Whether ``model`` can run Monte Carlo dropout as ``inference_batch_norm`` holds it: a
    dropout layer with a rate above 0, and no nested model (a transfer backbone, whose batch
    norm the block would not reach) nor wrapper (pruning and quantization-aware wrappers
    update masks or ranges when called in training mode)."""
    return plain(model) and any(isinstance(layer, keras.layers.Dropout) and layer.rate > 0 for layer in model.layers)


def plain(model) -> bool:
    """No nested model (a transfer backbone) nor wrapper (pruning, quantization-aware) layer."""
    return not any(isinstance(layer, (keras.Model, keras.layers.Wrapper)) for layer in model.layers)


def energy_ready(model) -> bool:
    """Whether the energy output can be read from ``model``: a plain builder model whose
    ``logits`` layer (``training.models.cnn``) feeds the softmax output."""
    try:
        logits = model.get_layer("logits")
    except ValueError:
        return False
    return plain(model) and any(layer.input is logits.output and layer.output is model.output
                                for layer in model.layers)


class ServingModule(tf.Module):
    """Wraps a Keras model with the uint8-in, probabilities-out serving signature.

    Only the variables are tracked: tracking the Keras model itself would also
    serialise every layer's own functions and Keras metadata (several MB the
    service never reads).

    ``temperature`` (``training.publish.calibration``) is baked into the graph as
    softmax(log(p) / T), so the SavedModel, the TFLite file made from it and every
    runner serve calibrated probabilities; 1.0 leaves the graph as it was.

    ``energy`` (a model with a ``logits`` layer, ``energy_ready``): the signature's second
    output, ``ENERGY_NAME``, per image -T * logsumexp(logits / T) with the same T, read from
    the logits in the same pass (the probabilities cannot give it back: log p loses the
    per-row constant). The probabilities output keeps its name, shape and values.

    ``views`` (``training.publish.tta``, ``publish.tta``): the model runs once on every view of
    each image and the serving signature answers the mean of the views' probabilities (then the
    temperature, fitted on those means) and the mean of their energies; () leaves one pass.

    ``mc_dropout`` (a model with dropout): a second signature, ``MC_DROPOUT_SIGNATURE``,
    answers one stochastic pass per input row - dropout on, batch norm in inference mode,
    no temperature (averaging passes is the calibration Monte Carlo dropout offers; see
    docs/evidence.md), and no test-time views (each pass is already one sample of an ensemble).
    A runner repeats the rows N times for N passes in one call. Only the SavedModel has it:
    the TFLite file is converted from the serving signature alone.
    """

    def __init__(self, model, input_shape: tuple, temperature: float = 1.0, mc_dropout: bool = False,
                 energy: bool = False, views: tuple = ()):
        super().__init__()
        self.model_variables = list(model.variables)
        spec = tf.TensorSpec([None, *input_shape], tf.uint8, name=INPUT_NAME)
        temperature = float(temperature)
        # one pass, two outputs: the model's probabilities and the logits they come from
        both = keras.Model(model.input, [model.output, model.get_layer("logits").output]) if energy else None

        def forward(images):
            """(probabilities, energies or None) of one float batch."""
            if both is None:
                return model(images, training=False), None
            probabilities, logits = both(images, training=False)
            logits = tf.cast(logits, tf.float32)
            return probabilities, -temperature * tf.reduce_logsumexp(logits / temperature, axis=-1)

        @tf.function(input_signature=[spec])
        def serve(pixels):
            images = to_float(pixels)
            probabilities, energies = tta.average(forward, images, views) if views else forward(images)
            if temperature != 1.0:
                # the floor keeps log finite where a float32 softmax rounded a class to 0
                logits = tf.math.log(tf.maximum(tf.cast(probabilities, tf.float32), EPSILON))
                probabilities = tf.nn.softmax(logits / temperature, axis=-1)
            if energies is None:
                return {OUTPUT_NAME: probabilities}
            return {OUTPUT_NAME: probabilities, ENERGY_NAME: energies}

        self.serve = serve
        self.exported = {SIGNATURE: serve}
        if mc_dropout:
            @tf.function(input_signature=[spec])
            def sample(pixels):
                return {OUTPUT_NAME: model(to_float(pixels), training=True)}

            # traced now, while batch norm is held in inference mode; the signature keeps this trace
            with inference_batch_norm(model):
                self.exported[MC_DROPOUT_SIGNATURE] = sample.get_concrete_function()


def save_saved_model(model, input_shape: tuple, path: Path, temperature: float = 1.0,
                     mc_dropout: bool = False, energy: bool = False, views: tuple = ()) -> None:
    module = ServingModule(model, input_shape, temperature, mc_dropout, energy, views)
    tf.saved_model.save(module, str(path), signatures=module.exported)


def convert_tflite(saved_model_dir: Path, quantization: str = "none",
                   representative: Optional[Callable[[], Iterable]] = None, calibrated: bool = False,
                   energy: bool = False, views: bool = False) -> bytes:
    """TFLite bytes from the exported SavedModel (so both share one graph).

    ``representative`` yields uint8 pixel batches preprocessed exactly like the
    serving input; int8 needs it for activation ranges. "qat" takes the ranges
    the model learned and ignores ``representative``. ``calibrated``: the SavedModel
    holds a baked-in temperature (``ServingModule``); ``energy``: it has the energy output;
    ``views``: it averages test-time views (``training.publish.tta``).
    """
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization '{quantization}' ({', '.join(QUANTIZATIONS)})")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir), [SIGNATURE])
    if quantization != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        if representative is None:
            raise ValueError("int8 quantization needs a representative data set")
        converter.representative_dataset = lambda: ([batch] for batch in representative())
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if calibrated or energy or views:
            # the baked-in temperature's log and softmax over K outputs, and the energy's logsumexp, have
            # no int8 kernel (nor, in some TF versions, the views' mirror): they stay float, around the
            # int8 network, instead of failing the conversion
            converter.target_spec.supported_ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)
        converter.inference_input_type = tf.uint8
    return converter.convert()


def gzip_bytes(data: bytes) -> int:
    """Bytes after gzip: the size that shows what pruning's zeros save."""
    return len(gzip.compress(data, compresslevel=9))


def gzip_size(path: Path) -> int:
    """gzip_bytes of a file, or summed over a directory's files."""
    if path.is_dir():
        return sum(gzip_size(p) for p in path.rglob("*") if p.is_file())
    return gzip_bytes(path.read_bytes())


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def export_files(directory: Path, model, *, name: str, class_names: list, color_mode: str,
                 quantization: str = "none", representative=None, invert: bool = False,
                 weights_model=None, temperature: float = 1.0, views: tuple = ()) -> Metadata:
    """Write saved_model/, model.tflite and the Keras weights into ``directory``; return the
    version's metadata (files, input, sizes), which the caller completes and has written
    once (``artifact.versions.publish``).

    ``weights_model``: the float model whose weights are stored for retraining when
    ``model`` itself is not a plain builder model (a QAT model's float twin).
    ``temperature``: baked into the SavedModel and TFLite graphs (``ServingModule``); the
    Keras weights stay the model's own, so a retrain starts from the un-tempered model.
    ``views``: test-time views averaged inside both graphs (``training.publish.tta``), recorded
    as the metadata's ``tta`` block; the Keras weights are the one model either way.
    """
    # a model trained under mixed_bfloat16 (train.precision) is exported as its float32 twin, so
    # every runner and converter sees the float32 graph it always did
    model = float32_copy(model)
    input_shape = tuple(int(d) for d in model.input_shape[1:])
    formats = Formats.all(quantization)
    saved_dir = directory / formats.saved_model.path
    energy = energy_ready(model)
    save_saved_model(model, input_shape, saved_dir, temperature, mc_dropout=mc_dropout_ready(model), energy=energy,
                     views=views)
    tflite_path = directory / formats.tflite.path
    tflite_path.write_bytes(convert_tflite(saved_dir, quantization, representative,
                                          calibrated=float(temperature) != 1.0, energy=energy, views=bool(views)))
    # Keras weights let training rebuild the model (builder config + weights) for
    # fine-tuning, distillation or compression; the service never reads them.
    (weights_model or model).save_weights(str(directory / formats.keras.path))
    metadata = Metadata(
        name=name, labels=list(class_names), formats=formats,
        input=InputSpec(*input_shape, color_mode, invert=invert),   # a channels/mode mismatch is an error
        sizes={"saved_model": {"bytes": dir_size(saved_dir), "gzip_bytes": gzip_size(saved_dir)},
               "tflite": {"bytes": dir_size(tflite_path), "gzip_bytes": gzip_size(tflite_path)}},
        extra={tta.BLOCK: tta.block(views)} if views else {},
    )
    return metadata
