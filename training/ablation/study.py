"""What an ablation study is: variants run over seeds on a fixed budget, and the claims they test.

A study module (``training/ablation/studies/<name>.py``) defines one ``Study``. The
runner (``training.ablation.runner``) runs every (variant, seed) pair that is not yet
in ``reports/<study>/runs.jsonl``, appending one record per finished run, so an
interrupted study resumes where it stopped. Aggregation and the report only read
records, so they are tested on synthetic ones. In the report's tables the first
variant of each group is the baseline the differences are taken from.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional


@dataclass(frozen=True)
class Budget:
    """The fixed budget every variant of a study gets (from the ``ablate`` config section)."""
    train_images: Optional[int]      # training subset size; None: all
    steps: int                       # optimizer steps per run (every method gets the same)
    batch_size: int
    seeds: tuple                     # one run per seed and variant
    test_images: Optional[int] = None  # test subset size; None: the whole test set


@dataclass(frozen=True)
class Variant:
    name: str                        # unique within the study: "he", "dropout", "prune+int8"
    settings: dict = field(default_factory=dict)   # config overrides or study-specific knobs
    group: str = ""                  # compared only within a group: a network, a data size, a k


MARGIN = 0.005   # "keeps accuracy": within half a percentage point, unless a claim says otherwise


@dataclass(frozen=True)
class Claim:
    """One sentence the study tests: ``variant`` against ``baseline`` on ``metric`` (the
    baseline's runs read on ``baseline_metric`` where given, e.g. the same runs measured two ways).

    ``kind="better"``: the variant differs from the baseline in the claimed direction
    (``higher_is_better``). ``kind="equivalent"``: the two lie within ``margin`` of each
    other ("keeps the accuracy"), tested as equivalence, not as a difference that a
    small effect could never show (see ``training.ablation.aggregate``)."""
    text: str                        # "He initialisation trains a ReLU CNN better than a naive one"
    variant: str
    baseline: str
    group: str = ""
    metric: str = "test_accuracy"
    higher_is_better: bool = True
    kind: str = "better"             # or "equivalent"
    margin: float = MARGIN           # equivalence margin, in the metric's units (accuracy: a fraction)
    baseline_metric: Optional[str] = None   # the baseline side's metric, when it differs: two readings
                                            # of the same runs ("mc_test_accuracy" vs "test_accuracy")

    @property
    def against(self) -> str:
        """The metric read from the baseline's runs."""
        return self.baseline_metric or self.metric

    def __post_init__(self):
        if self.kind not in ("better", "equivalent"):
            raise ValueError(f"claim '{self.text}': kind must be better or equivalent, not '{self.kind}'")


# run(variant, seed, budget, workdir) -> one record: at least test_accuracy, steps, seconds;
# curves as {"train_accuracy": [...], "val_accuracy": [...], "loss": [...]} per evaluation point.
RunFn = Callable[[Variant, int, Budget, Path], dict]


@dataclass(frozen=True)
class Study:
    name: str
    description: str                 # the question, in one paragraph for the report
    variants: tuple                  # of Variant
    claims: tuple                    # of Claim
    run: RunFn
    budget: Budget                   # the default budget; the ablate config section overrides it
    plots: tuple = ("curves",)       # which report plots apply, see training.ablation.plots.PLOTS
    # record fields two runs of a seed must share to be compared pair by pair (besides the seed):
    # what the run function builds outside the variant and the budget, such as a trained source model
    paired_on: tuple = ()
