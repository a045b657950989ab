"""What do dropout, batch normalisation and augmentation buy on a small training set?

2,000 training images and many passes over them, so the baseline overfits within
the budget and each technique's effect on the train-test gap shows.
"""
from training.ablation.fashion import fashion_run
from training.ablation.study import Budget, Claim, Study, Variant

# A flattened feature map into a 128-unit dense layer: 200k weights that can memorise
# 2,000 images, so the baseline overfits within the budget (global average pooling
# and no dense layer leave too few weights to overfit at all).
HEAD = {"model.head_pool": "flatten", "model.dense_units": 128}
DROPOUT = {"model.dropout": [0.1, 0.2], "model.head_dropout": 0.5}
BATCH_NORM = {"model.batch_norm": True}
AUGMENT = {"augment.enabled": True}          # the default: horizontal flip, shifts up to 10%
# Dropout's ensemble view: the dropout runs are also read as the mean of 20 Monte Carlo dropout
# passes (training.ablation.fashion); the other variants have no dropout to sample.
MC_PASSES = {"mc_passes": 20}

STUDY = Study(
    name="regularisation",
    description=(
        "What do dropout, batch normalisation and per-mini-batch augmentation each buy when data is scarce "
        "enough to overfit? The same CNN (4 conv layers, widths 16, 32, then max-pool, flatten and a "
        "128-unit dense layer) trains on 2,000 Fashion-MNIST images for many passes: the baseline has none "
        "of the three (and no weight decay); each variant adds one (dropout 0.1 / 0.2 after the stages and "
        "0.5 before the classifier; batch norm after every conv and the dense layer; random flips and "
        "shifts up to 10%), and `all` adds the three. "
        "Adam, peak learning rate 0.003, warm-up then cosine decay. `gap` is train accuracy (inference "
        "mode, 500 training images) minus test accuracy; `early_val_accuracy` is the validation "
        "accuracy after a quarter of the steps; batch norm's is read with its moving averages (momentum "
        "0.99), which lag its training statistics for the first few hundred steps. "
        "`mc_test_accuracy` (dropout only) reads the dropout runs' last weights as the mean of 20 Monte "
        "Carlo dropout passes (batch norm, where present, in inference mode)."),
    variants=(Variant("baseline", HEAD), Variant("dropout", {**HEAD, **DROPOUT, **MC_PASSES}),
              Variant("batchnorm", {**HEAD, **BATCH_NORM}), Variant("augment", {**HEAD, **AUGMENT}),
              Variant("all", {**HEAD, **DROPOUT, **BATCH_NORM, **AUGMENT})),
    claims=(
        Claim("Dropout reduces overfitting (a smaller train-test gap)", "dropout", "baseline",
              metric="gap", higher_is_better=False),
        Claim("Dropout improves test accuracy", "dropout", "baseline"),
        Claim("Averaging 20 Monte Carlo dropout passes keeps the accuracy of one deterministic pass",
              "dropout", "dropout", metric="mc_test_accuracy", baseline_metric="test_accuracy",
              kind="equivalent"),
        Claim("Averaging 20 Monte Carlo dropout passes is more accurate than one deterministic pass",
              "dropout", "dropout", metric="mc_test_accuracy", baseline_metric="test_accuracy"),
        Claim("Batch norm speeds learning (higher validation accuracy after a quarter of the steps)",
              "batchnorm", "baseline", metric="early_val_accuracy"),
        Claim("Batch norm improves test accuracy", "batchnorm", "baseline"),
        Claim("Augmentation reduces overfitting (a smaller train-test gap)", "augment", "baseline",
              metric="gap", higher_is_better=False),
        Claim("Augmentation improves test accuracy", "augment", "baseline"),
        Claim("The three together improve test accuracy", "all", "baseline"),
    ),
    run=fashion_run({}),
    budget=Budget(train_images=2000, steps=800, batch_size=50, seeds=(1, 2, 3, 4, 5), test_images=5000),
    plots=("train_val", "bars"),
)
