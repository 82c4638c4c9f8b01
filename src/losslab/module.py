"""The LightningModule: trains any net with any loss and measures the epoch curves.

Curves (the book's method): after every training epoch, and once before training as epoch 0,
the model is evaluated in eval mode on every loader of ``val_dataloader()`` (for
:class:`~losslab.data.MNISTDataModule`: the whole training set, the optional validation split
and the test set), and ``loss/<split>``, ``acc/<split>`` and ``gap/acc`` are written with the
epoch as the x axis. Epoch 0 is measured by Lightning's sanity check, so the trainer must run
it in full (``num_sanity_val_steps=-1``, as every config in ``conf/trainer`` does).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

__all__ = ["Classifier"]

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]
SPLITS = ("train", "val", "test")


class Classifier(L.LightningModule):
    """Classifier over ``net`` trained with ``loss``.

    Args:
        net: maps a batch of inputs to logits ``(N, C)``.
        loss: ``loss(output, target)``. A loss with ``from_logits=False`` (the book's setting)
            receives softmax probabilities instead of logits.
        optimizer: ``optimizer(params) -> torch.optim.Optimizer``, e.g.
            ``functools.partial(torch.optim.SGD, lr=0.1)`` (Hydra: ``_partial_: true``).
        scheduler: optional ``scheduler(optimizer) -> LRScheduler``, stepped every epoch.
        num_classes: for the accuracy metric.

    After ``fit``, :attr:`history` holds one dict of metrics per epoch (saved in checkpoints)
    and :attr:`status` is ``"ok"`` or ``"diverged"`` (a non-finite loss stops training).
    Checkpoints hold tensors and plain data only: ``torch.load(path, weights_only=True)`` works.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        self.net, self.loss = net, loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.wants_probabilities = getattr(loss, "from_logits", True) is False
        # "loss/train" -> MeanMetric, "acc/test" -> accuracy, ... ("/" is not a valid module name)
        self.eval_metrics = nn.ModuleDict()
        for s in SPLITS:
            # nan_strategy=nan: a NaN batch makes the mean NaN (visible, so divergence is caught).
            # ("disable" would do that too, but torchmetrics 1.9 then drops the weights.)
            self.eval_metrics[f"loss_{s}"] = MeanMetric(nan_strategy=math.nan)
            self.eval_metrics[f"acc_{s}"] = MulticlassAccuracy(
                num_classes, average="micro", validate_args=False
            )
        self.history: list[dict[str, float]] = []
        self.status = "ok"
        self._splits: list[str] = []  # set by on_validation_epoch_start

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return self.loss(logits.softmax(dim=1) if self.wants_probabilities else logits, y)

    # -- training -----------------------------------------------------------------------------

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        return self._loss(self.net(x), y)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # batch/loss at the first step and every log_every_n_steps after: one host sync there,
        # none on the other steps.
        step = self.global_step
        if (step - 1) % self.trainer.log_every_n_steps:
            return
        value = outputs["loss"].item()
        for logger in self.loggers:
            logger.log_metrics({"batch/loss": value}, step=step)
        # every DDP rank reaches this step: stop all of them if any one's loss is not finite
        if self.trainer.strategy.reduce_boolean_decision(not math.isfinite(value), all=False):
            self._diverged(f"batch/loss={value} at step {step}")

    def _diverged(self, why: str) -> None:
        if self.status != "diverged":
            rank_zero_warn(f"Training diverged ({why}): stopping this run.")
        self.status = "diverged"
        self.trainer.should_stop = True

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    # -- epoch curves -------------------------------------------------------------------------

    def on_validation_epoch_start(self) -> None:
        # the split of each dataloader_idx, read once per evaluation, not once per batch
        loaders = self.trainer.val_dataloaders
        if not isinstance(loaders, dict) or not set(loaders) <= set(SPLITS):
            raise TypeError(
                f"val_dataloader() must return a dict with keys among {SPLITS}, one fixed-order "
                f"loader per split to measure (MNISTDataModule does), got {type(loaders).__name__}"
            )
        self._splits = list(loaders)

    def validation_step(
        self, batch: tuple[Tensor, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        x, y = batch
        split = self._splits[dataloader_idx]
        logits = self.net(x)
        self.eval_metrics[f"loss_{split}"].update(self._loss(logits, y), weight=len(y))
        self.eval_metrics[f"acc_{split}"].update(logits, y)

    def on_validation_epoch_end(self) -> None:
        metrics: dict[str, Tensor] = {}
        for split in self._splits:
            # compute() syncs the sums across DDP processes: each sample counted exactly once
            for kind in ("loss", "acc"):
                metric = self.eval_metrics[f"{kind}_{split}"]
                metrics[f"{kind}/{split}"] = metric.compute()
                metric.reset()
        if "acc/train" in metrics and "acc/test" in metrics:
            metrics["gap/acc"] = metrics["acc/train"] - metrics["acc/test"]
        # For callbacks that monitor a metric (ModelCheckpoint(monitor=...), EarlyStopping) and
        # the progress bar; the loggers get the epoch-indexed values below. The values are
        # already global after compute(): sync_dist only tells Lightning so.
        self.log_dict(metrics, logger=False, sync_dist=True, prog_bar=True)

        if self.trainer.sanity_checking:
            if self.history:
                return  # resumed from a checkpoint: epoch 0 was measured by the first run
            if self.trainer.num_sanity_val_steps != float("inf"):
                rank_zero_warn("epoch 0 is not logged: set trainer.num_sanity_val_steps=-1")
                return
            epoch = 0
        else:
            epoch = self.current_epoch + 1
        values = {k: v.item() for k, v in metrics.items()}
        self.history.append({"epoch": epoch, **values})
        for logger in self.loggers:
            logger.log_metrics(values, step=epoch)
        if not all(math.isfinite(v) for v in values.values()):
            self._diverged(f"non-finite epoch metrics at epoch {epoch}")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """``trainer.test(module, datamodule)``: loss and accuracy on the test loader."""
        x, y = batch
        logits = self.net(x)
        self.eval_metrics["loss_test"].update(self._loss(logits, y), weight=len(y))
        self.eval_metrics["acc_test"].update(logits, y)

    def on_test_epoch_end(self) -> None:
        for kind in ("loss", "acc"):
            metric = self.eval_metrics[f"{kind}_test"]
            self.log(f"{kind}/test", metric.compute(), sync_dist=True)
            metric.reset()

    def final_metrics(self) -> dict[str, float]:
        """The HPARAMS metrics: last test accuracy/loss, best test accuracy, last train-test gap."""
        if not self.history:
            return {}
        last = self.history[-1]
        return {
            "hp/test_acc": last["acc/test"],
            "hp/test_loss": last["loss/test"],
            "hp/best_test_acc": max(h["acc/test"] for h in self.history),
            "hp/gap_acc": last.get("gap/acc", math.nan),
        }

    # -- checkpoints --------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["losslab"] = {"history": self.history, "status": self.status}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("losslab", {})
        self.history = list(state.get("history", []))
        self.status = state.get("status", "ok")
