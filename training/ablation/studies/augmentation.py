"""Does augmentation help on the full training set once the images repeat?

The scarcity study's 54,000-image group trains for one pass, where no image repeats, and there
augmentation cost 2.5 points of test accuracy; this study gives the same two networks ten passes
over all 54,000 images, so every image repeats and the plain one can start to memorise them.

Precision and batch were timed before the study (steady-state steps, one pass over 12,800 or
6,400 images, the plain network, on this 2-core AMD EPYC shared with four other training jobs):
float32 at batch 50 ran 147 ms a step (339 images/s), and 98 ms (510 images/s) a minute later;
mixed_bfloat16 at batch 50 ran 1,450 ms a step (34 images/s), ten times slower, as this CPU has
no AVX-512, let alone bfloat16 instructions; float32 at batch 128 ran 302 ms a step (424 images/s)
next to that 510 at batch 50, no faster. So float32 at the other studies' batch of 50: 10,800
steps, 540,000 images a run: the first run (baseline, seed 1) took 32 minutes there, beside
four to six other training jobs; on a quiet machine of two cores expect several times less.
"""
from training.ablation.fashion import fashion_run
from training.ablation.study import Budget, Claim, Study, Variant
from training.ablation.studies.regularisation import AUGMENT, HEAD

TRAIN_IMAGES = 54000      # all of the project's training split
PASSES = 10
BATCH_SIZE = 50           # the regularisation and scarcity studies' batch: 1,080 steps a pass
STEPS = PASSES * TRAIN_IMAGES // BATCH_SIZE

_fashion = fashion_run({})   # per-pass train accuracy too: the train_val plot shows the gap open


def run(variant: Variant, seed: int, budget: Budget, workdir) -> dict:
    """One run, plus ``val_accuracy``: the last pass's validation accuracy (1,000 held-out images,
    the last step's weights), what a default would be chosen on; the test accuracy only reports."""
    record = _fashion(variant, seed, budget, workdir)
    return {**record, "val_accuracy": record["curves"]["val_accuracy"][-1]}


STUDY = Study(
    name="augmentation",
    description=(
        f"Does augmentation help once the training images repeat? The regularisation study's baseline CNN "
        f"(4 conv layers, widths 16, 32, max-pool, flatten and a 128-unit dense layer, no dropout, batch norm "
        f"or weight decay) without and with its augmentation (random flips and shifts up to 10%, drawn "
        f"afresh for every mini-batch), each trained on all {TRAIN_IMAGES:,} Fashion-MNIST training images "
        f"for {PASSES} passes ({STEPS:,} optimizer steps of {BATCH_SIZE}; Adam, peak learning rate 0.003, "
        f"warm-up then cosine decay). The scarcity study trained the same pair for one pass over these "
        f"images, where none repeats. `gap` is train accuracy (inference mode, 500 training images) minus "
        f"test accuracy; `val_accuracy` is the last pass's accuracy on 1,000 held-out validation images, "
        f"the split a default would be chosen on."),
    variants=(Variant("baseline", HEAD), Variant("augment", {**HEAD, **AUGMENT})),
    claims=(
        Claim(f"Augmentation helps with {TRAIN_IMAGES:,} training images over {PASSES} passes",
              "augment", "baseline"),
        Claim(f"Augmentation reduces overfitting with {TRAIN_IMAGES:,} training images over {PASSES} passes "
              f"(a smaller train-test gap)", "augment", "baseline", metric="gap", higher_is_better=False),
        Claim(f"Augmentation improves validation accuracy with {TRAIN_IMAGES:,} training images over "
              f"{PASSES} passes", "augment", "baseline", metric="val_accuracy"),
    ),
    run=run,
    budget=Budget(train_images=None, steps=STEPS, batch_size=BATCH_SIZE, seeds=(1, 2, 3), test_images=5000),
    plots=("train_val", "bars"),
)
