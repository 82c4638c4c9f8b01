"""build.build: from a checked config to the run's objects, in this process (no training): the
Trainer (losslab's, with its steps per call), its loggers, callbacks and settings, the HPARAMS row,
init_from's weights, the data check and its hint."""

from __future__ import annotations

import pytest
import torch
from conftest import REPO_ROOT, compose_train
from hydra import initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from omegaconf import OmegaConf

from losslab.errors import UsageError
from losslab.lit.trainer import DEFAULT_STEPS, Trainer
from losslab.run.build import DATA_HINT, build
from losslab.run.callbacks import EpochCheckpoint, EpochLog, TensorBoardSummary


def built(tmp_path, overrides, resume_step=None, swept=None, replay=False, console=True):
    """``build`` on the config losslab-train composes from ``overrides`` (the tiny MNIST)."""
    cfg = compose_train(
        [f"data.data_dir={tmp_path}", "data.download=false", *overrides],
        output_dir=str(tmp_path / "run"),
    )
    choices = dict(HydraConfig.get().runtime.choices)
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        return cfg, build(
            cfg, choices, swept or {}, resume_step=resume_step, replay=replay, console=console
        )


def test_the_trainer_gets_the_configs_loggers_callbacks_and_settings(tiny_mnist, tmp_path):
    _, (dm, module, trainer, hparams) = built(
        tiny_mnist["root"], ["loss=sse", "optimizer.lr=0.3", "trainer.max_epochs=3"],
        swept={"loss": ["sse", "cee"]},
    )  # fmt: skip
    assert (dm.batch_size, module.hparams.optimizer["lr"]) == (100, 0.3)
    assert (trainer.max_epochs, trainer.num_sanity_val_steps) == (3, float("inf"))  # -1: all
    assert isinstance(trainer, Trainer)
    assert trainer.steps_per_call == DEFAULT_STEPS  # auto: nothing needs Lightning's own step
    assert [type(x) for x in trainer.loggers] == [TensorBoardLogger]
    assert trainer.loggers[0].log_dir.rstrip("/") == str(tiny_mnist["root"] / "run")
    assert "purge_step" not in trainer.loggers[0]._kwargs  # a new run: nothing to hide
    kinds = [type(c) for c in trainer.callbacks]
    for kind in (EpochCheckpoint, TensorBoardSummary, EpochLog):
        assert kinds.count(kind) == 1, kinds
    assert RichProgressBar not in kinds  # the tests' stdout is no terminal
    assert trainer.checkpoint_callback is not None
    assert not trainer.progress_bar_callback
    log = next(c for c in trainer.callbacks if isinstance(c, EpochLog))
    assert log.console  # no progress bar: each epoch's line is printed
    summary = next(c for c in trainer.callbacks if isinstance(c, TensorBoardSummary))
    assert summary.hparams is hparams
    assert summary.replay is False
    assert (hparams["loss"], hparams["lr"], hparams["batch_size"]) == ("sse", 0.3, 100)
    assert summary.differs == summary.columns == ["loss"]  # what the sweep sets apart
    assert summary.domains == {"loss": ["cee", "sse"]}  # the values the sweep uses, no other


def test_a_resume_skips_the_sanity_pass_and_no_group_switches_logging_and_checkpoints_off(
    tiny_mnist, tmp_path
):
    _, (_, _, trainer, _) = built(tiny_mnist["root"], [], resume_step=5, replay=True)
    assert trainer.num_sanity_val_steps == 0
    summary = next(c for c in trainer.callbacks if isinstance(c, TensorBoardSummary))
    assert summary.replay is True
    assert "purge_step" not in trainer.loggers[0]._kwargs  # a new folder: its own event file
    # a resume in place: TensorBoard hides what the interrupted start wrote past step 5
    _, (_, _, trainer, _) = built(tiny_mnist["root"], [], resume_step=5)
    assert trainer.num_sanity_val_steps == 0
    assert trainer.loggers[0]._kwargs["purge_step"] == 6
    assert next(c for c in trainer.callbacks if isinstance(c, TensorBoardSummary)).replay is False
    _, (_, _, trainer, _) = built(tiny_mnist["root"], ["logger=csv"], resume_step=5)
    assert [type(x) for x in trainer.loggers] == [CSVLogger]  # no purge_step for other loggers
    _, (_, _, trainer, _) = built(tiny_mnist["root"], ["logger=csv", "~callbacks"])
    assert [type(x) for x in trainer.loggers] == [CSVLogger]
    assert trainer.checkpoint_callback is None
    assert sorted(type(c).__name__ for c in trainer.callbacks if type(c).__module__.startswith(
        "losslab")) == ["EpochLog", "TensorBoardSummary"]  # fmt: skip
    _, (_, _, trainer, _) = built(tiny_mnist["root"], ["~logger"])
    assert trainer.loggers == []


def test_a_tty_gets_the_progress_bar_and_no_epoch_lines(tiny_mnist, monkeypatch):
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    _, (_, _, trainer, _) = built(tiny_mnist["root"], [])
    assert isinstance(trainer.progress_bar_callback, RichProgressBar)
    assert not next(c for c in trainer.callbacks if isinstance(c, EpochLog)).console
    _, (_, _, trainer, _) = built(tiny_mnist["root"], ["trainer.enable_progress_bar=false"])
    assert trainer.progress_bar_callback is None


def test_a_sweeps_job_gets_no_progress_bar_and_no_epoch_lines_on_the_console(
    tiny_mnist, monkeypatch
):
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    _, (_, _, trainer, _) = built(tiny_mnist["root"], [], console=False)
    assert trainer.progress_bar_callback is None
    assert not next(c for c in trainer.callbacks if isinstance(c, EpochLog)).console


@pytest.mark.parametrize(
    ("overrides", "steps"),
    [
        ([], DEFAULT_STEPS),
        (["trainer.steps_per_call=3"], 3),
        (["trainer.gradient_clip_val=1.0"], 1),  # auto: Lightning's own step
        (["trainer.accumulate_grad_batches=2"], 1),
        (["debug=fast"], 1),
        (["debug=overfit"], 1),
    ],
)
def test_the_trainer_runs_the_steps_per_call_its_settings_allow(tiny_mnist, overrides, steps):
    _, (_, _, trainer, _) = built(tiny_mnist["root"], overrides)
    assert trainer.steps_per_call == steps


def test_init_from_loads_the_weights_of_a_checkpoint_and_only_them(tiny_mnist, tmp_path):
    _, (_, source, _, _) = built(tiny_mnist["root"], ["seed=5"])
    with torch.no_grad():
        for p in source.parameters():
            p.fill_(0.25)
    ckpt = tmp_path / "w.ckpt"
    torch.save({"state_dict": source.state_dict()}, ckpt)
    _, (_, module, _, _) = built(tiny_mnist["root"], [f"+init_from={ckpt}"])
    assert all(torch.equal(p, torch.full_like(p, 0.25)) for p in module.parameters())
    _, (_, fresh, _, _) = built(tiny_mnist["root"], [])
    assert not any(torch.equal(p, torch.full_like(p, 0.25)) for p in fresh.parameters())


def test_init_from_names_the_first_misfit_and_counts_the_rest(tiny_mnist, tmp_path):
    _, (_, source, _, _) = built(tiny_mnist["root"], ["model.hidden=[50]"])
    ckpt = tmp_path / "w.ckpt"
    torch.save({"state_dict": source.state_dict()}, ckpt)
    with pytest.raises(UsageError) as info:
        built(tiny_mnist["root"], [f"+init_from={ckpt}"])
    assert str(info.value) == (
        f"init_from={ckpt}: its weights do not fit this run's model (net.layers.1.weight is "
        "[50, 784] there, [100, 784] here, and 2 more); init_from needs the model.* settings of "
        "the run that wrote it"
    )
    _, (_, fits, _, _) = built(tiny_mnist["root"], [])
    state = dict(fits.state_dict())
    for extra, tail in (("a", ""), ("b", ", and 1 more")):
        state[f"extra.{extra}"] = torch.zeros(1)
        torch.save({"state_dict": state}, ckpt)
        with pytest.raises(UsageError) as info:
            built(tiny_mnist["root"], [f"+init_from={ckpt}"])
        assert str(info.value) == (
            f"init_from={ckpt}: its weights do not fit this run's model (extra.a is not in this "
            f"model{tail}); init_from needs the model.* settings of the run that wrote it"
        )


def test_missing_files_without_download_stop_the_build_in_one_line(tmp_path):
    with pytest.raises(UsageError) as info:
        built(tmp_path, [])
    message = str(info.value)
    assert "\n" not in message, message
    assert "train-images-idx3-ubyte" in message, message
    assert str(tmp_path / "MNIST" / "raw") in message
    assert message.endswith(f"there. {DATA_HINT}")  # how losslab-train is pointed at the files
    for way_out in ("LOSSLAB_DATA_DIR", "data.data_dir", "data.download=true"):
        assert way_out in DATA_HINT


def test_damaged_files_stop_the_build_in_one_line_without_the_hint(tiny_mnist):
    path = tiny_mnist["raw"] / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(UsageError) as info:
        built(tiny_mnist["root"], [])
    message = str(info.value)
    assert "\n" not in message
    assert "truncated" in message
    assert str(path) in message
    assert DATA_HINT not in message


def test_parts_save_each_parts_plain_config_as_the_modules_hyperparameters(tmp_path):
    """What a checkpoint rebuilds the module from: the plain configs of net, loss, optimizer
    and scheduler, and the Classifier's own arguments (the classifier node); how many steps a
    call runs is the trainer's, not the module's or the data module's."""
    from losslab.run.build import parts

    cfg = compose_train(["loss=sse", "classifier.loss_input=probabilities", "loss.from_logits=false",
                         "scheduler=step", "classifier.scheduler_interval=step", "optimizer.lr=0.2",
                         "trainer.steps_per_call=4", "classifier.normalize=false",
                         "model.hidden=[7]"], output_dir=str(tmp_path))  # fmt: skip
    dm, module = parts(cfg)
    assert dict(module.hparams) == {
        "net": {**OmegaConf.to_container(cfg.model), "hidden": [7]},
        "loss": {"_target_": "losslab.losses.SSELoss", "from_logits": False},
        "optimizer": OmegaConf.to_container(cfg.optimizer),
        "scheduler": {
            "_target_": "torch.optim.lr_scheduler.StepLR",
            "_partial_": True,
            "step_size": 2,
            "gamma": 0.5,
        },
        "scheduler_interval": "step",
        "loss_input": "probabilities",
        "normalize": False,
    }
    assert module.hparams.optimizer["lr"] == 0.2
    assert (module.scheduler_interval, module.wants_probabilities) == ("step", True)
    assert module.normalize is False
    assert not hasattr(dm, "steps_per_call")
    assert "steps_per_call" not in dm.hparams
    assert "normalize" not in dm.hparams  # the module scales its input
    plain = compose_train(["scheduler=none"], output_dir=str(tmp_path))
    _, module = parts(plain)
    assert (module.hparams.scheduler, module.hparams.scheduler_interval) == (None, "epoch")
    assert (module.hparams.loss_input, module.hparams.normalize) == ("auto", True)


def test_a_loss_or_scheduler_config_holds_its_constructors_arguments_and_nothing_else(tmp_path):
    """Nothing is taken out of a group or renamed on the way: the loss and scheduler configs go
    to their constructors whole, and the Classifier's options default to auto, epoch and
    normalize."""
    from losslab.run.build import parts

    cfg = compose_train(["scheduler=step"], output_dir=str(tmp_path))
    plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    _, module = parts(plain)
    assert module.hparams.loss == OmegaConf.to_container(cfg.loss)
    assert module.hparams.scheduler == OmegaConf.to_container(cfg.scheduler)
    assert "input" not in cfg.loss
    assert "interval" not in cfg.scheduler
    assert (module.hparams.loss_input, module.hparams.scheduler_interval) == ("auto", "epoch")
    assert module.scheduler_interval == "epoch"
    assert module.normalize is True
    assert not module.wants_probabilities  # auto with logits in: the loss gets logits
    optimizer = torch.optim.SGD(module.parameters(), lr=1.0)
    scheduler = module.scheduler_factory(optimizer)  # the step config's StepLR, built
    assert isinstance(scheduler, torch.optim.lr_scheduler.StepLR)
    assert (scheduler.step_size, scheduler.gamma) == (2, 0.5)


def test_a_scheduler_config_that_names_nothing_to_build_is_refused_as_scheduler(tmp_path):
    from losslab.run.build import parts

    cfg = compose_train(["scheduler=step"], output_dir=str(tmp_path))
    plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    del plain.scheduler["_target_"]
    with pytest.raises(UsageError, match=r"^scheduler: a config to build must name what it "
                       r"builds in _target_"):  # fmt: skip
        parts(plain)
