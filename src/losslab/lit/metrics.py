"""The epoch metrics of a classifier, per split, and the HPARAMS metrics chosen from them.

Per split (``train``, ``val``, ``test``), from one pass over its batches (one softmax per batch,
every metric from the same probabilities):

- ``loss``: the training objective, averaged with each batch weighted by its size;
- ``acc``: accuracy;
- ``nll``: plain cross-entropy of the softmax outputs (comparable across losses);
- ``brier``: Brier score ``sum_k (p_k - t_k)^2`` per sample, averaged;
- ``ece``: expected calibration error (15 equal bins, L1: torchmetrics'
  ``MulticlassCalibrationError`` binning, reproduced bit for bit), and the reliability bins
  behind it (``count``, mean ``confidence`` and ``accuracy`` per bin);
- with label noise, on the training split: ``acc/train_true`` (accuracy against the true labels)
  and ``memo/train`` (the fraction of corrupted images predicted as their wrong label).

The states are torchmetrics states: summed (or concatenated) across DDP processes, each sample
counted once. The values equal those of torchmetrics' ``MeanMetric``, ``MulticlassAccuracy`` and
``MulticlassCalibrationError`` bit for bit (tested), at a fraction of their per-batch cost. One
deliberate difference: NaN logits make the ECE NaN (torchmetrics counts a NaN confidence as 0
and, on the CPU, re-applies the softmax to the whole batch).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from losslab.names import GAP, KINDS, MEMORIZED, SPLITS, TEST_ACC, TRUE_ACC, VAL_ACC, tag

__all__ = ["CALIBRATION_BINS", "EpochMetrics", "SplitMetrics", "final_metrics", "objective"]

CALIBRATION_BINS = 15


class SplitMetrics(Metric):
    """Every epoch metric of one split, accumulated batch by batch (:meth:`update`)."""

    full_state_update = False

    def __init__(self, n_bins: int = CALIBRATION_BINS) -> None:
        super().__init__()
        self.n_bins = n_bins
        # float32 sums of batch means times batch sizes, as torchmetrics' MeanMetric keeps them
        for name in ("loss", "nll", "brier", "weight"):
            self.add_state(name, torch.tensor(0.0), dist_reduce_fx="sum")
        for name in ("correct", "total", "labelled", "true_correct", "flipped", "memorized"):
            self.add_state(name, torch.tensor(0), dist_reduce_fx="sum")
        # per-sample confidence (max probability) and hit (0/1) for the calibration bins
        self.add_state("confidences", [], dist_reduce_fx="cat")
        self.add_state("hits", [], dist_reduce_fx="cat")

    def update(
        self, logits: Tensor, target: Tensor, loss: Tensor, true_target: Tensor | None = None
    ) -> None:
        """One batch: logits ``(N, C)``, integer targets ``(N,)``, the training loss (a batch
        mean) and, with label noise, the true labels."""
        log_probs = logits.float().log_softmax(dim=1)
        probs = log_probs.exp()
        confidence, prediction = probs.max(dim=1)
        hit = prediction == target
        p_true = probs.gather(1, target[:, None]).squeeze(1)
        n = torch.tensor(len(target), dtype=torch.float32, device=logits.device)
        self.loss += loss.float() * n
        self.nll += -log_probs.gather(1, target[:, None]).mean() * n
        # sum_k (p_k - t_k)^2 = sum_k p_k^2 - 2 p_true + 1
        self.brier += (probs.square().sum(1) - 2 * p_true + 1).mean() * n
        self.weight += n
        self.correct += hit.sum()
        self.total += len(target)
        self.confidences.append(confidence)
        self.hits.append(hit.float())
        if true_target is not None:
            flipped = target != true_target
            self.labelled += len(target)
            self.true_correct += (prediction == true_target).sum()
            self.flipped += flipped.sum()
            self.memorized += (hit & flipped).sum()

    def compute(self) -> dict[str, Any]:
        confidences, hits = dim_zero_cat(self.confidences), dim_zero_cat(self.hits)
        edges = torch.linspace(0, 1, self.n_bins + 1, device=confidences.device)
        # ECE as torchmetrics computes it (_binning_bucketize, then the L1 norm): n_bins + 1 bins
        # (a confidence of exactly 1.0 has one of its own), float32
        index = torch.bucketize(confidences, edges, right=True) - 1
        count, confidence, accuracy = (
            torch.zeros(self.n_bins + 1, device=confidences.device).scatter_add_(0, index, v)
            for v in (torch.ones_like(confidences), confidences, hits)
        )
        # an empty bin counts 0 (torchmetrics: nan_to_num of 0/0), but a NaN confidence (NaN
        # logits) stays NaN: the ECE of a diverged model is NaN, not a number that hides it
        accuracy, confidence = (
            torch.where(count > 0, v / count, 0.0) for v in (accuracy, confidence)
        )
        out: dict[str, Any] = {
            "loss": self.loss / self.weight,
            "acc": self.correct.float() / self.total.float(),
            "nll": self.nll / self.weight,
            "brier": self.brier / self.weight,
            "ece": torch.sum(torch.abs(accuracy - confidence) * (count / count.sum())),
        }
        if self.labelled > 0:
            out["acc_true"] = self.true_correct.float() / self.labelled.float()
            out["memorized"] = self.memorized.float() / self.flipped.float()
        # the reliability diagram's n_bins bins (1.0 in the last one), summed in float64
        index = torch.bucketize(confidences, edges[1:-1], right=True)
        count, confidence, accuracy = (
            torch.zeros(self.n_bins, dtype=torch.float64, device=confidences.device).index_add_(
                0, index, v.double()
            )
            for v in (torch.ones_like(confidences), confidences, hits)
        )
        safe = count.clamp(min=1)
        self.last_hits = hits.bool()  # per sample, in the loader's order: kept past reset()
        out["reliability"] = {
            "count": count.tolist(),
            "confidence": (confidence / safe).tolist(),
            "accuracy": (accuracy / safe).tolist(),
        }
        return out


class EpochMetrics(nn.Module):
    """The metrics of every split for one evaluation: :meth:`update` per batch, then
    :meth:`compute` per split (which resets that split)."""

    def __init__(self, splits: tuple[str, ...] = SPLITS) -> None:
        super().__init__()
        # "train" is a method of every nn.Module: the modules are named "train_metrics", ...
        self.splits = nn.ModuleDict({f"{s}_metrics": SplitMetrics() for s in splits})

    def update(
        self,
        split: str,
        logits: Tensor,
        target: Tensor,
        loss: Tensor,
        true_target: Tensor | None = None,
    ) -> None:
        """One batch of ``split``: its logits, integer targets, the training loss (a batch mean)
        and, with label noise, the true labels."""
        self.splits[f"{split}_metrics"].update(logits, target, loss, true_target)

    def hits(self, split: str) -> Tensor:
        """Which samples of ``split`` the last :meth:`compute` found right (bool, in the
        evaluation loader's fixed order: two runs with the same data seed are paired by it)."""
        return self.splits[f"{split}_metrics"].last_hits

    def compute(self, split: str) -> tuple[dict[str, Tensor], dict[str, list[float]]]:
        """``({"loss/<split>": ..., "acc/<split>": ..., ...}, reliability bins)``; resets."""
        metric = self.splits[f"{split}_metrics"]
        out = metric.compute()
        metric.reset()
        values = {tag(kind, split): out[kind] for kind in KINDS}
        if "acc_true" in out:
            values[TRUE_ACC if split == "train" else tag("acc", f"{split}_true")] = out["acc_true"]
            values[MEMORIZED if split == "train" else tag("memo", split)] = out["memorized"]
        return values, out["reliability"]


def final_metrics(history: list[dict[str, Any]]) -> dict[str, float]:
    """The HPARAMS metrics of a run, the one to choose by first: ``hp/val_acc`` (the last epoch's)
    when there is a validation split (choices are made on it), then what is reported: the last
    epoch's ``hp/test_acc`` and, with both splits, ``hp/test_at_best``, the test accuracy at the
    first epoch of the best validation accuracy (early stopping); then the rest. A metric the
    run does not measure is left out (never NaN)."""
    if not history:
        return {}
    last = history[-1]
    has_val, has_test = VAL_ACC in last, TEST_ACC in last
    out = {"hp/val_acc": last[VAL_ACC]} if has_val else {}
    if has_test:
        out["hp/test_acc"] = last[TEST_ACC]
    if has_val and has_test:  # early stopping: the first epoch of the best validation accuracy
        finite = [h for h in history if math.isfinite(h[VAL_ACC])] or history
        best = max(finite, key=lambda h: (h[VAL_ACC], -h["epoch"]))
        out["hp/test_at_best"] = best[TEST_ACC]
    if has_val:
        out["hp/best_val_acc"] = max(h[VAL_ACC] for h in history)
    elif has_test:
        out["hp/best_test_acc"] = max(h[TEST_ACC] for h in history)
    if GAP in last:
        out["hp/gap_acc"] = last[GAP]
    for kind in ("ece", "nll", "brier", "loss") if has_test else ():
        out[f"hp/test_{kind}"] = last[tag(kind, "test")]
    if has_val:
        out["hp/val_loss"] = last[tag("loss", "val")]
    return out


def objective(history: list[dict[str, Any]]) -> float:
    """The number a sweeper (Optuna, Ax, ...) maximises: the last epoch's validation accuracy.
    NaN without a validation split: choosing on the test set would not be a fair choice."""
    return history[-1].get(VAL_ACC, math.nan) if history else math.nan
