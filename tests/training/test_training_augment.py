import numpy as np
import pytest
from training.keras2 import tf

from training.data.augment import augment_batch
from training.config import AugmentConfig
from training.data.pipeline import make_dataset, to_float

OFF = dict(flip=False, translate=0.0, rotate=0.0, zoom=0.0, contrast=0.0, brightness=0.0, erase=0.0)


@pytest.mark.parametrize("switch", [dict(flip=True), dict(translate=0.2), dict(rotate=20.0),
                                    dict(zoom=0.2), dict(contrast=0.5), dict(brightness=0.2),
                                    dict(erase=1.0)])
def test_each_switch_changes_pixels_alone(fixture_data, switch):
    images = to_float(fixture_data[0].x[:64])
    tf.random.set_seed(0)
    out = augment_batch(images, AugmentConfig(**{**OFF, **switch})).numpy()
    assert out.shape == images.shape
    assert 0.0 <= out.min() and out.max() <= 1.0
    changed = np.mean(np.any(out != images.numpy(), axis=(1, 2, 3)))
    assert changed > 0.3, f"{switch} changed only {changed:.0%} of images"


def test_all_off_or_disabled_is_identity(fixture_data):
    images = to_float(fixture_data[0].x[:16])
    np.testing.assert_array_equal(augment_batch(images, AugmentConfig(**OFF)).numpy(), images.numpy())
    np.testing.assert_array_equal(augment_batch(images, AugmentConfig(enabled=False, erase=1.0)).numpy(),
                                  images.numpy())


def test_fresh_randomness_per_batch_and_image(fixture_data):
    images = to_float(np.repeat(fixture_data[0].x[:1], 8, axis=0))
    cfg = AugmentConfig(**{**OFF, "translate": 0.2})
    first, second = augment_batch(images, cfg).numpy(), augment_batch(images, cfg).numpy()
    assert len({a.tobytes() for a in first}) > 4          # copies of one image differ
    assert not np.array_equal(first, second)              # each call draws again


def test_pipeline_augments_pixels_never_labels_or_counts(fixture_data):
    train = fixture_data[0]
    cfg = AugmentConfig(translate=0.1, erase=0.5)

    def epoch(augment):
        ds = make_dataset(train, batch_size=100, num_classes=10, training=True, augment=augment, seed=3)
        xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
        return np.concatenate(xs), np.concatenate(ys)

    x_plain, y_plain = epoch(None)
    x_aug, y_aug = epoch(cfg)
    assert len(x_aug) == len(x_plain) == len(train)        # data set size unchanged
    # Same shuffle seed: the same examples in the same order, labels untouched.
    np.testing.assert_array_equal(y_aug, y_plain)
    assert np.bincount(y_aug.argmax(1), minlength=10).tolist() == np.bincount(train.y, minlength=10).tolist()
    assert np.mean(np.any(x_aug != x_plain, axis=(1, 2, 3))) > 0.5


def test_evaluation_pipeline_is_not_augmented(fixture_data):
    test = fixture_data[2]
    ds = make_dataset(test, batch_size=128, num_classes=10, training=False, augment=AugmentConfig(erase=1.0))
    x = np.concatenate([b.numpy() for b, _ in ds])
    np.testing.assert_allclose(x, test.x / 255.0, rtol=1e-6)
