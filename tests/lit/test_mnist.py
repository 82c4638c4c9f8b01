"""losslab.lit.mnist: the checks of the four IDX files, the errors that say what is missing and
where, and the per-process cache of what was read (on the tiny hand-built MNIST)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_idx

from losslab.lit import mnist


def test_the_missing_error_names_the_folder_and_every_file(tmp_path):
    """The ways out are the command's to say (losslab-train: build.DATA_HINT; losslab-eval:
    --data-dir), so the library's message names only what is missing and where."""
    raw = tmp_path / "MNIST" / "raw"
    assert str(mnist.missing_error(raw, "why")) == (
        f"MNIST not found in {raw} (why). losslab expects the four uncompressed IDX files "
        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        "t10k-labels-idx1-ubyte there."
    )


def test_missing_files_without_download_are_listed_with_the_reason(tiny_mnist):
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tiny_mnist["raw"] / name).unlink()
    with pytest.raises(FileNotFoundError) as info:
        mnist.check_files(tiny_mnist["raw"], download=False)
    assert "(missing t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte; no download allowed)" in str(
        info.value
    )


def test_test_images_and_labels_of_different_counts_are_rejected(tiny_mnist):
    write_idx(tiny_mnist["raw"] / "t10k-labels-idx1-ubyte", np.zeros(19, np.uint8), 2049)
    with pytest.raises(RuntimeError) as info:
        mnist.check_files(tiny_mnist["raw"], download=False)
    assert str(info.value) == (
        f"MNIST files in {tiny_mnist['raw']} disagree: t10k-images-idx3-ubyte holds 20 images "
        "but t10k-labels-idx1-ubyte holds 19 labels"
    )


@pytest.mark.parametrize(("label", "refused"), [(9, False), (10, True), (255, True)])
def test_a_label_is_a_class_index_0_to_9(tiny_mnist, label, refused):
    path = tiny_mnist["raw"] / "train-labels-idx1-ubyte"
    labels = tiny_mnist["train_labels"].copy()
    labels[3] = label
    write_idx(path, labels, 2049)
    if not refused:
        assert mnist.check_idx_file(path, 2049, ()) == 50
        return
    with pytest.raises(RuntimeError, match=f"the label at index 3 is {label}, but labels must"):
        mnist.check_idx_file(path, 2049, ())


def test_a_download_that_fails_before_making_any_folder_still_says_why(tmp_path, monkeypatch):
    class Refused:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            raise OSError("no space left on device")

    monkeypatch.setattr(mnist, "MNIST", Refused)
    with pytest.raises(FileNotFoundError, match=r"\(download failed: no space left on device\)"):
        mnist.download(tmp_path / "data", ["train-images-idx3-ubyte"])
    assert list(tmp_path.iterdir()) == []


def test_folders_with_files_of_the_same_sizes_and_times_are_read_separately(tiny_mnist, tmp_path):
    """The cache key holds each file's path: a copy with other pixels (same size, same time)
    is its own dataset."""
    other = tmp_path / "other"
    shutil.copytree(tiny_mnist["raw"], other / "MNIST" / "raw")
    images = other / "MNIST" / "raw" / "train-images-idx3-ubyte"
    write_idx(images, 255 - tiny_mnist["train_images"], 2051)
    for name in os.listdir(tiny_mnist["raw"]):
        stat = (tiny_mnist["raw"] / name).stat()
        os.utime(other / "MNIST" / "raw" / name, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    first, _ = mnist.read(tiny_mnist["root"], True, [], False)
    second, _ = mnist.read(other, True, [], False)
    assert torch.equal(first.squeeze(1), torch.from_numpy(tiny_mnist["train_images"]))
    assert torch.equal(second.squeeze(1), torch.from_numpy(255 - tiny_mnist["train_images"]))


def test_read_gives_each_split_its_own_images_and_labels(tiny_mnist):
    for train, split in ((True, "train"), (False, "test")):
        images, labels = mnist.read(Path(tiny_mnist["root"]), train, [], False)
        assert images.shape == (len(tiny_mnist[f"{split}_labels"]), 1, 28, 28)
        assert labels.tolist() == tiny_mnist[f"{split}_labels"].tolist()
