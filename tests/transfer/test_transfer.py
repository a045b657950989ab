"""Transfer learning: freezing, unfreezing, BatchNorm, flatness/quantizability, weights files,
the offline ImageNet error, and a published-backbone run on an image folder through the CLI.

keras.applications backbones are built with weights=None and MobileNetV2 alpha=0.35 at
32x32 (the fixture's 28x28 padded), so nothing is downloaded and each build takes seconds.
"""
import json
import math
from dataclasses import replace

import numpy as np
import pytest
from training.keras2 import keras
from PIL import Image

from training.models.backbones import WeightsUnavailable
from training.config import FINE_TUNE_RATES, load_config
from training.data.pipeline import make_dataset
from training.fit.trainer import fit
from training.models.transfer import freeze_backbone, unfreeze_top
from training.transfer.pipeline import transfer_model


def transfer_config(tmp_path, *overrides):
    return load_config("tiny", [f"output_dir={tmp_path / 'runs'}", f"models_dir={tmp_path / 'models'}",
                                "train.verbose=0", "train.batch_size=32", "model.name=transfer",
                                "transfer.backbone=mobilenetv2", "transfer.alpha=0.35",
                                "transfer.weights=none", "transfer.resize=pad", *overrides])


@pytest.fixture(scope="module")
def published_backbone(tmp_path_factory, fixture_data):
    """The project's own tiny CNN, trained one epoch on the fixture and published for real;
    its flatten head (head_maxpool -> pool -> dense) is cut off whole."""
    from training.publish.release import publish_result
    from training.fit.train import train
    tmp = tmp_path_factory.mktemp("backbone")
    cfg = load_config("tiny", [f"output_dir={tmp / 'runs'}", f"models_dir={tmp / 'models'}",
                               "train.verbose=0", "train.epochs=1", "model.head_pool=flatten",
                               "model.dense_units=16"])
    return publish_result(cfg, train(cfg, data=fixture_data), force=True)


def snapshot(layers) -> dict:
    return {layer.name: [w.copy() for w in layer.get_weights()] for layer in layers}


def changed(before: dict, after: dict) -> set:
    return {name for name in before
            if any(not np.array_equal(a, b) for a, b in zip(before[name], after[name]))}


def fit_two_steps(tm, cfg, data, lr):
    ds = make_dataset(data, 32, len(data.class_names), training=True, augment=cfg.augment).repeat()
    fit(tm.model, ds, replace(cfg.train, epochs=1, learning_rate=lr), steps_per_epoch=2)


@pytest.fixture
def small_train(fixture_data):
    return fixture_data[0].subset(slice(0, 64))


@pytest.mark.parametrize("backbone,module", [("mobilenetv2", "mobilenet_v2"), ("resnet50", "resnet"),
                                              ("efficientnetb0", "efficientnet")])
@pytest.mark.parametrize("channels", [1, 3])
def test_adapter_reproduces_the_backbones_preprocess_input(backbone, module, channels):
    from training.models.backbones import APPLICATIONS, pixel_map
    x = np.random.default_rng(0).random((2, 4, 4, channels), np.float32)     # [0,1] model input
    kernel, bias = pixel_map(channels, 3, APPLICATIONS[backbone].preprocess)
    adapted = np.einsum("nhwc,cd->nhwd", x, kernel[0, 0]) + bias
    rgb255 = np.repeat(x, 3 // channels, axis=-1) * 255.0
    expected = getattr(keras.applications, module).preprocess_input(rgb255.copy())
    np.testing.assert_allclose(adapted, expected, rtol=1e-5, atol=1e-3)


def test_stage1_changes_only_the_head(tmp_path, small_train):
    cfg = transfer_config(tmp_path)
    tm = transfer_model(cfg, small_train.input_shape, 10)
    freeze_backbone(tm)
    frozen = tm.backbone_layers + [tm.model.get_layer(name) for name in tm.adapter]
    before, head_before = snapshot(frozen), snapshot([tm.model.get_layer("logits")])
    fit_two_steps(tm, cfg, small_train, lr=1e-2)
    assert changed(before, snapshot(frozen)) == set()
    assert changed(head_before, snapshot([tm.model.get_layer("logits")])) == {"logits"}


def test_top_n_unfreezing_selects_exactly_those_layers(tmp_path):
    tm = transfer_model(transfer_config(tmp_path), (28, 28, 1), 10)
    layers = {layer.name: layer for layer in tm.backbone_layers}

    def trainable():
        return {name for name, layer in layers.items() if layer.trainable}

    assert unfreeze_top(tm, 3) == ["block_16_depthwise", "block_16_project", "Conv_1"]
    assert trainable() == {"block_16_depthwise", "block_16_project", "Conv_1"}
    expected = {"block_16_expand", "block_16_depthwise", "block_16_project", "Conv_1"}
    assert set(unfreeze_top(tm, 2, "blocks")) == expected and trainable() == expected
    assert unfreeze_top(tm, 0) == [] and trainable() == set()
    everything = set(unfreeze_top(tm, "all"))
    assert everything == trainable() and len(everything) == 52     # MobileNetV2's conv layers
    assert not any(isinstance(layers[n], keras.layers.BatchNormalization) for n in everything)
    # Only the chosen layers' kernels and the head reach the optimizer.
    unfreeze_top(tm, 1)
    owners = {v.name.split("/")[0] for v in tm.model.trainable_weights}
    assert owners == {"Conv_1", "logits"}
    assert not tm.model.get_layer(tm.adapter[-1]).trainable


def test_stage2_trains_the_unfrozen_layers_and_keeps_batchnorm_statistics(tmp_path, small_train):
    cfg = transfer_config(tmp_path)
    tm = transfer_model(cfg, small_train.input_shape, 10)
    unfrozen = set(unfreeze_top(tm, 3))
    bn = [layer for layer in tm.backbone_layers if isinstance(layer, keras.layers.BatchNormalization)]
    before = snapshot(tm.backbone_layers)
    fit_two_steps(tm, cfg, small_train, lr=1e-2)
    after = snapshot(tm.backbone_layers)
    assert changed(before, after) == unfrozen
    # gamma, beta, moving mean and moving variance of every backbone BatchNorm: untouched.
    assert all(np.array_equal(a, b) for layer in bn for a, b in zip(before[layer.name], after[layer.name]))


def test_local_weights_file_round_trips(tmp_path):
    source = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35)
    path = tmp_path / "mobilenetv2_035_notop.h5"
    source.save_weights(str(path))
    tm = transfer_model(transfer_config(tmp_path, f"transfer.weights={path}"), (28, 28, 1), 10)
    expected = [w for layer in source.layers for w in layer.get_weights()]
    loaded = [w for layer in tm.backbone_layers for w in layer.get_weights()]
    assert len(loaded) == len(expected) > 0
    assert all(np.array_equal(a, b) for a, b in zip(loaded, expected))
    with pytest.raises(WeightsUnavailable, match="not found"):
        transfer_model(transfer_config(tmp_path, f"transfer.weights={tmp_path}/missing.h5"), (28, 28, 1), 10)


def test_imagenet_offline_says_how_to_provide_weights(tmp_path, capsys):
    try:
        transfer_model(transfer_config(tmp_path, "transfer.weights=imagenet"), (28, 28, 1), 10)
    except WeightsUnavailable as exc:
        assert isinstance(exc, ValueError)
        assert "--weights /path/to/mobilenet_v2_weights" in str(exc) and "~/.keras/models/" in str(exc)
    else:
        pytest.skip("ImageNet weights were downloaded or cached: nothing offline to check")
    from training.cli.main import main
    with pytest.raises(SystemExit) as exit_info:
        main(["transfer", "--preset", "tiny", "--backbone", "mobilenetv2", "--alpha", "0.35",
              "--weights", "imagenet", "--set", f"output_dir={tmp_path}", "--set", "model.name=transfer"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.strip().splitlines()[-1].startswith("error: could not download the ImageNet weights")
    assert "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["published", "mobilenetv2"])
def test_transfer_model_is_flat_and_quantizable(tmp_path, backbone, published_backbone):
    from training.keras2 import tfmot
    name = str(published_backbone) if backbone == "published" else "mobilenetv2"
    cfg = transfer_config(tmp_path, f"transfer.backbone={name}",
                          *(["transfer.alpha=1.0", "transfer.weights=default"] if backbone == "published" else []))
    model = transfer_model(cfg, (28, 28, 1), 5).model
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    quantized = tfmot.quantization.keras.quantize_model(model)
    x = np.random.default_rng(0).random((2, 28, 28, 1), np.float32)
    assert quantized(x).shape == (2, 5)


def write_folder(root, size=24, per_class=16):
    """Three colour classes with noise, so an RGB image folder has something to learn."""
    rng = np.random.default_rng(0)
    for label, colour in enumerate([(200, 40, 40), (40, 200, 40), (40, 40, 200)]):
        (root / f"class{label}").mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(np.array(colour) + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / f"class{label}" / f"{i}.png")


@pytest.mark.slow
def test_both_stages_can_be_sized_in_optimizer_steps():
    """A 300-image folder at batch 16 has 19 steps a pass: 5 fine-tune epochs are 95 steps, so
    folder_transfer sizes stage 2 in steps like the head (the transfer study's half-and-half)."""
    from training.config import Resolved
    from training.data.datasets import Dataset
    from training.fit.recipe import auto_steps
    from training.transfer.pipeline import resolve_transfer
    folder = Dataset(np.zeros((300, 8, 8, 1), np.uint8), np.arange(300) % 10, [str(c) for c in range(10)])
    preset = load_config("folder_transfer", ["data.image_size=8", "data.color_mode=L"])
    assert preset.transfer.head_steps == preset.transfer.fine_tune_steps == "auto"
    resolved = resolve_transfer(preset, folder, None)
    per_pass = math.ceil(300 / resolved.batch_size)
    wanted = auto_steps(300, resolved.batch_size)
    assert resolved.fine_tune_epochs == resolved.head_epochs == math.ceil(wanted / per_pass)
    assert resolved.fine_tune_epochs * per_pass >= 3000 > preset.transfer.fine_tune_epochs * per_pass
    ran = resolved.apply(preset).transfer                 # the config as it ran: passes, not "auto" alone
    assert (ran.head_epochs, ran.fine_tune_epochs) == (resolved.head_epochs, resolved.fine_tune_epochs)
    given = resolve_transfer(replace(preset, transfer=replace(preset.transfer, fine_tune_steps=40)), folder, None)
    assert given.fine_tune_epochs == math.ceil(40 / per_pass)
    epochs = resolve_transfer(load_config("transfer"), folder, None)     # 0: fine_tune_epochs as set
    assert epochs.fine_tune_epochs is None and epochs.head_epochs is None
    assert Resolved.from_dict(resolved.to_dict()) == resolved


def test_published_backbone_on_an_image_folder_through_the_cli(tmp_path, capsys, published_backbone):
    from training.publish.scoring import version_runner
    from training.models.published import load_keras_model
    from training.cli.main import main
    write_folder(tmp_path / "images")
    main(["transfer", "--preset", "tiny", "--backbone", str(published_backbone), "--unfreeze", "1",
          "--unfreeze-unit", "blocks", "--head-epochs", "1", "--fine-tune-epochs", "1", "--publish", "--force",
          "--set", "data.source=folder", "--set", f"data.path={tmp_path / 'images'}",
          "--set", "data.image_size=24", "--set", "data.color_mode=RGB", "--set", "train.verbose=0",
          "--set", "model.head_pool=flatten",           # the new head reuses the cut head's layer names
          "--set", f"output_dir={tmp_path / 'runs'}", "--set", f"models_dir={tmp_path / 'models'}"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [s["name"] for s in summary["stages"]] == ["head", "fine_tune"]
    assert summary["stages"][1]["unfrozen_layers"] == 1        # the tiny CNN's top block: one conv
    version = tmp_path / "models" / "tiny" / "1"
    assert summary["published"] == str(version)
    meta = json.loads((version / "metadata.json").read_text())
    assert meta["input"]["channels"] == 3 and meta["config"]["model"]["name"] == "transfer"
    assert [s["stage"] for s in meta["transfer"]["stages"]] == [1, 2]
    head, fine_tune = meta["transfer"]["stages"]
    assert (head["augmented"], head["schedule"]) == (False, "cosine")       # the head stage's recipe
    assert fine_tune["learning_rate"] == FINE_TUNE_RATES["published"]      # auto: this project's backbone
    assert meta["config"]["transfer"]["fine_tune_learning_rate"] == FINE_TUNE_RATES["published"]   # as it ran
    assert all(0 <= s["test_accuracy"] <= 1 for s in meta["transfer"]["stages"])
    assert meta["parent"]["path"] == str(published_backbone)
    for stage in (1, 2):
        assert (tmp_path / "runs" / "tiny" / "checkpoints" / f"stage{stage}.h5").is_file()
    # Rebuilt from metadata alone (builder config + weights): same answers as the SavedModel, whose
    # graph also holds the temperature fitted at publish.
    from training.data.datasets import load_image_folder
    from training.publish.calibration import temper
    model, _ = load_keras_model(version)
    images = load_image_folder(str(tmp_path / "images"), 24, "RGB").x[:8]
    np.testing.assert_allclose(temper(model(images.astype(np.float32) / 255.0).numpy(),
                                      meta["calibration"]["temperature"]),
                               version_runner(version, "saved_model").predict(images), atol=1e-5)
    # The backbone is runtime state: recorded under "resolved", not in the config, and
    # enough to rebuild the model with the backbone's own files gone.
    assert meta["resolved"]["backbone_spec"]["path"] == str(published_backbone)
    assert "backbone_spec" not in meta["config"]["transfer"]
    moved = published_backbone.with_name(published_backbone.name + "-moved")
    published_backbone.rename(moved)
    try:
        rebuilt, _ = load_keras_model(version)
    finally:
        moved.rename(published_backbone)
    np.testing.assert_allclose(rebuilt(images.astype(np.float32) / 255.0).numpy(),
                               model(images.astype(np.float32) / 255.0).numpy(), atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["mobilenetv2", "efficientnetb0", "resnet50"])
def test_every_application_backbone_builds_flat_on_greyscale_28x28(tmp_path, backbone):
    cfg = transfer_config(tmp_path, f"transfer.backbone={backbone}", "transfer.resize=bilinear",
                          *([] if backbone == "mobilenetv2" else ["transfer.alpha=1.0"]))
    tm = transfer_model(cfg, (28, 28, 1), 5)
    assert tm.model.get_layer("adapt_resize").output_shape == (None, 56, 56, 1)   # x2 reaches 32
    assert not any(isinstance(layer, keras.Model) for layer in tm.model.layers)
    out = tm.model(np.zeros((2, 28, 28, 1), np.float32)).numpy()
    assert out.shape == (2, 5) and np.allclose(out.sum(1), 1, atol=1e-5)
