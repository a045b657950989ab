"""Does training in mixed bfloat16 keep float32's accuracy, and how much faster is it here?

The network that trained models/fashion/2 (the accurate preset, widths 64/128/256, two convs
per stage), trained twice per seed from the same initialisation and data order: once in
float32, once under ``train.precision=mixed_bfloat16``; on a short budget, so three seeds fit
in about twenty minutes of two CPU cores.
"""
from training.ablation.fashion import fashion_run
from training.ablation.study import Budget, Claim, Study, Variant

# models/fashion/2's network and recipe (its metadata's config), over the studies' plain CNN
FASHION2 = {"model.widths": [64, 128, 256], "model.convs_per_stage": [2, 2, 2], "model.batch_norm": True,
            "model.dropout": 0.0, "model.head_pool": "flatten", "model.dense_units": 128,
            "model.head_dropout": 0.3, "model.weight_decay": 0.0,
            "augment.enabled": True, "augment.flip": True, "augment.translate": 0.1, "augment.erase": 0.25,
            "augment.erase_size": 0.3,
            "train.optimizer": "adamw", "train.learning_rate": 0.003, "train.schedule": "onecycle"}

STUDY = Study(
    name="precision",
    description=(
        "Does `train.precision=mixed_bfloat16` (convolutions and matrix multiplies in bfloat16, variables, "
        "optimizer and the output softmax in float32; `training/fit/precision.py`) keep float32's accuracy, "
        "and what does it save? The network of models/fashion/2 (accurate preset, widths 64/128/256, two "
        "convs per stage, batch norm, flatten head with a 128-unit dense layer, flips, shifts and random "
        "erasing, AdamW at peak 0.003 with warm-up and cosine decay) trains on 25,600 Fashion-MNIST images "
        "for 600 optimizer steps of 128, once per precision for each seed, from the same initialisation "
        "and data order. Accuracy is the last step's weights on 5,000 test images; `seconds` is the fit's "
        "wall time (validation every pass included) on two CPU cores that other work shares, so its spread "
        "is wide. The exported files of a mixed_bfloat16 run are float32 (the trained weights are float32; "
        "export rebuilds the layers in float32). Where a step's time goes, float32 against bfloat16 at "
        "the same moment: `benchmarks/train_throughput.py` (reports/train_throughput.jsonl): on a Xeon "
        "with AMX a bfloat16 step of this network at batch 256 ran 4.0x as many images per second as float32 "
        "(1,205 vs 300), 42% of the bfloat16 matrix-multiply peak; on an AMD EPYC with AVX512-BF16 and no "
        "AMX (Zen 4) 2.2x (663 vs 300), 56% of its bfloat16 peak. Without bfloat16 instructions it is "
        "slower than float32: held to AVX-512 without them (ONEDNN_MAX_CPU_ISA=AVX512_CORE) 0.25x, on an "
        "AMD EPYC with AVX2 only (Zen 3) about 0.13x; so float32 stays the default. Runs name their "
        "machine: seeds 1-3 ran on the AMX Xeon, the later seeds on the Zen 4 EPYC."),
    variants=(Variant("float32", {"train.precision": "float32"}),
              Variant("mixed_bfloat16", {"train.precision": "mixed_bfloat16"})),
    claims=(
        Claim("mixed_bfloat16 keeps float32's test accuracy (within 0.5 points)", "mixed_bfloat16", "float32",
              kind="equivalent", margin=0.005),
        Claim("mixed_bfloat16 trains faster (less wall time for the same steps)", "mixed_bfloat16", "float32",
              metric="seconds", higher_is_better=False),
    ),
    run=fashion_run(FASHION2, curves=False),
    budget=Budget(train_images=25600, steps=600, batch_size=128, seeds=(1, 2, 3), test_images=5000),
    plots=("bars",),
)
