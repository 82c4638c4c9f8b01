"""The epoch metrics of a classifier, per split, and the HPARAMS metrics chosen from them.

Per split (``train``, ``val``, ``test``), from the logits and the training loss of each batch:

- ``loss``: the training objective, averaged with each batch weighted by its size;
- ``acc``: accuracy;
- ``nll``: plain cross-entropy of the softmax outputs (comparable across losses);
- ``brier``: Brier score ``sum_k (p_k - t_k)^2`` per sample, averaged;
- ``ece``: expected calibration error (torchmetrics' ``MulticlassCalibrationError``, 15 equal
  bins, L1), and the reliability bins behind it (:class:`ReliabilityBins`).

All are torchmetrics states: summed across DDP processes, each sample counted once.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric, Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError

__all__ = [
    "CALIBRATION_BINS",
    "KINDS",
    "EpochMetrics",
    "ReliabilityBins",
    "final_metrics",
    "objective",
]

CALIBRATION_BINS = 15
KINDS = ("loss", "acc", "nll", "brier", "ece")


class ReliabilityBins(Metric):
    """Per confidence bin (``n_bins`` equal widths over [0, 1], as torchmetrics bins them): the
    sample count, the summed confidence (max softmax probability) and the number correct.

    ``compute()`` returns ``count``, mean ``confidence`` and ``accuracy`` per bin, the points of a
    reliability diagram; ``sum(count * |accuracy - confidence|) / sum(count)`` is the ECE.
    """

    full_state_update = False

    def __init__(self, n_bins: int = CALIBRATION_BINS) -> None:
        super().__init__()
        self.n_bins = n_bins
        for name in ("count", "confidence", "correct"):
            self.add_state(name, torch.zeros(n_bins, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, probs: Tensor, target: Tensor) -> None:
        confidence, prediction = probs.max(dim=1)
        edges = torch.linspace(0, 1, self.n_bins + 1, device=probs.device, dtype=probs.dtype)
        # torchmetrics' binning: bucketize on the inner edges, right=True, so 1.0 -> last bin
        index = torch.bucketize(confidence, edges[1:-1], right=True)
        self.count.index_add_(0, index, torch.ones_like(confidence, dtype=torch.float64))
        self.confidence.index_add_(0, index, confidence.double())
        self.correct.index_add_(0, index, (prediction == target).double())

    def compute(self) -> dict[str, list[float]]:
        safe = self.count.clamp(min=1)
        return {
            "count": self.count.tolist(),
            "confidence": (self.confidence / safe).tolist(),
            "accuracy": (self.correct / safe).tolist(),
        }


class EpochMetrics(nn.Module):
    """The metrics of every split for one evaluation: :meth:`update` per batch, then
    :meth:`compute` per split (which resets that split)."""

    def __init__(
        self, num_classes: int, splits: tuple[str, ...] = ("train", "val", "test")
    ) -> None:
        super().__init__()
        # "loss_train" -> MeanMetric, ... ("/" is not a valid module name)
        self.metrics = nn.ModuleDict()
        for s in splits:
            # nan_strategy=nan: a NaN batch makes the mean NaN (visible, so divergence is caught).
            # ("disable" would do that too, but torchmetrics 1.9 then drops the weights.)
            for kind in ("loss", "nll", "brier"):
                self.metrics[f"{kind}_{s}"] = MeanMetric(nan_strategy=math.nan)
            self.metrics[f"acc_{s}"] = MulticlassAccuracy(
                num_classes, average="micro", validate_args=False
            )
            self.metrics[f"ece_{s}"] = MulticlassCalibrationError(
                num_classes, n_bins=CALIBRATION_BINS, norm="l1", validate_args=False
            )
            self.metrics[f"bins_{s}"] = ReliabilityBins()

    def update(self, split: str, logits: Tensor, target: Tensor, loss: Tensor) -> None:
        """One batch: its logits, integer targets and the training loss (a batch mean)."""
        m, n = self.metrics, len(target)
        log_probs = logits.float().log_softmax(dim=1)
        probs = log_probs.exp()
        p_true = probs.gather(1, target[:, None]).squeeze(1)
        m[f"loss_{split}"].update(loss, weight=n)
        m[f"nll_{split}"].update(-log_probs.gather(1, target[:, None]).mean(), weight=n)
        # sum_k (p_k - t_k)^2 = sum_k p_k^2 - 2 p_true + 1
        m[f"brier_{split}"].update((probs.square().sum(1) - 2 * p_true + 1).mean(), weight=n)
        m[f"acc_{split}"].update(logits, target)
        m[f"ece_{split}"].update(probs, target)
        m[f"bins_{split}"].update(probs, target)

    def compute(self, split: str) -> tuple[dict[str, Tensor], dict[str, list[float]]]:
        """``({"loss/<split>": ..., "acc/<split>": ..., ...}, reliability bins)``; resets."""
        values = {}
        for kind in KINDS:
            metric = self.metrics[f"{kind}_{split}"]
            values[f"{kind}/{split}"] = metric.compute()
            metric.reset()
        bins = self.metrics[f"bins_{split}"]
        reliability = bins.compute()
        bins.reset()
        return values, reliability


def final_metrics(history: list[dict[str, Any]]) -> dict[str, float]:
    """The HPARAMS metrics of a run's last epoch, the one to choose by first: ``hp/val_acc`` when
    there is a validation split (choices are made on it), else ``hp/test_acc``; test is reported."""
    if not history:
        return {}
    last = history[-1]
    has_val = "acc/val" in last
    out = {"hp/val_acc": last["acc/val"]} if has_val else {}
    for kind in ("acc", "ece", "nll", "brier", "loss"):
        out[f"hp/test_{kind}"] = last[f"{kind}/test"]
    out["hp/gap_acc"] = last.get("gap/acc", math.nan)
    if has_val:
        out["hp/val_loss"] = last["loss/val"]
        out["hp/best_val_acc"] = max(h["acc/val"] for h in history)
    else:
        out["hp/best_test_acc"] = max(h["acc/test"] for h in history)
    return out


def objective(history: list[dict[str, Any]]) -> float:
    """The number a sweeper (Optuna, Ax, ...) maximises: the last epoch's validation accuracy.
    NaN without a validation split: choosing on the test set would not be a fair choice."""
    return history[-1].get("acc/val", math.nan) if history else math.nan
