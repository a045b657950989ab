"""Does the initialiser matter? He vs Glorot vs a naive N(0, 0.01), without batch norm.

Batch norm re-scales every layer's output and would hide the initialiser, so both
networks go without it. Plain SGD with momentum, because Adam rescales each
weight's step by its own gradient history and so repairs part of a bad start.
"""
from training.ablation.fashion import fashion_run
from training.ablation.study import Budget, Claim, Study, Variant

NETWORKS = {
    "relu-cnn": {"model.activation": "relu"},                                  # 4 conv layers
    # 8 conv layers, narrower so a run costs about what the ReLU CNN's does
    "tanh-deep": {"model.activation": "tanh", "model.convs_per_stage": 4, "model.widths": [8, 16]},
}
INITIALISERS = {"naive": "naive", "glorot": "glorot_uniform", "he": "he_normal"}   # naive first: the baseline

STUDY = Study(
    name="initialisation",
    description=(
        "Does the weight initialiser decide how well a network without batch normalisation trains? "
        "He (Kaiming) initialisation scales weights by sqrt(2 / fan-in) for ReLU units, Glorot (Xavier) by "
        "sqrt(2 / (fan-in + fan-out)) for symmetric units such as tanh; the naive baseline draws every "
        "weight from N(0, 0.01) whatever the layer's size. Two networks: a ReLU CNN (4 conv layers, widths "
        "16, 32) and a deeper tanh CNN (8 conv layers, widths 8, 16); SGD with Nesterov momentum 0.9, peak "
        "learning rate 0.05, warm-up then cosine decay; no batch norm, dropout, weight decay or augmentation."),
    variants=tuple(Variant(init, {**settings, "model.initializer": value}, group=network)
                   for network, settings in NETWORKS.items() for init, value in INITIALISERS.items()),
    claims=(
        Claim("He initialisation trains the ReLU CNN better than the naive N(0, 0.01)", "he", "naive", "relu-cnn"),
        Claim("Glorot initialisation trains the deep tanh CNN better than the naive N(0, 0.01)",
              "glorot", "naive", "tanh-deep"),
        Claim("He beats Glorot for the ReLU CNN", "he", "glorot", "relu-cnn"),
        Claim("Glorot beats He for the deep tanh CNN", "glorot", "he", "tanh-deep"),
    ),
    run=fashion_run({"train.optimizer": "sgd", "train.momentum": 0.9, "train.learning_rate": 0.05}),
    budget=Budget(train_images=4000, steps=800, batch_size=50, seeds=(1, 2, 3, 4, 5), test_images=5000),
    plots=("curves", "bars"),
)
