"""The not-clothes sets are shaped like Fashion-MNIST, seeded, and not clothes-like by accident."""
import numpy as np

from training.data import foreign


def test_every_set_is_uint8_28x28_grey_and_repeats_with_its_seed():
    sets = foreign.foreign_sets()
    assert list(sets) == ["digits", "photo_patches", "noise"]
    for name, images in sets.items():
        assert images.dtype == np.uint8 and images.shape[1:] == (28, 28, 1), name
        assert images.std() > 10, name          # not blank
    assert len(sets["digits"]) == 1797
    np.testing.assert_array_equal(foreign.photo_patches(50, seed=3), foreign.photo_patches(50, seed=3))
    assert not np.array_equal(foreign.noise(50, seed=1), foreign.noise(50, seed=2))


def test_digits_keep_fashion_mnists_polarity_bright_object_on_dark_ground():
    images = foreign.digits()
    sides = np.concatenate([images[:, :, 0, 0], images[:, :, -1, 0]], axis=1)   # digits fill the height
    centre = images[:, 10:18, 10:18, 0]
    assert sides.mean() < 20 < centre.mean()


def test_brighter_shifts_and_clips():
    x = np.array([[0, 100, 250]], dtype=np.uint8)
    np.testing.assert_array_equal(foreign.brighter(x, 60), [[60, 160, 255]])
