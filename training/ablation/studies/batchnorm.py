"""Does batch norm stabilise training and allow higher learning rates?

The regularisation study judges batch norm by its validation accuracy after a quarter of the
steps at one Adam learning rate, and finds neither a gain nor a loss. The claim batch norm is
usually kept for is a different one: that it keeps training stable as the learning rate rises.
Here the same CNN trains with plain SGD (Nesterov momentum 0.9, a constant rate, so the rate is
the only thing that differs between groups) at three rates, with and without batch norm.

Every run: 10,000 training images drawn by the seed from the 54,000-image Fashion-MNIST pool
(``training.ablation.fashion``; both variants of a seed see the same images and start from the
same seed, so the comparisons are paired by seed), batch 50, 600 optimizer steps (3 passes),
no augmentation, dropout or weight decay. Validation accuracy (the fixed 1,000-image sample) is
read every 25 steps; ``steps_to_target`` is the first of those steps at which it reaches 75%,
625 (one reading past the budget) when it never does. ``test_accuracy`` is the weights after
the last step on the whole 10,000-image test set, read only to report. Batch norm's moving
averages use momentum 0.9 (Keras' default 0.99 needs a few hundred steps to catch up with the
training statistics, which would handicap it in inference-mode readings of a 600-step run).

Measured (reports/batchnorm, 30 runs, about 37 s each on 2 CPU cores): without batch norm the network diverges at 0.2 and 0.5 (10% test
accuracy, never 75% on validation); with it, 77-81% test accuracy at equal steps (p < 0.001), and
75% validation accuracy sooner at every rate (0.05: 285 vs 415 steps, p 0.033). At 0.05 the final
weights' test accuracy is not shown to differ (-3.4 points [-18.3, +11.6], p 0.57): batch norm's
last reading at a constant rate is noisy (54.9% to 82.3% over seeds), so one step's weights say
less than its curve does.
"""
from training.ablation.fashion import fashion_run
from training.ablation.study import Budget, Claim, Study, Variant

LEARNING_RATES = (0.05, 0.2, 0.5)
TARGET = 0.75                # validation accuracy for steps_to_target
VAL_EVERY = 25               # optimizer steps between validation readings
BN_MOMENTUM = 0.9

# widths 16, 32, two convs a stage, global average pooling: the fashion module's plain CNN
BASE = {"train.optimizer": "sgd", "train.momentum": 0.9, "train.schedule": "constant",
        "val_every": VAL_EVERY, "target_accuracy": TARGET}
BATCH_NORM = {"model.batch_norm": True, "batch_norm_momentum": BN_MOMENTUM}


def group(rate: float) -> str:
    return f"lr{rate:g}"


VARIANTS = tuple(v for rate in LEARNING_RATES for v in (
    Variant("plain", {"train.learning_rate": rate}, group(rate)),
    Variant("batchnorm", {"train.learning_rate": rate, **BATCH_NORM}, group(rate))))

CLAIMS = tuple(c for rate in LEARNING_RATES for c in (
    Claim(f"Batch norm improves test accuracy at learning rate {rate:g} (equal steps)", "batchnorm", "plain",
          group(rate)),
    Claim(f"Batch norm reaches {TARGET:.0%} validation accuracy in fewer steps at learning rate {rate:g}",
          "batchnorm", "plain", group(rate), metric="steps_to_target", higher_is_better=False)))

STUDY = Study(
    name="batchnorm",
    description=(
        "Does batch norm stabilise training and allow higher learning rates? The same CNN (4 conv layers, "
        "widths 16, 32, global average pooling, no dropout or weight decay) trains with SGD (Nesterov "
        "momentum 0.9) at a constant learning rate of 0.05, 0.2 or 0.5 (one group per rate), without "
        "(`plain`) and with batch norm after every conv (`batchnorm`, moving-average momentum 0.9). "
        "10,000 training images drawn by the seed, batch 50, 600 steps; both variants of a seed share "
        "images and initial seed, so differences are paired by seed. `test_accuracy`: the final weights "
        "on the 10,000 test images (equal steps). `steps_to_target`: the first step (validation read "
        "every 25 steps, 1,000 images) at which validation accuracy reaches 75%; 625 when it never does."),
    variants=VARIANTS,
    claims=CLAIMS,
    run=fashion_run(BASE, curves=False),
    budget=Budget(train_images=10000, steps=600, batch_size=50, seeds=(0, 1, 2, 3, 4)),
    plots=("curves", "bars"),
)
