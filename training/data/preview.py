"""A PNG grid of augmented samples: row = one image, column 0 = original."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from training.keras2 import tf

from training.data.augment import augment_batch
from training.data.datasets import Dataset
from training.data.pipeline import to_float


def preview_augment(data: Dataset, augment_cfg, out: Path, samples: int, variants: int, seed: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tf.random.set_seed(seed)
    images = to_float(data.x[:samples])
    columns = [images.numpy()] + [augment_batch(images, augment_cfg).numpy() for _ in range(variants)]
    fig, axes = plt.subplots(samples, variants + 1, figsize=(variants + 1, samples))
    for row in range(samples):
        for col in range(variants + 1):
            ax = np.atleast_2d(axes)[row, col]
            image = columns[col][row]
            ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
            ax.axis("off")
            if row == 0:
                ax.set_title("original" if col == 0 else f"aug {col}", fontsize=7)
            if col == 0:
                ax.text(-3, 14, data.class_names[data.y[row]], fontsize=6, ha="right", va="center")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
