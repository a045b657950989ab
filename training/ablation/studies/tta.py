"""Is test-time augmentation, as ``publish.tta`` bakes it into the exported graphs, more accurate?

One training run per seed of the studies' small CNN (widths 16/32, two convs per stage) with batch
norm and the default augmentation (flips, shifts up to 10%), in float32: small enough that five
seeds fit beside other work on two shared CPU cores (models/fashion/2's network under mixed_bfloat16
did not: the machine it ran on had neither AMX nor AVX512-BF16, where bfloat16 is slower than float32).
Its last weights are read three ways through the export's own serving function
(``training.ablation.fashion.served_accuracies``): plain, with the views ``publish.tta`` averages
(the image, its mirror and four 1-pixel shifts) and with the image and its mirror alone. The
claims compare readings of the same runs, paired by seed.
"""
from training.ablation.fashion import fashion_run
from training.ablation.study import Budget, Claim, Study, Variant

NETWORK = "cnn16-32"
# over the studies' plain CNN: batch norm, and the default augmentation the test-time views follow
BASE = {"model.batch_norm": True, "augment.enabled": True, "augment.flip": True, "augment.translate": 0.1}

STUDY = Study(
    name="tta",
    description=(
        "Is test-time augmentation (TTA) inside the exported graph (`publish.tta`, "
        "`training/publish/tta.py`) more accurate than the plain graph, and is the mirror alone enough? "
        "The studies' small CNN (widths 16/32, two convs per stage, global average pooling) with batch norm "
        "and the default augmentation (random flips and shifts up to 10%), Adam at peak 0.003 with warm-up "
        "and cosine decay, trains once per seed in float32 on 25,600 Fashion-MNIST images for "
        "300 optimizer steps of 128, rounded up to two whole passes (400 steps; models/fashion/2's network "
        "under mixed_bfloat16 was planned, but its runs did not fit the "
        "shared machine's time: its CPU has no AMX, where bfloat16 runs slower than float32). Its last weights are read three ways by the export's own serving "
        "function (`ServingModule.serve`: uint8 pixels in, the float32 graph every runner serves, no "
        "temperature): `served_test_accuracy` plain; `tta_test_accuracy` the mean of the softmax "
        "probabilities of six views, the image, its mirror and the image moved 1 pixel up, down, left and "
        "right (zero fill, as training's translation); `tta_flip_test_accuracy` the image and its mirror. "
        "5,000 test images; the same readings on the 1,000-image validation sample are in runs.jsonl "
        "(`*_val_accuracy`). `test_accuracy` is the Keras model itself, for reference. What TTA "
        "costs per request: `benchmarks/tta_cost.py` (reports/tta_cost.jsonl, docs/service.md)."),
    variants=(Variant(NETWORK, {**BASE, "tta": True}),),
    claims=(
        Claim("TTA in the exported graph (image, mirror, four 1-pixel shifts) is more accurate than the plain graph",
              NETWORK, NETWORK, metric="tta_test_accuracy", baseline_metric="served_test_accuracy"),
        Claim("The mirror alone (two views) is more accurate than the plain graph",
              NETWORK, NETWORK, metric="tta_flip_test_accuracy", baseline_metric="served_test_accuracy"),
        Claim("The four shifts add accuracy to the mirror (six views against two)",
              NETWORK, NETWORK, metric="tta_test_accuracy", baseline_metric="tta_flip_test_accuracy"),
    ),
    run=fashion_run({}, curves=False),
    budget=Budget(train_images=25600, steps=300, batch_size=128, seeds=(1, 2, 3, 4, 5), test_images=5000),
    plots=("readings",),
)
