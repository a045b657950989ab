"""Train a preset on full Fashion-MNIST on this machine; print one JSON line.

    python benchmarks/train_fashion.py --preset default [--publish] [--set k=v ...]

Fields: preset, its overrides, seed, machine, params, epochs, wall seconds (fit only and end to
end), images/s, validation and test accuracy. With --publish the trained model is
also published to the model repository (this is how models/fashion/1 was made).
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.config import load_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--publish", action="store_true", help="publish the trained model")
    args = parser.parse_args()

    from training.ablation.records import machine
    from training.publish.release import publish_result
    from training.fit.train import train

    started = time.perf_counter()
    cfg = load_config(args.preset, args.overrides)
    result = train(cfg)
    line = {
        "benchmark": "train_fashion", "preset": args.preset, "overrides": args.overrides, "seed": cfg.train.seed,
        "machine": machine(), "model": cfg.model.name,
        "params": int(result.model.count_params()), "epochs": len(result.history["loss"]),
        "train_examples": len(result.train), "fit_seconds": round(result.wall_seconds, 1),
        "images_per_second": round(len(result.train) * len(result.history["loss"]) / result.wall_seconds, 1),
        "val_accuracy": round(result.history.get("val_accuracy", [float("nan")])[-1], 4),
        "test_accuracy": round(result.test_accuracy, 4),
    }
    if args.publish:
        line["published"] = str(publish_result(cfg, result, preset=args.preset))
    line["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
