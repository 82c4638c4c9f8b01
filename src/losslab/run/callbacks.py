"""The Lightning callbacks ``losslab-train`` adds to every run: the epoch lines, the TensorBoard
layout and HPARAMS, and checkpoints named by the epochs they hold."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import lightning.pytorch.callbacks
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.core.saving import save_hparams_to_yaml
from lightning.pytorch.loggers import TensorBoardLogger

from losslab import names
from losslab.lit.classifier import Classifier
from losslab.names import EPOCH_TIME, SPLITS, tag
from losslab.run import tb

__all__ = ["EarlyStopping", "EpochCheckpoint", "EpochLog", "TensorBoardSummary"]

log = logging.getLogger("losslab")


class EpochCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose file names count epochs as the console, the curves and
    ``result.json`` do: ``epoch=5-step=3000.ckpt`` holds the weights after 5 epochs (Lightning
    names it ``epoch=4``, its 0-based index). A stop mid-epoch (``max_steps``) names the epoch
    it stopped in, as its last curve point does.

    With a ``monitor`` (``acc/val``: keep the best epoch's weights) ``mode`` follows the metric
    when left out (:func:`losslab.names.mode`), and ``last.ckpt`` is a file of its own, written
    every epoch: a resume must go on from the last epoch, and Lightning 2.6 writes ``last.ckpt``
    (or links it) only in an epoch whose weights are among the best."""

    def __init__(
        self, *args: Any, monitor: str | None = None, mode: str | None = None, **kwargs: Any
    ) -> None:
        if monitor is not None:  # saved once the epoch's evaluation is done, last.ckpt after it
            kwargs.setdefault("save_on_train_epoch_end", False)
            if kwargs.get("save_last") == "link":
                kwargs["save_last"] = True
        super().__init__(*args, monitor=monitor, mode=mode or names.mode(monitor or ""), **kwargs)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        # the seams: _should_skip_saving_checkpoint, _last_global_step_saved, _save_last_checkpoint,
        # _monitor_candidates (tests/test_contracts.py)
        if (
            self.monitor is None
            or not self.save_last
            or self._should_skip_saving_checkpoint(trainer)
        ):
            return
        if self._last_global_step_saved != trainer.global_step:  # not among the best this time
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def format_checkpoint_name(
        self,
        metrics: dict[str, Any],
        filename: str | None = None,
        ver: int | None = None,
        prefix: str | None = None,
    ) -> str:
        if "epoch" in metrics:
            metrics = {**metrics, "epoch": metrics["epoch"] + 1}
        return super().format_checkpoint_name(metrics, filename, ver, prefix)


class EarlyStopping(lightning.pytorch.callbacks.EarlyStopping):
    """Lightning's ``EarlyStopping`` with ``mode`` following the metric when left out
    (:func:`losslab.names.mode`: ``max`` for an accuracy)."""

    def __init__(self, monitor: str, mode: str | None = None, **kwargs: Any) -> None:
        super().__init__(monitor=monitor, mode=mode or names.mode(monitor), **kwargs)


class EpochLog(Callback):
    """One line per epoch (epoch 0 = before training) to ``train.log``, and to the console
    unless a progress bar is showing."""

    def __init__(self, console: bool) -> None:
        self.console, self.printed = console, -1

    def on_train_start(self, trainer: L.Trainer, module: Classifier) -> None:
        if trainer.ckpt_path is not None and module.history:  # resumed: logged by the first start
            self.printed = module.history[-1]["epoch"]
        self._log_last(trainer, module)  # epoch 0, measured by the sanity check

    def _log_last(self, trainer: L.Trainer, module: Classifier) -> None:
        if not (trainer.is_global_zero and module.history):
            return
        h = module.history[-1]
        if h["epoch"] <= self.printed:
            return
        self.printed = h["epoch"]
        parts = [f"epoch {h['epoch']:>3}"]
        for split in SPLITS:
            if tag("acc", split) in h:
                acc, loss = h[tag("acc", split)], h[tag("loss", split)]
                parts.append(f"{split} acc {acc:.4f} loss {loss:.4f}")
        if tag("nll", "test") in h:
            parts.append(f"test nll {h[tag('nll', 'test')]:.4f} ece {h[tag('ece', 'test')]:.4f}")
        if EPOCH_TIME in h:
            parts.append(f"{h[EPOCH_TIME]:.1f} s")
        log.info("  |  ".join(parts), extra={"console": self.console})

    on_train_epoch_end = _log_last  # runs after the epoch's evaluation
    on_train_end = _log_last  # a last point after a stop mid-epoch (max_steps, divergence)


class TensorBoardSummary(Callback):
    """The chart layout at the start; HPARAMS (experiment, this run's values and status, the
    ``hp/*`` metrics) at the end: the table gets the ``columns`` of ``hparams``
    (:func:`losslab.run.tb.hparams_layout`), ``hparams.yaml`` all of them. ``replay``: a new
    folder started from another run's checkpoint gets that run's curves first."""

    def __init__(
        self,
        hparams: dict[str, Any],
        columns: list[str],
        differs: list[str],
        domains: dict,
        replay: bool = False,
    ) -> None:
        self.hparams, self.columns, self.differs, self.domains = hparams, columns, differs, domains
        self.replay = replay

    def _writers(self, trainer: L.Trainer) -> list[TensorBoardLogger]:
        if not trainer.is_global_zero:
            return []
        return [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]

    def on_fit_start(self, trainer: L.Trainer, module: Classifier) -> None:
        for logger in self._writers(trainer):
            logger.experiment.add_custom_scalars(tb.OVERFITTING_LAYOUT)

    def on_train_start(self, trainer: L.Trainer, module: Classifier) -> None:
        # the checkpoint's history is restored by now: its curves come along into the new folder
        for logger in self._writers(trainer) if self.replay else []:
            for point in module.history:
                values = {k: v for k, v in point.items() if k not in ("epoch", "step")}
                logger.log_metrics(values, step=point["epoch"])

    def on_fit_end(self, trainer: L.Trainer, module: Classifier) -> None:
        writers = self._writers(trainer)
        if not writers:
            return
        epochs = module.history[-1]["epoch"] if module.history else 0
        hparams = {**self.hparams, "epochs": epochs, "status": module.status}
        table = {n: hparams[n] for n in [*self.columns, "epochs", "status"]}
        metrics = module.final_metrics()
        experiment = tb.experiment_summary(table, list(metrics), self.differs, self.domains)
        start, end = tb.session_summaries(table, module.status)
        for logger in writers:
            logger.hparams.update(hparams)
            save_hparams_to_yaml(Path(logger.log_dir) / "hparams.yaml", logger.hparams)
            writer = logger.experiment
            for summary in (experiment, start):
                writer.file_writer.add_summary(summary)
            for name, value in metrics.items():
                writer.add_scalar(name, value, epochs)
            writer.file_writer.add_summary(end)
            writer.flush()
