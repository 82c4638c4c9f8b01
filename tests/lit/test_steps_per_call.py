"""Several optimizer steps per Lightning training step (``losslab.lit.trainer.Trainer(
steps_per_call=K)``): the same numbers as K = 1 bit for bit, the same step counting, logging,
divergence stop, max_steps, schedulers and mid-epoch resume; ``auto`` is K = 10 where that is
exact and 1 where Lightning's own step is needed; what K > 1 cannot do is refused by name."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger

from losslab import CEELoss
from losslab.lit.classifier import Classifier
from losslab.lit.data import MNISTDataModule
from losslab.lit.trainer import (
    Trainer,
)
from losslab.models import MLP

# 520 images in batches of 50: 11 batches an epoch, the last one of 20 images; with K = 3 the
# chunks are 3, 3, 3, 2 batches: a partial chunk and a partial batch.
DATA = {"train_size": 520, "batch_size": 50, "eval_batch_size": 5000}


class MemoryLogger(Logger):
    """Every ``log_metrics`` call, in order: ``[(step, {tag: value})]``."""

    def __init__(self) -> None:
        super().__init__()
        self.points: list[tuple[int, dict[str, float]]] = []

    name = "memory"
    version = "0"

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.points.append((step, {k: v for k, v in metrics.items() if k != "time/epoch"}))

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


class NaNAt(CEELoss):
    """CEE that returns NaN on the ``at``-th training call (the ``at``-th optimizer step)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = super().forward(input, target)
        if torch.is_grad_enabled():
            self.calls += 1
            if self.calls == self.at:
                return loss * float("nan")
        return loss


def fit(
    data_dir: Path,
    k: int,
    *,
    epochs: int = 2,
    loss: torch.nn.Module | None = None,
    scheduler: Any = None,
    callbacks: list | None = None,
    ckpt_path: str | None = None,
    root: Path | None = None,
    data: dict | None = None,
    plain: bool = False,
    **trainer_kwargs: Any,
) -> tuple[Classifier, L.Trainer, MemoryLogger]:
    """Fit under ``Trainer(steps_per_call=k)``; ``plain``: under ``lightning.Trainer`` (no
    ``steps_per_call``: one step per call)."""
    torch.manual_seed(0)
    module = Classifier(
        MLP(hidden=(32,)),
        loss or CEELoss(),
        optimizer=functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9),
        scheduler=scheduler,
        scheduler_interval="step" if scheduler else "epoch",
    )
    dm = MNISTDataModule(data_dir, download=False, **(data or DATA))
    logger = MemoryLogger()
    trainer = (L.Trainer if plain else functools.partial(Trainer, steps_per_call=k))(
        accelerator="cpu",
        max_epochs=epochs,
        logger=logger,
        callbacks=callbacks or [],
        enable_checkpointing=bool(callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=-1,
        deterministic=True,
        log_every_n_steps=3,
        use_distributed_sampler=False,
        default_root_dir=root,
        **trainer_kwargs,
    )
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return module, trainer, logger


def params(module: Classifier) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items() if k.startswith("net.")}


@pytest.fixture(scope="module")
def k1(data_dir):
    return fit(data_dir, 1)


@pytest.mark.parametrize("k", [3, 10])
def test_k_steps_per_call_give_the_same_parameters_curves_and_batch_losses(k1, k, data_dir):
    m1, t1, log1 = k1
    mk, tk, logk = fit(data_dir, k)
    assert tk.global_step == t1.global_step == 22  # 2 epochs of 11 optimizer steps
    for name, tensor in params(m1).items():
        assert torch.equal(params(mk)[name], tensor), name  # bit for bit
    assert logk.points == log1.points  # every tag, step and value: curves and batch/loss
    assert [s for s, m in log1.points if "batch/loss" in m] == [1, 4, 7, 10, 13, 16, 19, 22]
    assert [h["epoch"] for h in mk.history] == [0, 1, 2]
    assert tk.steps_per_call == k
    assert not mk.automatic_optimization


def test_a_plain_lightning_trainer_runs_one_step_per_call_with_the_same_numbers(k1, data_dir):
    m1, t1, log1 = k1
    mp, tp, logp = fit(data_dir, 1, plain=True)
    assert not hasattr(tp, "steps_per_call")
    assert mp.automatic_optimization
    assert tp.global_step == t1.global_step == 22
    for name, tensor in params(m1).items():
        assert torch.equal(params(mp)[name], tensor), name
    assert logp.points == log1.points


def test_a_nan_in_step_4_of_a_chunk_of_10_stops_there_and_marks_the_run_diverged(data_dir):
    module, trainer, _logger = fit(data_dir, 10, loss=NaNAt(4))
    assert module.status == "diverged"
    assert trainer.global_step == 4  # not 10: the rest of the chunk did not run
    assert [h["epoch"] for h in module.history] == [0, 1]  # stopped in its first epoch
    assert module.history[-1]["loss/test"] != module.history[-1]["loss/test"]  # NaN


def test_max_steps_is_respected_inside_a_chunk(data_dir):
    module, trainer, _ = fit(data_dir, 10, epochs=3, max_steps=7)
    assert trainer.global_step == 7
    assert module.history[-1]["step"] == 7


def test_a_step_scheduler_steps_once_per_optimizer_step(data_dir):
    def schedule(optimizer):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))

    m1, t1, _ = fit(data_dir, 1, scheduler=schedule)
    m3, t3, _ = fit(data_dir, 3, scheduler=schedule)
    for trainer in (t1, t3):
        assert trainer.lr_scheduler_configs[0].scheduler.last_epoch == 22
    for name, tensor in params(m1).items():
        assert torch.equal(params(m3)[name], tensor), name


def test_checkpoint_names_count_optimizer_steps(data_dir, tmp_path):
    checkpoint = ModelCheckpoint(dirpath=tmp_path, save_top_k=-1)
    fit(data_dir, 10, callbacks=[checkpoint], root=tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.ckpt")) == [
        "epoch=0-step=11.ckpt",
        "epoch=1-step=22.ckpt",
    ]


class CrashAt(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step >= self.step:
            raise RuntimeError("crash")


def without_time(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "time/epoch"} for h in history]


def test_resume_from_a_mid_epoch_checkpoint_with_k_10_equals_the_uninterrupted_run(
    data_dir, tmp_path
):
    # 1000 images / 50 = 20 batches an epoch = 2 chunks of 10: the checkpoint after the first
    # chunk is 10 steps into epoch 0; the crash comes after the second
    data = {**DATA, "train_size": 1000}
    whole, t_whole, log_whole = fit(data_dir, 10, data=data)
    saver = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=10, save_top_k=-1)
    with pytest.raises(RuntimeError, match="crash"):
        fit(data_dir, 10, data=data, callbacks=[saver, CrashAt(20)], root=tmp_path)
    mid = tmp_path / "epoch=0-step=10.ckpt"
    state = torch.load(mid, weights_only=True)["loops"]["fit_loop"]["state_dict"]
    assert state["combined_loader"] == [{"epoch": 0, "consumed": 1}]  # one chunk trained on
    resumed, t_resumed, log_resumed = fit(
        data_dir, 10, data=data, ckpt_path=str(mid), root=tmp_path
    )
    assert t_resumed.global_step == t_whole.global_step == 40
    for name, tensor in params(whole).items():
        assert torch.equal(params(resumed)[name], tensor), name
    assert without_time(resumed.history) == without_time(whole.history)
    # what the resumed start logged is exactly the rest of the uninterrupted run's points
    assert log_resumed.points == [
        p for p in log_whole.points if p[0] > 10 or ("batch/loss" not in p[1] and p[0] >= 1)
    ]


@pytest.mark.parametrize(
    ("setting", "kwargs"),
    [
        ("trainer.gradient_clip_val=1.0", {"gradient_clip_val": 1.0}),
        ("trainer.accumulate_grad_batches=2", {"accumulate_grad_batches": 2}),
        ("trainer.precision=bf16-mixed", {"precision": "bf16-mixed"}),
        ("trainer.devices=2 processes", {"strategy": "ddp", "devices": 2}),
        ("trainer.overfit_batches=0.1", {"overfit_batches": 0.1}),
        ("trainer.fast_dev_run=True", {"fast_dev_run": True}),
    ],
)
def test_what_k_steps_cannot_do_is_refused_naming_both_settings(setting, kwargs):
    from losslab.errors import UsageError
    from losslab.run.config import TrainerConfig

    with pytest.raises(UsageError) as err:
        TrainerConfig(steps_per_call=10, **kwargs)
    assert str(err.value).startswith(
        f"trainer.steps_per_call=10 cannot be combined with {setting}:"
    )
    TrainerConfig(steps_per_call=1, **kwargs)  # K = 1 allows it
    TrainerConfig(steps_per_call="auto", **kwargs)  # and so does auto (then 1)
