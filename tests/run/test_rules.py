"""losslab.run.rules in this process: the checks of a composed config that span several keys, each
refusal's exact line (the key, what it allows), the DDP batch rule counted over the processes
of every node, and a callback's monitor that must be a metric the run logs."""

from __future__ import annotations

import pytest
from conftest import compose_train

from losslab.errors import UsageError

TOP_KEYS = ("data, model, loss, optimizer, scheduler, trainer, logger, callbacks, classifier, "
            "paths, seed, threads, task_name, ckpt_path, init_from, verbose, study")  # fmt: skip
LOGGED = ("loss/train, acc/train, nll/train, brier/train, ece/train, loss/test, acc/test, "
          "nll/test, brier/test, ece/test, gap/acc")  # fmt: skip


def checked(*overrides: str) -> None:
    """``rules.check`` on the config losslab-train composes from ``overrides``."""
    from hydra.core.hydra_config import HydraConfig

    from losslab.run.rules import check

    cfg = compose_train(list(overrides), checked=False)
    check(cfg, dict(HydraConfig.get().runtime.choices))


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (["+sed=7"], "sed: no such key (a '+' override may add keys under callbacks and logger "
                     f"only); allowed top-level keys: {TOP_KEYS}"),
        (["+scheduler.foo=1"], "scheduler.foo: no such key (scheduler=none); choose a config of "
                               "conf/scheduler/ instead, e.g. scheduler=<name>"),
        (["init_from=/a.ckpt", "ckpt_path=/b.ckpt"],
         "init_from=/a.ckpt and ckpt_path=/b.ckpt: choose one. ckpt_path resumes a run (its "
         "config, optimizer state and epoch); init_from starts a new run from a checkpoint's "
         "weights only"),
        (["trainer=ddp", "trainer.devices=1", "trainer.num_nodes=2", "data.batch_size=33"],
         "data.batch_size=33 must be divisible by the 2 DDP processes (trainer.devices=1, "
         "trainer.num_nodes=2): each takes an equal share of every global batch"),
        (["trainer=ddp", "trainer.devices=[0,1,2]", "data.batch_size=32"],
         "data.batch_size=32 must be divisible by the 3 DDP processes (trainer.devices=[0, 1, 2], "
         "trainer.num_nodes=1): each takes an equal share of every global batch"),
        # several devices under strategy=auto: Lightning runs DDP, one process each
        (["trainer.steps_per_call=1", "trainer.devices=3", "data.batch_size=32"],
         "data.batch_size=32 must be divisible by the 3 DDP processes (trainer.devices=3, "
         "trainer.num_nodes=1): each takes an equal share of every global batch"),
        (["callbacks.model_checkpoint.monitor=acc/val"],
         f"callbacks.model_checkpoint.monitor=acc/val: this run does not log it; it logs {LOGGED} "
         "(acc/val needs data.val_size > 0)"),
        (["callbacks=early_stopping"],
         f"callbacks.early_stopping.monitor=acc/val: this run does not log it; it logs {LOGGED} "
         "(acc/val needs data.val_size > 0)"),
        (["callbacks.model_checkpoint.monitor=acc/train_true"],
         f"callbacks.model_checkpoint.monitor=acc/train_true: this run does not log it; it logs "
         f"{LOGGED} (acc/val needs data.val_size > 0)"),
        (["callbacks.model_checkpoint.monitor=val_acc", "data.val_size=100",
          "data.eval_splits=[val]"],
         "callbacks.model_checkpoint.monitor=val_acc: this run does not log it; it logs loss/val, "
         "acc/val, nll/val, brier/val, ece/val (acc/val needs data.val_size > 0)"),
    ],
)  # fmt: skip
def test_each_rule_refuses_with_its_exact_line(overrides, line):
    with pytest.raises(UsageError) as refused:
        checked(*overrides)
    assert str(refused.value) == line


@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
@pytest.mark.parametrize(
    ("trainer", "instead"),
    [
        ("cpu", "trainer=cpu, or trainer=ddp trainer.accelerator=cpu"),
        ("gpu", "trainer=cpu, or trainer=ddp trainer.accelerator=cpu"),
        ("ddp", "trainer.accelerator=cpu (DDP over CPU processes), or trainer=cpu"),
    ],
)
def test_a_gpu_accelerator_without_a_visible_gpu_is_refused(
    accelerator, trainer, instead, monkeypatch
):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError) as refused:
        checked(f"trainer={trainer}", f"trainer.accelerator={accelerator}")
    assert str(refused.value) == (
        f"trainer.accelerator='{accelerator}' needs a CUDA GPU, but none is visible "
        f"(torch.cuda.is_available() is False): use {instead}"
    )


@pytest.mark.parametrize(
    "overrides",
    [
        ["trainer=ddp", "trainer.devices=auto", "data.batch_size=33"],  # counted at run time
        ["trainer=ddp", "trainer.devices=-1", "data.batch_size=33"],
        ["trainer.devices=4", "data.batch_size=32"],  # 4 processes under strategy=auto
        ["trainer=ddp", "trainer.devices=1", "data.batch_size=33"],  # one process
        ["trainer.strategy=single_device", "data.batch_size=33"],
        ["trainer=ddp", "trainer.devices=2", "trainer.num_nodes=2", "data.batch_size=32"],
    ],
)
def test_a_batch_that_need_not_divide_or_does_passes(overrides):
    checked(*overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        ["callbacks.model_checkpoint.monitor=acc/val", "data.val_size=100"],
        ["callbacks.model_checkpoint.monitor=loss/test"],
        ["callbacks.model_checkpoint.monitor=gap/acc"],
        ["callbacks=early_stopping", "data.val_size=100"],
        ["callbacks=[default,early_stopping]", "data.val_size=100"],
        ["callbacks.model_checkpoint.monitor=memo/train", "data.label_noise=0.2"],
        ["callbacks.model_checkpoint.monitor=acc/train_true", "data.label_noise=0.2"],
        ["~callbacks"],
    ],
)
def test_a_callback_that_monitors_a_metric_the_run_logs_passes(overrides):
    checked(*overrides)


@pytest.mark.parametrize(
    ("overrides", "refused"),
    [([], None), (["trainer.devices=2", "data.batch_size=33"], "data.batch_size=33 must be")],
)
def test_the_rules_check_the_plain_config_a_resume_reads_back(tmp_path, overrides, refused):
    """A resume checks the config the run saved (``.hydra/config.yaml``, read back with
    OmegaConf.load: no schema types): the same rules, the same lines."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from losslab.run.rules import check

    cfg = compose_train(list(overrides), checked=False)
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    saved = OmegaConf.load(tmp_path / "config.yaml")
    choices = dict(HydraConfig.get().runtime.choices)
    if refused is None:
        check(saved, choices)
        return
    with pytest.raises(UsageError, match=f"^{refused}"):
        check(saved, choices)
