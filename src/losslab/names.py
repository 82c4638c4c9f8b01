"""Names and numbers that every part of losslab agrees on: the MNIST facts, the split names and
the metric tags. A leaf: it imports nothing, so any module (torch-free ones included) may use it.
"""

from __future__ import annotations

__all__ = [
    "BATCH_LOSS",
    "EPOCH_TIME",
    "GAP",
    "KINDS",
    "LR",
    "MEMORIZED",
    "NUM_CLASSES",
    "PIXEL_MEAN",
    "PIXEL_STD",
    "SPLITS",
    "TEST_ACC",
    "TEST_IMAGES",
    "TRAIN_ACC",
    "TRAIN_IMAGES",
    "TRUE_ACC",
    "VAL_ACC",
    "logged_tags",
    "mode",
    "tag",
]

# MNIST's official split (the files hold these counts; a smaller fixture in the same format loads too)
TRAIN_IMAGES = 60_000
TEST_IMAGES = 10_000
NUM_CLASSES = 10
# the mean and standard deviation of the 60k training pixels scaled to [0, 1]
PIXEL_MEAN, PIXEL_STD = 0.1307, 0.3081

# evaluation splits, in the order they are measured and shown
SPLITS = ("train", "val", "test")

# epoch curves, one per kind and split: loss/train, acc/test, ... (x axis = epoch)
KINDS = ("loss", "acc", "nll", "brier", "ece")


def tag(kind: str, split: str) -> str:
    """The TensorBoard tag of an epoch metric: ``tag("acc", "test") == "acc/test"``."""
    return f"{kind}/{split}"


TRAIN_ACC, VAL_ACC, TEST_ACC = (tag("acc", split) for split in SPLITS)  # the accuracy curves
GAP = "gap/acc"  # acc/train - acc/test; under label noise acc/train_true - acc/test
EPOCH_TIME = "time/epoch"  # seconds of an epoch's training and evaluation
LR = "lr"  # the optimizer's learning rate during the epoch
BATCH_LOSS = "batch/loss"  # the minibatch loss (x axis = optimizer step)
# with label noise: training accuracy against the true labels, and the fraction of corrupted
# training images predicted as their wrong label
TRUE_ACC = "acc/train_true"
MEMORIZED = "memo/train"


def logged_tags(splits: tuple[str, ...] | list[str], label_noise: bool) -> list[str]:
    """The epoch metrics a run logs when it evaluates ``splits`` (what a callback can monitor):
    every kind per split, the gap with train and test, and with label noise the true-label
    training accuracy and memorization."""
    tags = [tag(kind, split) for split in SPLITS if split in splits for kind in KINDS]
    if "train" in splits and "test" in splits:
        tags.append(GAP)
    if label_noise and "train" in splits:
        tags += [TRUE_ACC, MEMORIZED]
    return tags


def mode(metric: str) -> str:
    """``"max"`` for an accuracy (``acc/val``, ``acc/train_true``), else ``"min"``: the direction
    in which a metric gets better (losses, NLL, Brier, ECE, the gap, memorization)."""
    return "max" if metric.split("/")[0] == "acc" else "min"
