"""Accuracy, per-class precision/recall/F1 and a confusion matrix, for any of the
three forms of a model: the Keras model, the exported SavedModel, the TFLite file."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .data import Dataset


def predict_saved_model(directory: Path, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    import tensorflow as tf
    meta = json.loads((Path(directory) / "metadata.json").read_text())["formats"]["saved_model"]
    fn = tf.saved_model.load(str(Path(directory) / meta["path"])).signatures[meta["signature"]]
    return np.concatenate([fn(**{meta["input"]: tf.constant(x[i:i + batch_size])})[meta["output"]].numpy()
                           for i in range(0, len(x), batch_size)])


class TFLiteModel:
    """A LiteRT interpreter that takes uint8 pixels and returns float probabilities,
    quantizing int8 inputs and dequantizing int8/uint8 outputs as the file asks."""

    def __init__(self, path, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter
        self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.batch != len(x):
            self.interpreter.resize_tensor_input(self.input["index"], [len(x), *x.shape[1:]])
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
            self.batch = len(x)
        data = x
        if self.input["dtype"] != np.uint8:
            scale, zero = self.input["quantization"]
            data = x.astype(np.float32) if not scale else np.round(x / scale + zero)
            data = np.clip(data, *_range(self.input["dtype"])).astype(self.input["dtype"]) if scale else data
        self.interpreter.set_tensor(self.input["index"], data)
        self.interpreter.invoke()
        out = self.interpreter.get_tensor(self.output["index"])
        scale, zero = self.output["quantization"]
        return (out.astype(np.float32) - zero) * scale if scale else out.astype(np.float32)


def _range(dtype) -> tuple:
    info = np.iinfo(dtype)
    return info.min, info.max


def predict_tflite(path: Path, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    model = TFLiteModel(path)
    return np.concatenate([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, class_names: list) -> dict:
    k = len(class_names)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    per_class = {}
    for i, name in enumerate(class_names):
        tp = confusion[i, i]
        precision = tp / max(confusion[:, i].sum(), 1)
        recall = tp / max(confusion[i].sum(), 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        per_class[name] = {"precision": round(float(precision), 4), "recall": round(float(recall), 4),
                           "f1": round(float(f1), 4), "support": int(confusion[i].sum())}
    return {"accuracy": float(np.mean(y_true == y_pred)), "examples": int(len(y_true)),
            "per_class": per_class, "confusion": confusion.tolist()}


def plot_confusion(report: dict, class_names: list, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    confusion = np.asarray(report["confusion"])
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(confusion, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: accuracy {report['accuracy']:.4f}")
    for (i, j), v in np.ndenumerate(confusion):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                color="white" if v > confusion.max() / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate_artifact(directory: Path, test: Dataset, out_dir: Path = None) -> dict:
    """Reports for the SavedModel and the TFLite file of a published version."""
    directory = Path(directory)
    meta = json.loads((directory / "metadata.json").read_text())
    results = {}
    for fmt, predict in (("saved_model", predict_saved_model),
                         ("tflite", lambda d, x: predict_tflite(d / meta["formats"]["tflite"]["path"], x))):
        report = classification_report(test.y, predict(directory, test.x).argmax(1), meta["labels"])
        results[fmt] = report
        if out_dir is not None:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            plot_confusion(report, meta["labels"], Path(out_dir) / f"confusion_{fmt}.png",
                           f"{meta['name']} v{meta['version']} {fmt}")
    return results
