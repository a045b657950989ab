"""A folder too small for its splits is refused before training, naming what is missing."""
import numpy as np
import pytest

from training.data.datasets import DataError, Dataset
from training.data.sufficiency import check_enough


def dataset(labels, names=("a", "b", "c")) -> Dataset:
    return Dataset(np.zeros((len(labels), 4, 4, 1), np.uint8), np.array(labels, np.int64), list(names))


def test_enough_images_pass():
    check_enough(dataset([0, 0, 1, 1, 2, 2]), dataset([0]), dataset([1]))


def test_each_missing_split_and_class_is_named():
    with pytest.raises(DataError) as error:
        check_enough(dataset([0, 0, 1]), dataset([]), dataset([]))
    text = str(error.value)
    assert "b 1" in text and "c 0" in text and "a " not in text.split("training split:")[1].split(")")[0]
    assert "validation split (it is empty)" in text and "test split (it is empty)" in text
    assert "{'train': 3, 'val': 0, 'test': 0}" in text


def test_a_split_the_config_does_not_ask_for_may_be_empty():
    check_enough(dataset([0, 0, 1, 1, 2, 2]), dataset([]), dataset([1]), need_validation=False)
