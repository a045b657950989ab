"""Do the regularisers matter more when data is scarce? The same switches at three data sizes.

Every size gets the same optimizer steps: 1,080 steps of 50 images are 54 passes over
1,000 images, 10 over 5,400 and one over all 54,000, so no size is cut mid-pass.
"""
from training.ablation.fashion import fashion_run
from training.ablation.study import Budget, Claim, Study, Variant
from training.ablation.studies.regularisation import AUGMENT, BATCH_NORM, DROPOUT, HEAD

SIZES = (1000, 5400, 54000)
SWITCHES = {"baseline": HEAD, "augment": {**HEAD, **AUGMENT}, "all": {**HEAD, **DROPOUT, **BATCH_NORM, **AUGMENT}}

STUDY = Study(
    name="scarcity",
    description=(
        "Do augmentation and the regularisers help most when labelled data is scarce? The regularisation "
        "study's baseline CNN (flatten and a 128-unit dense head), its augmentation and its three-together "
        "variant (dropout, batch norm, augmentation), each trained on 1,000, 5,400 and all 54,000 Fashion-MNIST training images with "
        "the same number of optimizer steps (54, 10 and 1 passes). Each group is one data size; the "
        "baseline of each group is the plain CNN at that size. One pass over 54,000 images repeats none of "
        "them: whether augmentation helps once they repeat, over 10 passes, is the augmentation study's question."),
    variants=tuple(Variant(name, {**settings, "train_images": size}, group=str(size))
                   for size in SIZES for name, settings in SWITCHES.items()),
    claims=tuple(
        [Claim(f"Augmentation helps with {size:,} training images", "augment", "baseline", str(size))
         for size in SIZES]
        + [Claim(f"Dropout, batch norm and augmentation together help with {size:,} training images",
                 "all", "baseline", str(size)) for size in SIZES]),
    run=fashion_run({}, curves=False),   # compared at the end only: no per-pass train accuracy
    budget=Budget(train_images=None, steps=1080, batch_size=50, seeds=(1, 2, 3, 4, 5), test_images=5000),
    plots=("data_size", "bars"),
)
