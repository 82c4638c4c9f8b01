"""Symmetric label noise (``data.label_noise``, ``data.noise_seed``) and what it measures: the
flips against the binomial and uniform laws on the real 60k labels, the same wrong labels for
every run seed and loss, nested rates, a clean test split, refused rates, memorization worked
out by hand, the TensorBoard tags and chart of a real noisy run (the label-noise study's own
tests: tests/study/)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train, tree_digest
from scipy import stats
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2

from losslab.lit.data import MNISTDataModule, corrupt_labels
from losslab.lit.metrics import EpochMetrics
from losslab.run import tb


def idx_array(file: Path, offset: int, shape: tuple[int, ...]) -> np.ndarray:
    """An IDX file's items read with numpy (not torchvision): past the header, uint8."""
    return np.frombuffer(file.read_bytes()[offset:], dtype=np.uint8).reshape(shape)


@pytest.fixture(scope="module")
def mnist(data_dir: Path) -> dict[str, np.ndarray]:
    raw = data_dir / "MNIST" / "raw"
    return {
        "train_images": idx_array(raw / "train-images-idx3-ubyte", 16, (60000, 784)),
        "train_labels": idx_array(raw / "train-labels-idx1-ubyte", 8, (60000,)).astype(np.int64),
        "test_labels": idx_array(raw / "t10k-labels-idx1-ubyte", 8, (10000,)).astype(np.int64),
    }


def noisy(labels: np.ndarray, p: float, seed: int = 0) -> np.ndarray:
    return corrupt_labels(torch.from_numpy(labels), p, seed).numpy()


# -- the flips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.2, 0.6])
def test_the_flip_rate_is_binomial_and_the_wrong_class_uniform_over_the_others(mnist, p):
    y = mnist["train_labels"]
    wrong = noisy(y, p)
    flipped = wrong != y
    low, high = stats.binom.interval(0.999, len(y), p)
    assert low <= flipped.sum() <= high, flipped.mean()
    # per true class: each of the other 9 classes equally likely (chi-square, generous alpha)
    for c in range(10):
        counts = np.bincount(wrong[flipped & (y == c)], minlength=10)
        assert counts[c] == 0
        assert stats.chisquare(np.delete(counts, c)).pvalue > 1e-4, (c, counts)
    # and the rate is the same for every class (a flip does not depend on the label)
    per_class = [flipped[y == c].sum() for c in range(10)]
    sizes = [(y == c).sum() for c in range(10)]
    table = np.array([per_class, np.subtract(sizes, per_class)])
    assert stats.chi2_contingency(table).pvalue > 1e-4


def test_no_label_is_ever_flipped_to_itself(mnist):
    y = mnist["train_labels"]
    assert (noisy(y, 1.0) != y).all()  # p = 1: every label flips, none to itself
    assert (noisy(y, 0.0) == y).all()


def test_different_noise_seeds_flip_different_labels_and_a_higher_rate_nests_a_lower(mnist):
    y = mnist["train_labels"]
    a, b = noisy(y, 0.4, seed=0), noisy(y, 0.4, seed=1)
    both = ((a != y) & (b != y)).sum()
    low, high = stats.binom.interval(0.999, len(y), 0.4 * 0.4)  # independent draws: p^2
    assert low <= both <= high
    assert (noisy(y, 0.4, seed=0) == a).all()  # the same seed: the same flips
    low_rate, high_rate = noisy(y, 0.2), noisy(y, 0.4)
    flipped_low = low_rate != y
    assert flipped_low.sum() > 0.19 * len(y)
    assert ((high_rate != y) | ~flipped_low).all()  # flipped at 0.2 -> flipped at 0.4 ...
    assert (high_rate[flipped_low] == low_rate[flipped_low]).all()  # ... to the same class


def image_index(images: np.ndarray) -> dict[bytes, int]:
    """Position in the official training file of each image (MNIST's 60k are all distinct)."""
    return {row.tobytes(): i for i, row in enumerate(images)}


def split_indices(index: dict[bytes, int], images: torch.Tensor) -> np.ndarray:
    return np.array([index[row.tobytes()] for row in images.reshape(len(images), -1).numpy()])


def test_every_seed_and_loss_sees_the_same_wrong_labels_and_the_test_split_stays_clean(
    mnist, data_dir
):
    truth, index = mnist["train_labels"], image_index(mnist["train_images"])
    expected = noisy(truth, 0.4, seed=5)
    seen = {}
    for seed in (0, 1):
        dm = MNISTDataModule(data_dir, train_size=1000, val_size=2000, label_noise=0.4,
                             noise_seed=5, seed=seed, download=False)  # fmt: skip
        dm.setup()
        for split in ("train", "val"):
            images, labels = dm.splits[split]
            where = split_indices(index, images)
            # the labels are the flips drawn over the whole official split, at these images
            assert (labels.numpy() == expected[where]).all(), (seed, split)
            assert (dm.true_labels[split].numpy() == truth[where]).all()
            seen[(seed, split)] = dict(zip(where.tolist(), labels.tolist(), strict=True))
        assert (dm.splits["test"][1].numpy() == mnist["test_labels"]).all()
        assert "test" not in dm.true_labels
        val_flips = (dm.splits["val"][1] != dm.true_labels["val"]).sum().item()
        low, high = stats.binom.interval(0.999, 2000, 0.4)
        assert low <= val_flips <= high  # validation as noisy as training
    # images both seeds hold (in either split) carry the same label in both
    zero = seen[(0, "train")] | seen[(0, "val")]
    one = seen[(1, "train")] | seen[(1, "val")]
    shared = set(zero) & set(one)
    assert len(shared) > 100
    assert all(zero[i] == one[i] for i in shared)
    # a second data module of the same settings (another loss: the data never sees it)
    again = MNISTDataModule(data_dir, train_size=1000, val_size=2000, label_noise=0.4,
                            noise_seed=5, seed=1, download=False)  # fmt: skip
    again.setup()
    assert dict(zip(split_indices(index, again.splits["val"][0]).tolist(),
                    again.splits["val"][1].tolist(), strict=True)) == seen[(1, "val")]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "shown"), [("1", "got 1.0"), ("-0.1", "got -0.1"), ("1.5", "got 1.5")]
)
def test_a_label_noise_outside_0_1_is_refused_in_one_line(tmp_path, value, shown):
    (tmp_path / "keep.txt").write_text("untouched")
    before = tree_digest(tmp_path)
    res = train(f"data.label_noise={value}", "data.train_size=100", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert "data.label_noise" in res.stderr
    assert "[0, 1)" in res.stderr
    assert shown in res.stderr
    assert tree_digest(tmp_path) == before


# -- memorization, by hand ----------------------------------------------------------------------


def test_memorization_and_true_accuracy_worked_out_by_hand():
    true = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    wrong = torch.tensor([0, 2, 2, 1, 1, 0, 0, 1])  # flipped: #1 (1->2), #3 (0->1), #5 (2->0)
    pred = torch.tensor([0, 2, 2, 0, 1, 0, 1, 1])
    logits = 3.0 * torch.nn.functional.one_hot(pred, 3).float()
    metrics = EpochMetrics()
    for part in (slice(0, 5), slice(5, 8)):  # two batches add up
        metrics.update("train", logits[part], wrong[part], torch.tensor(0.5), true[part])
        metrics.update("test", logits[part], true[part], torch.tensor(0.5))
    values, _ = metrics.compute("train")
    # noisy labels: hits at 0, 1, 2, 4, 5, 7 -> 6/8; true labels: hits at 0, 2, 3, 4, 7 -> 5/8;
    # memorized: #1 predicted 2 (its wrong label) and #5 predicted 0 (its wrong label), not #3
    assert values["acc/train"].item() == pytest.approx(6 / 8)
    assert values["acc/train_true"].item() == pytest.approx(5 / 8)
    assert values["memo/train"].item() == pytest.approx(2 / 3)
    test_values, _ = metrics.compute("test")
    assert test_values["acc/test"].item() == pytest.approx(5 / 8)
    assert not any(k.startswith("memo") or k.endswith("_true") for k in test_values)
    # compute() reset the split: a new epoch starts from nothing
    metrics.update("train", logits[:2], wrong[:2], torch.tensor(0.5), true[:2])
    values, _ = metrics.compute("train")
    assert values["acc/train"].item() == 1.0
    assert values["acc/train_true"].item() == 0.5
    assert values["memo/train"].item() == 1.0


# -- a real noisy run ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_noisy_run_logs_true_accuracy_and_memorization_and_charts_them(shared_run):
    run = shared_run("noise_0.4", "data.train_size=1000", "data.label_noise=0.4",
                     "trainer.max_epochs=1", "~hydra.callbacks.report")  # fmt: skip
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    curves = {t: [e.value for e in events.Scalars(t)] for t in tags}
    assert len(curves["acc/train_true"]) == len(curves["memo/train"]) == 2  # epochs 0 and 1
    assert all(0 <= v <= 1 for t in ("acc/train_true", "memo/train") for v in curves[t])
    # after an epoch, the model follows the true labels more than the 40% flipped ones
    assert curves["acc/train_true"][-1] > curves["acc/train"][-1] + 0.1
    assert curves["memo/train"][-1] < 0.3
    assert "acc/val_true" not in tags  # no validation split here
    chart = "label noise: noisy vs true train labels, memorized, test"
    (pattern,) = tb.OVERFITTING_LAYOUT["Overfitting"][chart][1]
    assert {t for t in tags if re.search(pattern, t)} == {
        "acc/train", "acc/train_true", "memo/train", "acc/test"
    }  # fmt: skip
    # the run's own event file holds that chart (TensorBoard's custom-scalars layout)
    (written,) = events.Tensors("custom_scalars__config__")
    layout = layout_pb2.Layout.FromString(written.tensor_proto.string_val[0])
    charts = {c.title: list(c.multiline.tag) for cat in layout.category for c in cat.chart}
    assert charts[chart] == [pattern]
    hparams = json.loads((run / "result.json").read_text())["hparams"]
    assert hparams["label_noise"] == 0.4
