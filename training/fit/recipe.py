"""Training budget sized from the data: batch size and optimizer steps for ``"auto"``.

A preset tuned on 54,000 images (batch 256 x 6 epochs) gives a 1,300-image
folder 30 optimizer steps: batch-norm moving statistics never settle and the
model is near chance. The budget that matters is the number of optimizer
steps, so folder training counts steps, with a floor and a cap. The floor is
well above what batch norm's moving averages need (momentum 0.99: about 460
steps to forget their start) because small folders learn late: on 1,000
generated colour shapes, batch 32, 1,000 steps reached 53% test accuracy;
2,000 steps reached 87% with one seed and 72% with another, while 3,000
reached 87% and 90% (benchmarks/own_data.py). The cap keeps a large folder
to minutes on a CPU.
"""
from __future__ import annotations

import logging
import math

from training.config import AUTO, Budget, TrainConfig

log = logging.getLogger(__name__)

MIN_BATCH, MAX_BATCH = 16, 64    # small folders need more, smaller steps; 64 keeps CPU steps cheap
IMAGES_PER_BATCH_ROW = 32        # batch ~ images / 32: about 32 steps per pass at any size
EPOCHS_WANTED = 40               # passes over a small folder before the step floor/cap apply
MIN_STEPS, MAX_STEPS = 3000, 4000
MIN_PATIENCE = 10                # passes; small folders improve late (see the floor above)


def auto_batch_size(n_train: int) -> int:
    """A power of two near n/32 within [16, 64]."""
    target = max(n_train / IMAGES_PER_BATCH_ROW, 1)
    return int(min(MAX_BATCH, max(MIN_BATCH, 2 ** round(math.log2(target)))))


def auto_steps(n_train: int, batch_size: int) -> int:
    return int(min(MAX_STEPS, max(MIN_STEPS, round(EPOCHS_WANTED * n_train / batch_size))))


def resolve_budget(train_cfg: TrainConfig, n_train: int) -> Budget:
    """The concrete ``batch_size``/``epochs``/``early_stopping_patience`` for ``train_cfg``
    ("auto" or ints) on ``n_train`` images; ``train_cfg`` itself is left as it is.

    Steps are rounded up to whole passes over the data, because validation,
    checkpoints and early stopping work per pass.
    """
    if n_train < 1:
        raise ValueError("no training images")
    batch = auto_batch_size(n_train) if train_cfg.batch_size == AUTO else train_cfg.batch_size
    steps_per_epoch = math.ceil(n_train / batch)
    steps = auto_steps(n_train, batch) if train_cfg.steps == AUTO else train_cfg.steps
    epochs = max(1, math.ceil(steps / steps_per_epoch)) if steps else train_cfg.epochs
    patience = train_cfg.early_stopping_patience
    if patience == AUTO:
        patience = max(MIN_PATIENCE, epochs // 3)
    budget = Budget(batch_size=batch, steps_per_epoch=steps_per_epoch, epochs=epochs,
                    optimizer_steps=steps_per_epoch * epochs, train_images=n_train,
                    early_stopping_patience=patience)
    log.info("budget: %(optimizer_steps)d optimizer steps = %(epochs)d passes x %(steps_per_epoch)d "
             "batches of %(batch_size)d over %(train_images)d training images", budget.to_dict())
    return budget
