"""What test-time augmentation (``publish.tta``) costs per request, side by side with the plain graph.

    python benchmarks/tta_cost.py [--model fashion/4] [--repeats 5] > reports/tta_cost.jsonl

A published version's Keras weights are exported twice through training's own export, with the
version's temperature: once plain, once with the views ``publish.tta`` bakes in for its config
(the image, its mirror, four 1-pixel shifts). Both are published into a temporary repository and
loaded by the service's own backends (``service.backends.load_backend``, the model-thread count a
worker gets by default), in process, no HTTP. Per backend and graph, one JSON line:

- ``p50_ms_batch1``: the median wall time of one single-image call (a request at concurrency 1);
- ``images_per_s_batch32``: images per second of back-to-back calls of 32 images (a full batch);

each the median over ``--repeats`` rounds, the two graphs measured in turn within every round so
both see the same machine load. A ``ratio`` line per backend divides TTA by plain. With
``--test-images N``, one ``accuracy`` line: both TFLite files on the first N Fashion-MNIST test
images - one model, no seeds; the tta study (reports/tta) measures the effect over seeds. On
fashion/4's network the six views of 10,000 images take minutes of a busy CPU: off by default.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from artifact.versions import publish  # noqa: E402
from service.backends import load_backend  # noqa: E402
from service.config import ServiceConfig  # noqa: E402
from service.repository import read_version  # noqa: E402

from training.config import config_from_dict  # noqa: E402
from training.data.datasets import load_fashion_mnist  # noqa: E402
from training.models.published import load_keras_model  # noqa: E402
from training.publish import tta  # noqa: E402
from training.publish.export import export_files  # noqa: E402
from timing import images_per_s, p50_ms  # noqa: E402  (benchmarks/timing.py)


def emit(record: dict) -> None:
    print(json.dumps({"bench": "tta_cost", **record}), flush=True)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def export_pair(version: Path, root: Path) -> tuple:
    """(views, {"plain": VersionInfo, "tta": VersionInfo}): the version's weights published twice."""
    model, meta = load_keras_model(version)
    cfg = config_from_dict(meta["config"])
    views = tta.views(dataclasses.replace(cfg.publish, tta=True), cfg.augment, int(model.input_shape[1]))
    temperature = (meta.get("calibration") or {}).get("temperature", 1.0)
    quantization = meta["formats"]["tflite"]["quantization"]
    if quantization not in ("none", "float16", "dynamic"):
        raise SystemExit(f"tta_cost: {version} is {quantization}; pick a float version (no representative set here)")
    infos = {}
    for graph, chosen in (("plain", ()), ("tta", views)):
        def write(staging, chosen=chosen):
            return export_files(staging, model, name=graph, class_names=meta["labels"],
                                color_mode=meta["input"]["color_mode"],
                                quantization=quantization, temperature=temperature, views=chosen)
        published = publish(root, graph, write)
        infos[graph] = read_version(root / graph, int(published.name))
    return views, infos


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="fashion/4", help="a published version under models/ (name/version)")
    p.add_argument("--backends", default="tflite,tf")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--calls", type=int, default=300, help="single-image calls per p50")
    p.add_argument("--seconds", type=float, default=2.0, help="per batch-of-32 throughput")
    p.add_argument("--test-images", type=int, default=0, help="images of the accuracy line; 0: none")
    args = p.parse_args(argv)
    version = ROOT / "models" / args.model
    _, test = load_fashion_mnist()
    with tempfile.TemporaryDirectory(prefix="tta-cost-") as tmp:
        views, infos = export_pair(version, Path(tmp))
        fields = {"model": args.model, "views": [v.name for v in views]}
        for backend in args.backends.split(","):
            threads = ServiceConfig.load({"backend": backend}, environ={}).resolved_model_threads
            models = {graph: load_backend(backend, info, threads, "cpu") for graph, info in infos.items()}
            one, batch = test.x[:1], test.x[:32]
            rounds = {graph: {"p50_ms_batch1": [], "images_per_s_batch32": []} for graph in models}
            for repeat in range(args.repeats):
                for graph, model in models.items():
                    rounds[graph]["p50_ms_batch1"].append(p50_ms(model, one, args.calls))
                    rounds[graph]["images_per_s_batch32"].append(images_per_s(model, batch, args.seconds, warmup=5, max_calls=100_000))
                log(f"tta_cost: {backend} round {repeat + 1} of {args.repeats} done")
            medians = {graph: {key: statistics.median(values) for key, values in measured.items()}
                       for graph, measured in rounds.items()}
            for graph, measured in medians.items():
                emit({**fields, "kind": "cost", "backend": backend, "graph": graph, "model_threads": threads,
                      "repeats": args.repeats, "p50_ms_batch1": round(measured["p50_ms_batch1"], 3),
                      "images_per_s_batch32": round(measured["images_per_s_batch32"], 1)})
            emit({**fields, "kind": "ratio", "backend": backend, "model_threads": threads,
                  "p50_ms_batch1": round(medians["tta"]["p50_ms_batch1"] / medians["plain"]["p50_ms_batch1"], 2),
                  "images_per_s_batch32": round(medians["tta"]["images_per_s_batch32"]
                                                / medians["plain"]["images_per_s_batch32"], 3)})
        if args.test_images:
            data = test.take(args.test_images)
            accuracy = {}
            for graph, info in infos.items():
                model = load_backend("tflite", info, 1, "cpu")
                answered = np.concatenate([model.predict(data.x[i:i + 256])[:, :len(info.labels)].argmax(1)
                                           for i in range(0, len(data), 256)])
                accuracy[graph] = round(float(np.mean(answered == data.y)), 4)
            emit({**fields, "kind": "accuracy", "backend": "tflite", "test_images": len(data),
                  "plain": accuracy["plain"], "tta": accuracy["tta"]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
