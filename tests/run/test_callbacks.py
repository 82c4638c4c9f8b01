"""The callbacks losslab-train adds, in this process with stand-ins for the trainer and the
module: the epoch lines (which epochs print, once each, in which words), the checkpoint names
that count epochs from 1, and the direction a monitored metric gets better in (checkpoints,
early stopping)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from losslab.names import EPOCH_TIME
from losslab.run.callbacks import EarlyStopping, EpochCheckpoint, EpochLog


def point(epoch: int, **more: float) -> dict:
    return {"epoch": epoch, "acc/train": 0.5 + epoch / 10, "loss/train": 1.0 - epoch / 10,
            "acc/test": 0.4 + epoch / 10, "loss/test": 1.5 - epoch / 10, **more}  # fmt: skip


@pytest.fixture
def lines() -> Iterator[list[str]]:
    """The messages of the ``losslab`` logger (which does not propagate to the root logger)."""
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("losslab")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield messages
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_each_epoch_prints_once_with_each_split_it_measured(lines):
    log = EpochLog(console=False)
    trainer = SimpleNamespace(ckpt_path=None, is_global_zero=True)
    module = SimpleNamespace(history=[point(0)])
    log.on_train_start(trainer, module)
    module.history.append(point(1, **{"nll/test": 0.25, "ece/test": 0.0312, EPOCH_TIME: 1.04}))
    log.on_train_epoch_end(trainer, module)
    log.on_train_end(trainer, module)  # the same last point: not again
    module.history.append({**point(2), "acc/val": 0.75, "loss/val": 0.6})
    log.on_train_end(trainer, module)
    assert lines == [
        "epoch   0  |  train acc 0.5000 loss 1.0000  |  test acc 0.4000 loss 1.5000",
        "epoch   1  |  train acc 0.6000 loss 0.9000  |  test acc 0.5000 loss 1.4000  |  "
        "test nll 0.2500 ece 0.0312  |  1.0 s",
        "epoch   2  |  train acc 0.7000 loss 0.8000  |  val acc 0.7500 loss 0.6000  |  "
        "test acc 0.6000 loss 1.3000",
    ]


def test_a_resumed_run_prints_only_the_epochs_after_its_checkpoint(lines):
    log = EpochLog(console=True)
    module = SimpleNamespace(history=[point(0), point(1), point(2)])
    log.on_train_start(SimpleNamespace(ckpt_path="last.ckpt", is_global_zero=True), module)
    assert lines == []
    module.history.append(point(3))
    log.on_train_epoch_end(SimpleNamespace(ckpt_path="last.ckpt", is_global_zero=True), module)
    assert lines == ["epoch   3  |  train acc 0.8000 loss 0.7000  |  test acc 0.7000 loss 1.2000"]


def test_a_fresh_run_from_a_checkpoints_weights_prints_its_epoch_zero(lines):
    log = EpochLog(console=True)
    log.on_train_start(SimpleNamespace(ckpt_path=None, is_global_zero=True),
                       SimpleNamespace(history=[point(0)]))  # fmt: skip
    assert len(lines) == 1
    log.on_train_start(SimpleNamespace(ckpt_path="x.ckpt", is_global_zero=True),
                       SimpleNamespace(history=[]))  # fmt: skip
    assert len(lines) == 1


def test_only_rank_zero_prints(lines):
    log = EpochLog(console=True)
    log.on_train_start(SimpleNamespace(ckpt_path=None, is_global_zero=False),
                       SimpleNamespace(history=[point(0)]))  # fmt: skip
    assert lines == []
    assert log.console is True


def test_a_checkpoint_is_named_by_the_epochs_it_holds(tmp_path):
    checkpoint = EpochCheckpoint(dirpath=tmp_path)
    assert checkpoint.format_checkpoint_name({"epoch": 4, "step": 3000}) == str(
        tmp_path / "epoch=5-step=3000.ckpt"
    )
    named = EpochCheckpoint(dirpath=tmp_path, filename="best-{step}")
    assert named.format_checkpoint_name({"step": 7}) == str(tmp_path / "best-step=7.ckpt")
    assert named.format_checkpoint_name({"step": 7}, ver=2) == str(tmp_path / "best-step=7-v2.ckpt")


@pytest.mark.parametrize(
    ("monitor", "mode"),
    [("acc/val", "max"), ("acc/train_true", "max"), ("loss/val", "min"), ("ece/val", "min"),
     ("gap/acc", "min"), ("memo/train", "min")],
)  # fmt: skip
def test_a_monitored_checkpoint_keeps_the_best_epoch_in_the_metrics_direction(
    tmp_path, monitor, mode
):
    """With a monitor, ``last.ckpt`` is a file of its own (a link would point at the best
    epoch's file, and a resume goes on from the last); mode follows the metric unless given."""
    checkpoint = EpochCheckpoint(dirpath=tmp_path, monitor=monitor, save_last="link", save_top_k=1)
    assert (checkpoint.monitor, checkpoint.mode, checkpoint.save_last) == (monitor, mode, True)
    other = "min" if mode == "max" else "max"
    assert EpochCheckpoint(dirpath=tmp_path, monitor=monitor, mode=other).mode == other


def test_without_a_monitor_the_checkpoint_is_the_last_epoch_and_last_ckpt_a_link(tmp_path):
    checkpoint = EpochCheckpoint(dirpath=tmp_path, save_last="link", save_top_k=1)
    assert (checkpoint.monitor, checkpoint.save_last) == (None, "link")
    assert EpochCheckpoint(dirpath=tmp_path, monitor=None, mode=None).monitor is None


@pytest.mark.parametrize(("monitor", "mode"), [("acc/val", "max"), ("loss/val", "min")])
def test_early_stopping_waits_for_the_metric_to_get_better_in_its_direction(monitor, mode):
    stopping = EarlyStopping(monitor=monitor, patience=2)
    assert (stopping.monitor, stopping.mode, stopping.patience) == (monitor, mode, 2)
    other = "min" if mode == "max" else "max"
    assert EarlyStopping(monitor=monitor, mode=other).mode == other


def test_an_epoch_line_the_progress_bar_would_garble_stays_off_the_console():
    from losslab.run.console import _ConsoleFilter

    def record(**extra) -> logging.LogRecord:
        made = logging.LogRecord("losslab", logging.INFO, __file__, 1, "epoch   1", None, None)
        made.__dict__.update(extra)
        return made

    console = _ConsoleFilter()
    assert console.filter(record()) is True  # every other message is shown
    assert console.filter(record(console=True)) is True
    assert console.filter(record(console=False)) is False


# -- on a tiny real run ----------------------------------------------------------------------------

TINY_VAL = ("data.train_size=500", "data.val_size=500", "~hydra.callbacks.report")


@pytest.mark.slow
def test_a_monitored_run_keeps_its_best_epoch_and_resumes_from_its_last(tmp_path, data_dir):
    import json

    import torch
    from conftest import ok, train

    ok(train(*TINY_VAL, "trainer.max_epochs=3", "optimizer.lr=3", "callbacks.model_checkpoint.monitor=acc/val",
             "hydra.run.dir=r", cwd=tmp_path))  # fmt: skip
    history = json.loads((tmp_path / "r" / "result.json").read_text())["history"]
    best = max(range(1, 4), key=lambda e: (history[e]["acc/val"], -e))
    kept = sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir())
    assert kept == sorted([f"epoch={best}-step={best * 5}.ckpt", "last.ckpt"])
    assert not (tmp_path / "r" / "checkpoints" / "last.ckpt").is_symlink()  # a file of its own
    last = torch.load(tmp_path / "r" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 15  # what a resume goes on from: the last epoch, not the best


@pytest.mark.slow
def test_early_stopping_ends_the_run_once_validation_stops_getting_better(tmp_path, data_dir):
    import json

    from conftest import ok, train

    ok(train(*TINY_VAL, "trainer.max_epochs=6", "callbacks=[default,early_stopping]",
             "callbacks.early_stopping.patience=1", "callbacks.early_stopping.min_delta=0.5",
             "hydra.run.dir=r", cwd=tmp_path))  # fmt: skip
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    # epoch 1 gains > 0.5 over nothing; epoch 2 gains < 0.5 over epoch 1: one epoch of patience
    assert result["epochs"] == 2
    assert "`max_epochs=6` reached" not in (tmp_path / "r" / "train.log").read_text()
