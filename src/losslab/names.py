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
    "SPLITS",
    "TEST_IMAGES",
    "TRAIN_IMAGES",
    "TRUE_ACC",
    "tag",
]

# MNIST's official split (the files hold these counts; a smaller fixture in the same format loads too)
TRAIN_IMAGES = 60_000
TEST_IMAGES = 10_000
NUM_CLASSES = 10

# evaluation splits, in the order they are measured and shown
SPLITS = ("train", "val", "test")

# epoch curves, one per kind and split: loss/train, acc/test, ... (x axis = epoch)
KINDS = ("loss", "acc", "nll", "brier", "ece")


def tag(kind: str, split: str) -> str:
    """The TensorBoard tag of an epoch metric: ``tag("acc", "test") == "acc/test"``."""
    return f"{kind}/{split}"


GAP = "gap/acc"  # acc/train - acc/test
EPOCH_TIME = "time/epoch"  # seconds of an epoch's training and evaluation
LR = "lr"  # the optimizer's learning rate during the epoch
BATCH_LOSS = "batch/loss"  # the minibatch loss (x axis = optimizer step)
# with label noise: training accuracy against the true labels, and the fraction of corrupted
# training images predicted as their wrong label
TRUE_ACC = "acc/train_true"
MEMORIZED = "memo/train"
