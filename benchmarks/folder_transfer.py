"""The README's little-data advice (``--preset folder_transfer``) on folders unlike Fashion-MNIST.

The ``folder_transfer`` preset puts a new head on the committed Fashion-MNIST model
(``models/fashion/1``) and fine-tunes it. Its head recipe (plain images, cosine rate) and
its fine-tune rate were chosen on Fashion-MNIST classes (reports/transfer). This runs,
per folder and seed, on a few dozen images per class (``--per-class``, the README's
"little data"):

- ``transfer``: the preset as shipped (stage 2 sized in optimizer steps, as many as the head's);
- ``transfer-5-epochs``: stage 2 as it was, 5 passes (80 steps on 243 training images at batch 16);
- ``transfer-former-head``: that, with the head recipe the preset had before (augmented images,
  constant rate), to see whether the new head default holds off Fashion-MNIST (not run by default);
- ``scratch``: ``--preset folder``, the README's recipe for the same folder from scratch:
  the alternative a user has.

Each run is published and read through its exported TFLite file (``python -m training
evaluate``) on the run's own validation split and on a larger held-out folder of the same
kind drawn with another seed (image_folders.HOLDOUTS); a few dozen images per class leave
only a handful of validation images, so the verdicts are read on the held-out folder, which
no run trains on or selects with. Per folder a summary line compares each variant with
``transfer`` paired by seed, on validation and on the held-out folder (mean difference in
points, 95% interval, two-sided p of the paired t-test; "higher"/"lower" only at p < 0.05,
else "not shown").

    python benchmarks/folder_transfer.py                        # glyphs and textures, 30 per class, seeds 42 7 1
    python benchmarks/folder_transfer.py --folders shapes --per-class 20 --seeds 42 7 1 3 4
    python benchmarks/folder_transfer.py --folders fashion32    # the in-domain control (see below)
    python benchmarks/folder_transfer.py --summarise reports/folder_transfer.jsonl   # summaries of recorded lines

``fashion32`` is a control, not a test of the advice: its images come from Fashion-MNIST's
training split, which the backbone learned from, so transfer has every advantage there.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import folder_variants  # noqa: E402
import image_folders  # noqa: E402
from own_data import print_summaries  # noqa: E402

VARIANTS = {
    "transfer": ["transfer", "--preset", "folder_transfer"],
    "transfer-5-epochs": ["transfer", "--preset", "folder_transfer", "--set", "transfer.fine_tune_steps=0"],
    "transfer-former-head": ["transfer", "--preset", "folder_transfer", "--set", "transfer.fine_tune_steps=0",
                             "--set", "transfer.head_augment=true", "--set", "transfer.head_schedule=constant"],
    "scratch": ["train", "--preset", "folder"],
}
DEFAULT_VARIANTS = ["transfer", "transfer-5-epochs", "scratch"]
BASELINE = "transfer"

# Builders with a per-class count (digits has a fixed 1,797 images and no held-out folder).
SIZED = {"glyphs": image_folders.glyphs, "textures": image_folders.textures, "shapes": image_folders.shapes,
         "fashion32": lambda root, per_class: image_folders.fashion_folder(root, per_class, 32, "L", "png")}


def summary(name: str, lines: list) -> dict:
    """Per variant: mean and sd of each accuracy; against ``transfer``, the paired difference on
    the runs' validation splits and on the held-out folder (folder_variants.summary)."""
    return folder_variants.summary("folder_transfer", name, lines, VARIANTS, BASELINE,
                                   per_class=lines[0]["per_class"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", nargs="+", default=["glyphs", "textures"], choices=list(SIZED))
    parser.add_argument("--per-class", type=int, default=30, help="training-folder images per class")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 7, 1])
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    parser.add_argument("--work", default="/tmp/folder_transfer_bench", help="folders, runs and models go here")
    folder_variants.add_summarise_argument(parser)
    args = parser.parse_args()
    if args.summarise:
        print_summaries(Path(args.summarise), "folder_transfer", args.folders, ("variant", "seed"), summary, least=1)
        return
    if BASELINE not in args.variants:
        parser.error(f"--variants must include {BASELINE}: every comparison is against it")
    work = Path(args.work)
    for name in args.folders:
        folder = work / "data" / f"{name}_{args.per_class}"
        if not (folder.is_dir() and any(folder.iterdir())):
            SIZED[name](folder, per_class=args.per_class)
        holdout = image_folders.build(name, work / "holdout" / name, image_folders.HOLDOUTS)
        lines = folder_variants.run_folder("folder_transfer", name, folder, holdout, work, args.seeds, VARIANTS,
                                           args.variants, per_class=args.per_class)
        print(json.dumps(summary(name, lines)), flush=True)


if __name__ == "__main__":
    main()
