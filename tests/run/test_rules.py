"""losslab.run.rules in this process: the checks of a composed config that span several keys, each
refusal's exact line (the key, what it allows), and the DDP batch rule counted over the
processes of every node."""

from __future__ import annotations

import pytest
from conftest import compose_train

from losslab.errors import UsageError

TOP_KEYS = ("data, model, loss, optimizer, scheduler, trainer, logger, callbacks, paths, seed, "
            "threads, task_name, ckpt_path, init_from, study")  # fmt: skip


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
    ],
)  # fmt: skip
def test_each_rule_refuses_with_its_exact_line(overrides, line):
    with pytest.raises(UsageError) as refused:
        checked(*overrides)
    assert str(refused.value) == line


@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_a_gpu_accelerator_without_a_visible_gpu_is_refused(accelerator, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError) as refused:
        checked(f"trainer.accelerator={accelerator}")
    assert str(refused.value) == (
        f"trainer.accelerator='{accelerator}' needs a CUDA GPU, but none is visible "
        "(torch.cuda.is_available() is False): use trainer=cpu or trainer=ddp"
    )


@pytest.mark.parametrize(
    "overrides",
    [
        ["trainer=ddp", "trainer.devices=auto", "data.batch_size=33"],  # counted at run time
        ["trainer=ddp", "trainer.devices=-1", "data.batch_size=33"],
        ["trainer.steps_per_call=1", "trainer.devices=3", "data.batch_size=32"],  # no DDP
        ["trainer=ddp", "trainer.devices=2", "trainer.num_nodes=2", "data.batch_size=32"],
    ],
)
def test_a_batch_that_need_not_divide_or_does_passes(overrides):
    checked(*overrides)
