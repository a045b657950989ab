"""Defaults follow the evidence: every default a study measured is checked against the verdicts
computed, with the report's own statistics, from the committed ``reports/<study>/runs.jsonl``.

A test fails only when the evidence contradicts the default at p < 0.05: a measured rival beats
it (two-sided t-test, paired by seed where the runs share seeds). Where a study shows neither gain
nor harm the default stands and the test passes; so do verdicts a study has not measured yet. A
default the study never measured (a value none of its variants used) fails, so a default cannot
drift away from its study unnoticed. Where a study makes a choice on validation accuracy (the
transfer study's head recipe and fine-tune rate), the default must also be its pick: the variant
with the best validation accuracy. Reads committed files only: no training.
"""
from pathlib import Path

import numpy as np
import pytest

from training.ablation.aggregate import verdict
from training.ablation.runner import current_records, read_records, runs_path
from training.ablation.studies import batchnorm, compression, distillation, initialisation, regularisation, transfer
from training.ablation.study import Claim
from training.config import FINE_TUNE_RATES, DistillConfig, OptimizeConfig, TransferConfig, fine_tune_rate, load_config

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted(p.stem for p in (ROOT / "configs").glob("*.yaml"))


def committed(study) -> list:
    records = current_records(study, study.budget, read_records(runs_path(ROOT / "reports", study)))
    assert records, f"no committed runs of study {study.name}"
    return records


def beaten_by(default: str, rivals: list, group: str, records: list, metric="test_accuracy",
              higher_is_better=True, paired_on=()) -> list:
    """The rivals that beat ``default`` at p < 0.05, each with its verdict line."""
    found = []
    for rival in rivals:
        v = verdict(Claim(f"{rival} beats {default}", rival, default, group, metric, higher_is_better), records,
                    paired_on)
        if v.word == "supported":
            found.append(f"{group or '-'}: {rival} beats {default} on {metric} ({v.comparison.diff:+.4f} "
                         f"[{v.comparison.low:+.4f}, {v.comparison.high:+.4f}], p {v.p:.3g}, {v.comparison.test})")
    return found


def test_auto_initializer_is_not_beaten_in_the_initialisation_study():
    """What ``model.initializer: auto`` picks for each network's activation, against every
    initialiser the study trained on that network."""
    from training.keras2 import keras
    from training.models.cnn import initializer_for
    records = committed(initialisation.STUDY)
    by_class = {type(initializer_for("relu", value)).__name__: name
                for name, value in initialisation.INITIALISERS.items()}
    for network, settings in initialisation.NETWORKS.items():
        activation = settings["model.activation"]
        picked = type(initializer_for(activation, "auto")).__name__
        assert picked in by_class, f"auto picks {picked} for {activation}, which the study never trained"
        default = by_class[picked]
        rivals = [name for name in initialisation.INITIALISERS if name != default]
        assert not beaten_by(default, rivals, network, records), \
            f"auto's {default} for {activation}: " + "; ".join(beaten_by(default, rivals, network, records))
    assert isinstance(initializer_for("tanh", "auto"), keras.initializers.Initializer)


def best_on_validation(names: list, records: list) -> str:
    """Of ``names``, the one whose validation accuracy, averaged over the (k, seed) runs they all
    share, is highest: how the transfer study chooses. A variant not yet run at every k is no rival."""
    runs = {(r["variant"], r["group"], r["seed"]): r["val_accuracy"] for r in records}
    names = [n for n in names if all(any(key[:2] == (n, str(k)) for key in runs) for k in transfer.KS)]
    shared = set.intersection(*({(g, s) for v, g, s in runs if v == n} for n in names))
    assert shared, f"{names}: no seed run by all of them"
    return max(names, key=lambda n: np.mean([runs[(n, g, s)] for g, s in shared]))


def test_transfer_head_recipe_is_the_one_best_on_validation():
    """The head stage's recipe (``transfer.head_augment``, ``transfer.head_schedule``) is the one of
    the four the transfer study trained that is best on validation, and none beats it there at any k."""
    records = committed(transfer.STUDY)
    tcfg = TransferConfig()
    default = {"head_augment": tcfg.head_augment, "head_schedule": tcfg.head_schedule}
    named = [name for name, head in transfer.HEADS.items() if head == default]
    assert named, f"the default head recipe {default} was never measured (study: {transfer.HEADS})"
    assert named[0] == best_on_validation(list(transfer.HEADS), records)
    for k in transfer.KS:
        found = beaten_by(named[0], [n for n in transfer.HEADS if n != named[0]], str(k), records, "val_accuracy",
                          paired_on=transfer.STUDY.paired_on)
        assert not found, f"head recipe {default}: " + "; ".join(found)


def test_fine_tune_rate_for_the_projects_own_backbone_is_the_one_best_on_validation():
    """``transfer.fine_tune_learning_rate: auto`` on a published version of this project, and every
    preset fine-tuning one, use the rate the transfer study found best on validation, and no other
    rate it trained beats it there at any k. (ImageNet backbones' 1e-5 is not measured: their
    weights need a download.)"""
    records = committed(transfer.STUDY)
    measured = {rate: name for name, rate in transfer.RATES.items()}
    own = FINE_TUNE_RATES["published"]
    assert own in measured, f"own-backbone fine-tune rate {own} was never measured (study: {transfer.RATES})"
    assert measured[own] == best_on_validation(list(transfer.RATES), records)
    for k in transfer.KS:
        found = beaten_by(measured[own], [n for n in transfer.RATES if n != measured[own]], str(k), records,
                          "val_accuracy", paired_on=transfer.STUDY.paired_on)
        assert not found, f"fine-tune rate {own}: " + "; ".join(found)
    checked = 0
    for preset in PRESETS:
        cfg = load_config(preset)
        if cfg.model.name == "transfer" and cfg.transfer.backbone.startswith("models/"):
            assert fine_tune_rate(cfg.transfer, "published") == own, f"{preset} fine-tunes at another rate"
            checked += 1
    assert checked, "no preset fine-tunes the project's own backbone: nothing checked"


def test_batch_norm_in_presets_is_not_contradicted_by_the_regularisation_and_batchnorm_studies():
    """Batch norm is on in every CNN preset. This fails only if a study shows it doing significant
    harm (see docs/evidence.md): in the regularisation study, the plain network beating batch norm
    on test accuracy or learning faster; in the batchnorm study, at any of its learning rates, the
    plain network beating it on test accuracy at equal steps or reaching 75% validation accuracy
    in fewer steps."""
    using = [p for p in PRESETS if load_config(p).model.name == "cnn" and load_config(p).model.batch_norm]
    assert using, "no preset uses batch norm: nothing to check"
    records = committed(regularisation.STUDY)
    for metric in ("test_accuracy", "early_val_accuracy"):
        found = beaten_by("batchnorm", ["baseline"], "", records, metric)
        assert not found, f"batch norm on in {', '.join(using)}: " + "; ".join(found)
    records = committed(batchnorm.STUDY)
    for rate in batchnorm.LEARNING_RATES:
        found = [*beaten_by("batchnorm", ["plain"], batchnorm.group(rate), records),
                 *beaten_by("batchnorm", ["plain"], batchnorm.group(rate), records, "steps_to_target",
                            higher_is_better=False)]
        assert not found, f"batch norm on in {', '.join(using)}: " + "; ".join(found)


def test_default_compression_recipe_is_not_dominated_in_the_compression_study():
    """``optimize``'s default stages and pruning settings are one of the study's variants, and no
    variant fine-tuned for at most as many steps beats it on both counts: significantly more accurate
    without a significantly bigger file, or significantly smaller without being significantly less
    accurate. (prune75-4x1-long+int8, pqat's equal-steps control, prunes twice as long: the study
    holds steps fixed and does not choose the number of pruning epochs.)"""
    records = committed(compression.STUDY)
    o = OptimizeConfig()
    sizes = [v for v in compression.STUDY.variants if v.group == "size"]
    default = next((v.name for v in sizes if v.settings["stages"] == o.stages
                    and v.settings["optimize"].get("sparsity") == o.sparsity
                    and v.settings["optimize"].get("dense_block", [1, 1]) == o.dense_block), None)
    assert default, f"the default recipe {o.stages}, sparsity {o.sparsity}, blocks {o.dense_block} was never measured"
    steps = {v.name: max((r["steps"] for r in records if r["variant"] == v.name), default=0) for v in sizes}
    rivals = [v.name for v in sizes if v.name != default and steps[v.name] <= steps[default]]
    more_accurate = {line.split(" beats ")[0].split(": ")[1] for line in beaten_by(default, rivals, "size", records)}
    smaller = {line.split(" beats ")[0].split(": ")[1]
               for line in beaten_by(default, rivals, "size", records, "gzip_bytes", higher_is_better=False)}
    worse_accuracy = {r for r in rivals if verdict(Claim("", default, r, "size"), records).word == "supported"}
    bigger = {r for r in rivals if verdict(Claim("", default, r, "size", "gzip_bytes", False), records).word
              == "supported"}
    dominating = (more_accurate - bigger) | (smaller - worse_accuracy)
    assert not dominating, f"the default {default} is dominated by {sorted(dominating)}"


def test_distill_defaults_are_a_grid_point_not_beaten_in_the_distillation_study():
    """``distill``'s temperature and alpha are one of the grid's points, and no other point beats
    them at p < 0.05: on validation accuracy (what chooses the default) nor on test accuracy."""
    records = committed(distillation.STUDY)
    d = DistillConfig()
    assert (d.temperature, d.alpha) in distillation.GRID, \
        f"distill's T={d.temperature}, alpha={d.alpha} is not a point of the study's grid {distillation.GRID}"
    default = distillation.label(d.temperature, d.alpha)
    rivals = [distillation.label(t, a) for t, a in distillation.GRID if distillation.label(t, a) != default]
    for metric in ("val_accuracy", "test_accuracy"):
        found = beaten_by(default, rivals, "", records, metric)
        assert not found, f"distill's default {default}: " + "; ".join(found)


@pytest.mark.parametrize("study", [initialisation.STUDY, regularisation.STUDY, compression.STUDY,
                                   batchnorm.STUDY])
def test_a_contradiction_is_caught(study):
    """The check is not vacuous: swap the two variants of a supported claim in the committed
    records and it reports the baseline beating the variant."""
    records = committed(study)
    claim = next(c for c in study.claims if c.kind == "better" and verdict(c, records).word == "supported")
    swap = {claim.variant: claim.baseline, claim.baseline: claim.variant}
    swapped = [dict(r, variant=swap.get(r["variant"], r["variant"])) for r in records]
    assert not beaten_by(claim.variant, [claim.baseline], claim.group, records, claim.metric, claim.higher_is_better)
    assert beaten_by(claim.variant, [claim.baseline], claim.group, swapped, claim.metric, claim.higher_is_better)
