"""The LightningModule: trains any net with any loss and measures the epoch curves.

Curves (the book's method): after every training epoch, and once before training as epoch 0,
the model is evaluated in eval mode on every loader of ``val_dataloader()`` (for
:class:`~losslab.lit.data.MNISTDataModule`: the whole training set, the optional validation split
and the test set), and the metrics of :mod:`losslab.lit.metrics` are written per split
(``loss/<split>``, ``acc/<split>``, ``nll/<split>``, ``brier/<split>``, ``ece/<split>``), with
``gap/acc`` (train - test accuracy; under label noise the true-label train accuracy - test),
``time/epoch`` (seconds of the epoch's training and evaluation) and ``lr`` (the learning rate
the epoch trained with), the epoch as the x axis. Epoch 0 is measured by Lightning's sanity
check, so the trainer must run it in full (``num_sanity_val_steps=-1``, as every config in ``conf/trainer``
does).

The module owns its input preprocessing: it takes raw MNIST images (uint8 0-255, or floats in
[0, 1]) and scales them (``normalize``: standardised with the training pixels' mean and standard
deviation), so a checkpoint classifies raw images on its own
(``Classifier.load_from_checkpoint(path)(images)``, ``trainer.predict``).

Several optimizer steps per training step (``trainer.steps_per_call=K > 1``, see
:mod:`losslab.lit.trainer`): the train loader yields chunks of K batches and
:meth:`training_step` runs K optimizer steps on them with manual optimization. The steps, their
order and their ops are those of K = 1, so the numbers are the same bit for bit on CPU; what is
saved is Lightning's per-step machinery, paid once per chunk.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from losslab.lit.metrics import EpochMetrics, final_metrics
from losslab.lit.spec import Spec, make
from losslab.losses import CEELoss
from losslab.names import (
    BATCH_LOSS,
    EPOCH_TIME,
    GAP,
    KINDS,
    LR,
    PIXEL_MEAN,
    PIXEL_STD,
    SPLITS,
    TEST_ACC,
    TRAIN_ACC,
    TRUE_ACC,
    VAL_ACC,
)

__all__ = ["LOSS_INPUTS", "Classifier", "scale_pixels"]

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]
LOSS_INPUTS = ("auto", "logits", "probabilities")


def scale_pixels(x: Tensor, normalize: bool = True) -> Tensor:
    """Raw images as the net takes them: uint8 pixels 0-255 (or floats in [0, 1]) as float32,
    scaled to [0, 1] and, with ``normalize``, standardised with MNIST's training mean and
    standard deviation (:data:`~losslab.names.PIXEL_MEAN`, :data:`~losslab.names.PIXEL_STD`).

    Example:
        >>> scale_pixels(torch.tensor([0, 255], dtype=torch.uint8), normalize=False)
        tensor([0., 1.])
    """
    # one new float32 buffer, then in place: out-of-place ops on large batches cost page faults
    # (torch.add(shift, x, alpha=scale) is 3x slower at 10k images); copy=True: a float32 x
    # would otherwise be the buffer itself, and the caller's images scaled in place
    top = 255.0 if x.dtype == torch.uint8 else 1.0
    x = x.to(torch.float32, copy=True)
    if normalize:
        return x.mul_(1.0 / (top * PIXEL_STD)).sub_(PIXEL_MEAN / PIXEL_STD)
    return x.mul_(1.0 / top)


class Classifier(L.LightningModule):
    """Classifier over ``net`` trained with ``loss``.

    Each part is either the object itself or the plain config that builds it (a mapping with
    ``_target_``, as in ``conf/``; see :func:`make`). ``losslab-train`` builds the parts itself
    and saves their configs as the module's hyperparameters, so its checkpoints rebuild the
    module alone: ``Classifier.load_from_checkpoint(path)``.

    Args:
        net: maps a batch of inputs to logits ``(N, C)``.
        loss: ``loss(output, target)``.
        optimizer: ``optimizer(params) -> torch.optim.Optimizer``, e.g.
            ``functools.partial(torch.optim.SGD, lr=0.1)`` (a config: ``_partial_: true``).
        scheduler: optional ``scheduler(optimizer) -> LRScheduler``.
        scheduler_interval: ``"epoch"`` or ``"step"`` (once per optimizer step).
        loss_input: what the loss receives: ``"logits"`` (the net's raw outputs),
            ``"probabilities"`` (their softmax) or ``"auto"``: probabilities for a loss with
            ``from_logits=False`` (the book's setting), else logits. ``"logits"`` with
            ``SSELoss(from_logits=False)`` is the square loss on raw logits (Hui & Belkin).
        normalize: the input scaling (:func:`scale_pixels`): raw pixels standardised (True)
            or only scaled to [0, 1] (False, the book's setting).

    ``module(images)`` gives the logits of raw images ``(N, 1, 28, 28)`` or ``(N, 784)``;
    ``trainer.predict`` gives class probabilities. The optimizer steps per training step are the
    trainer's (``losslab.lit.trainer.Trainer(steps_per_call=K)``; 1 under a plain Lightning Trainer).

    After ``fit``, :attr:`history` holds one dict of metrics per epoch (saved in checkpoints),
    :attr:`status` is ``"ok"`` or ``"diverged"`` (a non-finite loss stops training) and
    :attr:`reliability` holds the last evaluation's reliability bins per split and :attr:`hits`
    which of its samples it got right.
    Checkpoints hold tensors and plain data only: ``torch.load(path, weights_only=True)`` works.
    """

    def __init__(
        self,
        net: nn.Module | Spec,
        loss: nn.Module | Spec,
        optimizer: OptimizerFactory | Spec,
        scheduler: SchedulerFactory | Spec | None = None,
        scheduler_interval: str = "epoch",
        loss_input: str = "auto",
        normalize: bool = True,
    ) -> None:
        super().__init__()
        if loss_input not in LOSS_INPUTS:
            raise ValueError(f"loss_input must be one of {LOSS_INPUTS}, got {loss_input!r}")
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(
                f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}"
            )
        if not isinstance(normalize, bool):
            raise ValueError(f"normalize must be true or false, got {normalize!r}")
        parts = {"net": net, "loss": loss, "optimizer": optimizer, "scheduler": scheduler}
        if all(isinstance(p, Mapping) or p is None for p in parts.values()):
            # plain data: the checkpoint rebuilds them (named, not read from this frame)
            self.save_hyperparameters(
                {
                    **parts,
                    "scheduler_interval": scheduler_interval,
                    "loss_input": loss_input,
                    "normalize": normalize,
                },
                logger=False,
            )
        self.net, self.loss = make(net), make(loss)
        self.optimizer_factory, self.scheduler_factory = make(optimizer), make(scheduler)
        self.scheduler_interval = scheduler_interval
        from_logits = getattr(self.loss, "from_logits", True)
        if loss_input == "probabilities" and from_logits:
            raise ValueError(
                "loss_input='probabilities' with loss.from_logits=True would apply the softmax "
                "twice: set loss.from_logits=false, or classifier.loss_input=auto"
            )
        if loss_input == "logits" and not from_logits and isinstance(self.loss, CEELoss):
            raise ValueError(
                "loss_input='logits' with CEELoss(from_logits=False) would take the log of raw "
                "outputs: CEE needs loss.from_logits=true (logits in) or classifier.loss_input=auto "
                "(softmax in)"
            )
        if loss_input == "auto":
            loss_input = "logits" if from_logits else "probabilities"
        self.wants_probabilities = loss_input == "probabilities"
        self.normalize = normalize
        self.eval_metrics = EpochMetrics(SPLITS)
        self.history: list[dict[str, float]] = []
        self.status = "ok"
        self.reliability: dict[str, dict[str, list[float]]] = {}
        self.hits: dict[str, Tensor] = {}
        self._splits: list[str] = []  # set by on_validation_epoch_start
        self._epoch_start = math.nan
        self._epoch_lr: float | None = None  # set by on_train_epoch_start

    def forward(self, x: Tensor) -> Tensor:
        """The logits of raw images ``x`` (uint8 0-255 or floats in [0, 1])."""
        return self.net(scale_pixels(x, self.normalize))

    def setup(self, stage: str) -> None:
        # K optimizer steps per training step, as the trainer says (losslab.lit.trainer.Trainer)
        self.automatic_optimization = getattr(self.trainer, "steps_per_call", 1) == 1

    def _loss(self, logits: Tensor, y: Tensor) -> Tensor:
        return self.loss(logits.softmax(dim=1) if self.wants_probabilities else logits, y)

    # -- training -----------------------------------------------------------------------------

    def training_step(self, batch: Any, batch_idx: int) -> Tensor | None:
        if self.automatic_optimization:  # K = 1: Lightning runs the step (closure, AMP, ...)
            x, y = batch
            return self._loss(self(x), y)
        # K > 1: the same K steps, zero_grad -> forward -> backward -> step, done here
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers() if self.scheduler_interval == "step" else None
        for x, y in batch:
            optimizer.zero_grad()
            loss = self._loss(self(x), y)
            self.manual_backward(loss)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if self._after_step(loss) or self._max_steps_reached():
                break
        return None

    def on_train_start(self) -> None:
        # a run resumed mid-epoch starts its clock here (on_train_epoch_start is not called)
        self.on_train_epoch_start()

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()
        # read now: Lightning steps an epoch-interval scheduler before the epoch's evaluation,
        # which would log the next epoch's lr
        self._epoch_lr = self._lr()

    def _lr(self) -> float | None:
        optimizers = self.trainer.optimizers
        return optimizers[0].param_groups[0]["lr"] if optimizers else None

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.automatic_optimization:
            self._after_step(outputs["loss"])
        if (
            self._max_steps_reached()
            and not self.trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        ):
            # max_steps ends this epoch early: ask for the stop, so Lightning evaluates these
            # weights (the epoch's point) before the checkpoint is written
            self.trainer.should_stop = True

    def on_train_epoch_end(self) -> None:
        if not self.automatic_optimization and self.scheduler_interval == "epoch":
            scheduler = self.lr_schedulers()
            if scheduler is not None:
                scheduler.step()

    def _max_steps_reached(self) -> bool:
        return 0 < self.trainer.max_steps <= self.global_step

    def _after_step(self, loss: Tensor) -> bool:
        """After optimizer step ``global_step``: write ``batch/loss`` every ``log_every_n_steps``
        steps (the first included), and stop at the first non-finite loss. Returns True to stop.

        One process: every step is checked (``.item()`` on the CPU costs nothing). Under DDP the
        logged value is the mean over the processes, i.e. the global batch's loss, and the check
        runs on it, at the logged steps (a collective on every step would cost more than it saves).
        """
        step = self.global_step
        log_now = (step - 1) % self.trainer.log_every_n_steps == 0
        distributed = self.trainer.world_size > 1
        if distributed and not log_now:
            return False
        value = loss.detach()
        if distributed:
            value = self.trainer.strategy.reduce(value, reduce_op="mean")
        value = value.item()
        if log_now:
            for logger in self.loggers:
                logger.log_metrics({BATCH_LOSS: value}, step=step)
        if not math.isfinite(value):
            self._diverged(f"batch/loss={value} at step {step}")
            return True
        return False

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
            "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval},
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

    def _update_metrics(self, split: str, x: Tensor, y: Tensor, *true_y: Tensor) -> None:
        logits = self(x)
        self.eval_metrics.update(split, logits, y, self._loss(logits, y), *true_y)

    def validation_step(
        self, batch: tuple[Tensor, ...], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        """``(x, y)``, or ``(x, y, true y)`` for a split with label noise."""
        self._update_metrics(self._splits[dataloader_idx], *batch)

    def _compute(self, split: str) -> dict[str, Tensor]:
        """The split's metrics (synced across DDP processes: each sample counted once); resets."""
        values, self.reliability[split] = self.eval_metrics.compute(split)
        self.hits[split] = self.eval_metrics.hits(split)
        return values

    def on_validation_epoch_end(self) -> None:
        metrics: dict[str, Tensor] = {}
        for split in self._splits:
            metrics.update(self._compute(split))
        if TRAIN_ACC in metrics and TEST_ACC in metrics:
            # overfitting: what the model gets right on its training images and not on new ones;
            # under label noise on their true labels (the noisy ones are partly unlearnable)
            metrics[GAP] = metrics.get(TRUE_ACC, metrics[TRAIN_ACC]) - metrics[TEST_ACC]
        # For callbacks that monitor a metric (ModelCheckpoint(monitor="acc/val"), EarlyStopping)
        # and the progress bar; the loggers get the epoch-indexed values below. The values are
        # already global after compute(): sync_dist only tells Lightning so.
        shown = {k: v for k, v in metrics.items() if k in (VAL_ACC, TEST_ACC)}
        rest = {k: v for k, v in metrics.items() if k not in shown}
        self.log_dict(shown, logger=False, sync_dist=True, prog_bar=True)
        self.log_dict(rest, logger=False, sync_dist=True)

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
        if epoch > 0:
            values[EPOCH_TIME] = time.perf_counter() - self._epoch_start
        # the lr the epoch trained with (its first step's); epoch 0: the initial one
        lr = self._epoch_lr if epoch > 0 else self._lr()
        if lr is not None:
            values[LR] = lr
        self.history.append({"epoch": epoch, "step": self.global_step, **values})
        for logger in self.loggers:
            logger.log_metrics(values, step=epoch)
        if not all(math.isfinite(v) for k, v in values.items() if k.split("/")[0] in KINDS):
            self._diverged(f"non-finite epoch metrics at epoch {epoch}")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        """``trainer.test(module, datamodule)``: the test split's metrics, as the curves have them."""
        self._update_metrics("test", *batch)

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        """Class probabilities ``(N, C)`` of a batch of raw images (or of ``(images, labels)``)."""
        x = batch[0] if isinstance(batch, tuple | list) else batch
        return self(x).softmax(dim=1)

    def on_test_epoch_end(self) -> None:
        for key, value in self._compute("test").items():
            self.log(key, value, sync_dist=True)

    def final_metrics(self) -> dict[str, float]:
        """The HPARAMS metrics of the last epoch (:func:`losslab.lit.metrics.final_metrics`)."""
        return final_metrics(self.history)

    # -- checkpoints --------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["losslab"] = {"history": self.history, "status": self.status}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # a checkpoint from before the module scaled its input: its data module did
        if "normalize" not in checkpoint.get("hyper_parameters", {"normalize": None}):
            self.normalize = checkpoint.get("datamodule_hyper_parameters", {}).get(
                "normalize", True
            )
        state = checkpoint.get("losslab", {})
        self.history = list(state.get("history", []))
        self.status = state.get("status", "ok")
