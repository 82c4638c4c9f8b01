"""start.plan, in this process: what a start of losslab-train decides before anything is written
(a new run, a resume with the run's own config, nothing for a finished run) and the checkpoint
and folder errors, each naming its key. A finished 1-epoch run is copied for each test; the
paths that then train are the tests of test_tiny_run and test_resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import TINY, compose_train
from omegaconf import OmegaConf

from losslab.errors import UsageError
from losslab.run.identity import RESUMABLE_KEYS
from losslab.run.rundir import RunDir
from losslab.run.start import plan

TASK = list(TINY[:2])  # the task's overrides of the run (TINY's last is Hydra's own)


@pytest.fixture
def run(shared_run, tmp_path) -> Path:
    """A copy of a finished run (500 images, 1 epoch) to resume or start from."""
    folder = tmp_path / "run"
    shutil.copytree(shared_run("cli_single", *TINY), folder)
    return folder


def planned(folder: Path, *overrides: str):
    """``plan`` for ``losslab-train OVERRIDES hydra.run.dir=FOLDER``."""
    cfg = compose_train([*TASK, *overrides], checked=False, output_dir=str(folder))
    return plan(cfg, RunDir(folder), rank_zero=True)


def test_a_resume_of_a_finished_run_plans_nothing_but_its_result(run):
    start = planned(run, "ckpt_path=last")
    assert start.finished == json.loads((run / "result.json").read_text())
    assert start.finished["status"] == "ok"
    assert start.ckpt_path == str(run / "checkpoints" / "last.ckpt")
    assert start.source.path == run
    assert start.changed == {}
    saved = OmegaConf.load(run / ".hydra" / "config.yaml")
    saved.ckpt_path = "last"
    assert start.cfg == saved
    assert start.choices == RunDir(run).choices()
    assert start.choices["loss"] == "cee"


def test_a_resume_that_trains_longer_plans_the_runs_own_config_with_the_change(run):
    start = planned(run, "ckpt_path=last", "trainer.max_epochs=2", "trainer.max_steps=400")
    assert start.finished is None
    assert start.changed == {"trainer.max_epochs": (1, 2), "trainer.max_steps": (-1, 400)}
    assert (start.cfg.trainer.max_epochs, start.cfg.trainer.max_steps) == (2, 400)
    assert start.cfg.ckpt_path == "last"
    assert start.cfg.data.train_size == 500
    assert start.ckpt_path == str(run / "checkpoints" / "last.ckpt")
    assert start.source.path == run
    assert start.choices == RunDir(run).choices()


def test_a_resume_refuses_a_changed_list_naming_both_values_and_what_may_change(run):
    with pytest.raises(UsageError) as info:
        planned(run, "ckpt_path=last", "model.hidden=[50]")
    assert str(info.value) == (
        f"ckpt_path=last resumes {run} with its own config; refused: model.hidden=[50] (the run "
        f"has model.hidden=[100]). At resume only {', '.join(RESUMABLE_KEYS)} may change: start "
        "a new run for another configuration (init_from=<checkpoint> starts one from its weights)"
    )
    assert "trainer.max_epochs, trainer.max_steps" in str(info.value)


def test_a_checkpoint_outside_a_run_folder_starts_a_new_run_from_it(run, tmp_path):
    ckpt = tmp_path / "kept" / "weights" / "my.ckpt"
    ckpt.parent.mkdir(parents=True)
    shutil.copy(run / "checkpoints" / "last.ckpt", ckpt)
    start = planned(tmp_path / "new", f"ckpt_path={ckpt}", "loss=sse")
    assert (start.ckpt_path, start.source, start.changed, start.finished) == (
        str(ckpt), None, None, None)  # fmt: skip
    assert start.choices["loss"] == "sse"  # this start's config: there is no run to resume
    assert start.cfg.ckpt_path == str(ckpt)


def test_a_new_run_plans_this_config_and_no_checkpoint(tmp_path):
    start = planned(tmp_path / "new", "loss=sse")
    assert (start.ckpt_path, start.source, start.finished) == (None, None, None)
    assert (start.choices["loss"], start.cfg.loss._target_) == ("sse", "losslab.losses.SSELoss")


def test_init_from_is_checked_before_anything_and_its_errors_name_it(run, tmp_path):
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(
        UsageError, match=f"^init_from={missing}: no such checkpoint file or run folder$"
    ):
        planned(tmp_path / "new", f"init_from={missing}")
    start = planned(tmp_path / "new", f"init_from={run / 'checkpoints' / 'last.ckpt'}")
    assert start.cfg.init_from == str(run / "checkpoints" / "last.ckpt")
    assert (start.ckpt_path, start.resume_step) == (None, None)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match=f"^init_from={garbage}: not a checkpoint torch can"):
        planned(tmp_path / "new", f"init_from={garbage}")


def test_init_from_a_run_folder_plans_its_last_checkpoint_file(run, tmp_path):
    start = planned(tmp_path / "new", f"init_from={run}")
    # the config records what ran: the checkpoint file the folder stood for
    assert start.cfg.init_from == str((run / "checkpoints" / "last.ckpt").resolve())
    assert (start.ckpt_path, start.source) == (None, None)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError) as info:
        planned(tmp_path / "new", f"init_from={empty}")
    assert str(info.value) == (
        f"init_from={empty}: this folder holds no checkpoints/last.ckpt; pass a run folder that "
        f"losslab-train wrote with checkpoints (not callbacks=null), or a .ckpt file"
    )


def test_a_start_knows_the_step_it_resumes_from_and_whether_it_is_in_place(run, tmp_path):
    step = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert step == 5  # 500 images in batches of 100, one epoch
    longer = planned(run, "ckpt_path=last", "trainer.max_epochs=2")
    assert longer.resume_step == step
    assert longer.in_place(RunDir(run))
    assert not longer.in_place(RunDir(tmp_path / "new"))
    elsewhere = planned(tmp_path / "new", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}")
    assert elsewhere.resume_step == step
    assert elsewhere.source.path == run  # the checkpoint's run, replayed into a new folder
    assert not elsewhere.in_place(RunDir(tmp_path / "new"))
    new = planned(tmp_path / "other")
    assert (new.resume_step, new.in_place(RunDir(tmp_path / "other"))) == (None, False)


def test_planning_only_checks_and_leaves_building_to_the_build(tmp_path, monkeypatch):
    """A value only a constructor checks passes the plan (the build refuses it, once, naming the
    key: test_build); no object is made while planning."""
    import losslab.run.build

    def refuse(*args, **kwargs):
        raise AssertionError("plan built the objects")

    monkeypatch.setattr(losslab.run.build, "parts", refuse)
    start = planned(tmp_path / "new", "classifier.loss_input=raw")
    assert start.cfg.classifier.loss_input == "raw"


def test_a_last_checkpoint_torch_cannot_load_is_refused_naming_ckpt_path(run):
    (run / "checkpoints" / "last.ckpt").unlink()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError) as info:
        planned(run, "ckpt_path=last")
    assert str(info.value).startswith(
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}: not a checkpoint torch can load ("
    )


def test_last_in_a_folder_that_holds_a_run_without_checkpoints_says_so(run, tmp_path):
    shutil.rmtree(run / "checkpoints")
    with pytest.raises(UsageError) as info:
        planned(run, "ckpt_path=last")
    assert str(info.value) == (
        f"ckpt_path=last: {run} holds a run but no checkpoint ({run / 'checkpoints' / 'last.ckpt'} "
        f"is missing: it ran with callbacks=null, or stopped before its first epoch ended), so "
        f"there is nothing to resume from; start a new run"
    )
    with pytest.raises(UsageError) as info:
        planned(tmp_path / "nothing", "ckpt_path=last")
    assert str(info.value).startswith(f"ckpt_path=last: no run in {tmp_path / 'nothing'} (no ")


def test_a_run_folder_without_its_config_cannot_be_resumed(run):
    shutil.rmtree(run / ".hydra")
    with pytest.raises(UsageError) as info:
        planned(run, "ckpt_path=last")
    assert str(info.value) == (
        f"ckpt_path=last: {run} holds no .hydra/config.yaml, so the config it trained with is "
        "unknown; resume a folder that losslab-train wrote"
    )


def test_planning_leaves_the_random_state_as_it_was(tmp_path):
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    planned(tmp_path / "new")
    assert torch.equal(torch.rand(3), expected)  # the run seeds after planning
