"""losslab.lit.Trainer's steps_per_call: automatic — 10 where it is exact, 1 (with a line saying
why) where mixed precision, clipping, accumulation, several processes, overfit_batches or
fast_dev_run need Lightning's own optimizer step; an explicit K > 1 with such a setting refused.
Lightning's flags train a tiny run with losslab's defaults; max_epochs=-1 with max_steps or
max_time."""

from __future__ import annotations

import json
import re

import pytest
from conftest import TINY, ok, train

from losslab.lit.trainer import DEFAULT_STEPS, Trainer, lightning_step_needs, resolve_steps_per_call


@pytest.mark.parametrize(
    ("kwargs", "need"),
    [
        ({"gradient_clip_val": 1.0}, "trainer.gradient_clip_val=1.0"),
        ({"accumulate_grad_batches": 2}, "trainer.accumulate_grad_batches=2"),
        ({"precision": "bf16-mixed"}, "trainer.precision=bf16-mixed"),
        ({"overfit_batches": 3}, "trainer.overfit_batches=3"),
        ({"fast_dev_run": True}, "trainer.fast_dev_run=True"),
    ],
)
def test_the_trainer_runs_lightnings_own_step_where_only_it_is_exact(kwargs, need):
    options = {"accelerator": "cpu", "logger": False, "enable_checkpointing": False}
    assert Trainer(**options).steps_per_call == DEFAULT_STEPS == 10  # auto, where it is exact
    assert Trainer(**options).steps_note is None
    assert Trainer(**options, steps_per_call=3).steps_per_call == 3
    auto = Trainer(**options, **kwargs)
    assert auto.steps_per_call == 1
    assert auto.steps_note == (
        f"trainer.steps_per_call=auto is 1 here: {need} needs Lightning's own optimizer step"
    )
    assert Trainer(**options, **kwargs, steps_per_call=1).steps_per_call == 1
    with pytest.raises(ValueError, match=f"^steps_per_call=10 cannot be combined with {need}:"):
        Trainer(**options, **kwargs, steps_per_call=10)


def test_lightning_step_needs_names_each_setting_in_order_and_nothing_by_default():
    assert lightning_step_needs() == []
    assert lightning_step_needs(precision="32", gradient_clip_val=0, processes=1) == []
    assert lightning_step_needs(
        precision="16-mixed",
        gradient_clip_val=0.5,
        accumulate_grad_batches=4,
        processes=2,
        overfit_batches=0.1,
        fast_dev_run=5,
    ) == [
        "trainer.precision=16-mixed",
        "trainer.gradient_clip_val=0.5",
        "trainer.accumulate_grad_batches=4",
        "trainer.devices=2 processes",
        "trainer.overfit_batches=0.1",
        "trainer.fast_dev_run=5",
    ]


@pytest.mark.parametrize("value", [0, -1, True, 2.0, "3", "all", None])
def test_steps_per_call_is_auto_or_a_positive_integer(value):
    message = f"steps_per_call must be 'auto' or a positive integer, got {value!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        resolve_steps_per_call(value, [])


def test_auto_is_ten_or_one_and_an_explicit_one_always_goes():
    assert resolve_steps_per_call("auto", []) == DEFAULT_STEPS
    assert resolve_steps_per_call("auto", ["trainer.precision=16-mixed"]) == 1
    assert resolve_steps_per_call(1, ["trainer.precision=16-mixed"]) == 1
    assert resolve_steps_per_call(7, []) == 7


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags",
    [
        ["trainer.precision=bf16-mixed"],
        ["trainer.gradient_clip_val=1.0"],
        ["trainer.accumulate_grad_batches=4"],
        ["trainer.max_epochs=-1", "trainer.max_steps=7"],
        ["trainer.max_epochs=-1", "+trainer.max_time=00:00:00:03"],
    ],
    ids=["bf16", "clip", "accumulate", "no-epoch-limit-steps", "no-epoch-limit-time"],
)
def test_lightnings_flags_train_a_tiny_run_with_the_defaults(tmp_path, data_dir, flags):
    res = ok(train(*TINY, *flags, "hydra.run.dir=r", cwd=tmp_path))
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    assert result["status"] == "ok"
    if "trainer.max_steps=7" in flags:
        assert result["history"][-1]["step"] == 7
    if any("max_time" in f for f in flags):
        assert result["epochs"] >= 1
    needs_one = flags[0].startswith(("trainer.precision", "trainer.gradient", "trainer.accumulate"))
    assert (
        "steps_per_call=auto is 1 here" in res.stdout + (tmp_path / "r" / "train.log").read_text()
    ) == needs_one


def test_an_explicit_k_with_such_a_flag_and_an_unlimited_run_without_a_limit_are_refused(tmp_path):
    for flags, message in (
        (["trainer.steps_per_call=10", "trainer.precision=bf16-mixed"],
         "trainer.steps_per_call=10 cannot be combined with trainer.precision=bf16-mixed"),
        (["trainer.max_epochs=-1"], "trainer.max_epochs=-1 is out of range: trainer.max_epochs must be a "
         "positive integer, or -1 (no limit) together with trainer.max_steps or trainer.max_time"),
    ):  # fmt: skip
        res = train(*flags, cwd=tmp_path)
        assert res.returncode == 2, res.stderr
        assert message in res.stderr
        assert list(tmp_path.iterdir()) == []
