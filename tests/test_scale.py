"""Scale out and hold up: DDP (CPU, gloo), resume with the run's own config, copied runs,
checkpoint paths, and bad input that fails in one line and changes nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tree_digest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO = Path(__file__).resolve().parents[1]
SMALL = ["data.train_size=1000", "trainer.max_epochs=1", "hydra.callbacks={}"]
CRASH = ["+callbacks.crash._target_=crash_callback.CrashAfterEpoch", "+callbacks.crash.epoch=1"]

pytestmark = pytest.mark.slow


def run_train(
    *overrides: str, cwd: Path = REPO, env: dict | None = None
) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "losslab.train", *overrides]
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests"), **(env or {})}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every point of every scalar tag, across all the run's event files (duplicates kept)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for file in sorted(run_dir.glob("events.out.tfevents.*")):
        ea = EventAccumulator(str(file), size_guidance={"scalars": 0})
        ea.Reload()
        for tag in ea.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in ea.Scalars(tag))
    return out


def final(run_dir: Path) -> dict[str, float]:
    c = curves(run_dir)
    return {tag: c[tag][-1][1] for tag in ("acc/test", "loss/test", "acc/train", "nll/test")}


@pytest.fixture(scope="module")
def single_run(tmp_path_factory, data_dir) -> Path:
    run_dir = tmp_path_factory.mktemp("single") / "run"
    res = run_train(*SMALL, f"hydra.run.dir={run_dir}")
    assert res.returncode == 0, res.stderr
    return run_dir


# -- DDP ----------------------------------------------------------------------------------------


def test_ddp_on_two_cpu_processes_matches_the_single_process_run(single_run, tmp_path):
    """Same global batch: each of the 2 processes takes half of every batch of 100, DDP averages
    the two half-batch gradients = the full-batch gradient. Only float summation order differs."""
    run_dir = tmp_path / "ddp"
    res = run_train(*SMALL, "trainer=ddp", "trainer.devices=2", f"hydra.run.dir={run_dir}")
    assert res.returncode == 0, res.stderr
    ddp, single = final(run_dir), final(single_run)
    assert ddp["loss/test"] == pytest.approx(single["loss/test"], rel=1e-3)
    assert abs(ddp["acc/test"] - single["acc/test"]) <= 0.003
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]  # exactly one run folder
    # batch/loss is the global batch's loss (the mean over the two halves), not rank 0's half
    (step, ddp_loss), (_, single_loss) = (
        curves(run_dir)["batch/loss"][0],
        curves(single_run)["batch/loss"][0],
    )
    assert step == 1
    assert ddp_loss == pytest.approx(single_loss, abs=1e-6)


def test_ddp_inside_a_multirun_makes_one_sweep_with_two_jobs(tmp_path, data_dir):
    res = run_train("-m", "loss=sse,cee", "trainer=ddp", "trainer.devices=2", *SMALL, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    sweeps = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1, sweeps  # no second sweep re-launched by a child process
    jobs = sorted(p.name for p in sweeps[0].iterdir() if p.is_dir())
    assert jobs == ["loss=cee", "loss=sse"]
    for job in jobs:
        assert len(list((sweeps[0] / job).glob("events.*"))) == 1
        assert (sweeps[0] / job / "checkpoints" / "last.ckpt").is_file()  # both completed
    assert not (tmp_path / "multirun").exists()


# -- resume -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def interrupted_sse(tmp_path_factory, data_dir) -> tuple[Path, Path]:
    """An SSE run killed a few steps into epoch 2 (of 2), and the same run uninterrupted."""
    root = tmp_path_factory.mktemp("resume")
    two_epochs = [
        "loss=sse",
        "data.train_size=1000",
        "trainer.max_epochs=2",
        "hydra.callbacks={}",
        *CRASH,
    ]
    whole = root / "whole"
    assert run_train(*two_epochs, f"hydra.run.dir={whole}").returncode == 0
    crashed = root / "crashed"
    res = run_train(*two_epochs, f"hydra.run.dir={crashed}", env={"LOSSLAB_TEST_CRASH": "1"})
    assert res.returncode == 1
    assert "simulated crash after epoch 1" in res.stderr
    return crashed, whole


def test_resume_continues_with_the_runs_own_config_to_the_uninterrupted_result(
    interrupted_sse, tmp_path
):
    crashed, whole = interrupted_sse
    run = tmp_path / "run"
    shutil.copytree(crashed, run)
    before = tree_digest(run)
    # the README's command: no overrides but the checkpoint and the folder
    res = run_train("ckpt_path=last", f"hydra.run.dir={run}")
    assert res.returncode == 0, res.stderr
    assert final(run) == final(whole)  # SSE all the way, bit for bit
    after = tree_digest(run)
    assert all(
        after[k] == before[k] for k in before if k.startswith(".hydra/")
    )  # first start's config kept
    assert yaml.safe_load((run / ".hydra" / "config.yaml").read_text())["loss"][
        "_target_"
    ].endswith("SSELoss")
    assert (
        yaml.safe_load((run / "hparams.yaml").read_text())["loss"] == "sse"
    )  # HPARAMS of what ran
    (record,) = yaml.safe_load((run / ".hydra" / "resumes.yaml").read_text())
    assert record["overrides"] == ["ckpt_path=last"]
    assert record["changed"] == {}
    c = curves(run)
    assert [s for s, _ in c["acc/test"]] == [0, 1, 2]  # one point per epoch


def test_resume_that_changes_what_the_run_is_is_refused_in_one_line(interrupted_sse, tmp_path):
    crashed, _ = interrupted_sse
    run = tmp_path / "run"
    shutil.copytree(crashed, run)
    before = tree_digest(run)
    res = run_train("ckpt_path=last", f"hydra.run.dir={run}", "loss=cee", "optimizer.lr=0.5")
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1, res.stderr
    assert "Traceback" not in res.stderr
    for text in ("loss=cee", "loss=sse", "optimizer.lr=0.5", "optimizer.lr=0.1"):
        assert text in res.stderr, res.stderr
    assert tree_digest(run) == before  # byte-identical


def test_resume_may_train_longer_and_records_the_change(interrupted_sse, tmp_path):
    crashed, _ = interrupted_sse
    run = tmp_path / "run"
    shutil.copytree(crashed, run)
    res = run_train("ckpt_path=last", f"hydra.run.dir={run}", "trainer.max_epochs=3")
    assert res.returncode == 0, res.stderr
    assert [s for s, _ in curves(run)["acc/test"]] == [0, 1, 2, 3]
    (record,) = yaml.safe_load((run / ".hydra" / "resumes.yaml").read_text())
    assert record["changed"] == {"trainer.max_epochs": [2, 3]}


def test_a_copied_run_resumes_from_its_own_checkpoint(single_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(single_run, copy)
    original = tree_digest(single_run)
    res = run_train("ckpt_path=last", f"hydra.run.dir={copy}", "trainer.max_epochs=2")
    assert res.returncode == 0, res.stderr
    assert str(copy / "checkpoints" / "last.ckpt") in res.stdout + res.stderr
    assert tree_digest(single_run) == original  # the original run is untouched
    names = sorted(p.name for p in (copy / "checkpoints").iterdir())
    assert [n for n in names if n.startswith("last")] == ["last.ckpt"]  # no last-v1.ckpt
    assert torch.load(copy / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    for tag, points in curves(copy).items():
        if not tag.startswith(("hp/", "batch/")):
            steps = [s for s, _ in points]
            assert steps == sorted(set(steps)), tag  # one point per epoch, none twice


def test_ckpt_path_accepts_the_checkpoint_names_losslab_writes(tmp_path, data_dir):
    res = run_train("-m", "loss=sse,cee", *SMALL, f"hydra.sweep.dir={tmp_path / 'sweep'}")
    assert res.returncode == 0, res.stderr
    (ckpt,) = [
        p
        for p in (tmp_path / "sweep" / "loss=sse" / "checkpoints").iterdir()
        if p.name != "last.ckpt"
    ]
    assert "=" in ckpt.name
    assert "," not in ckpt.name
    # a new run that starts from it, in a new folder: the path goes in exactly as printed
    res = run_train(
        f"ckpt_path={ckpt}",
        "loss=sse",
        "trainer.max_epochs=2",
        f"hydra.run.dir={tmp_path / 'more'}",
    )
    assert res.returncode == 0, res.stderr
    # the checkpoint's curves (epochs 0-1) come along into the new folder, then epoch 2
    assert [s for s, _ in curves(tmp_path / "more")["acc/test"]] == [0, 1, 2]


# -- bad input: one line, status 2, nothing written ---------------------------------------------


@pytest.fixture
def logs_with_a_run(single_run, tmp_path) -> Path:
    """A working folder whose logs/ already holds a finished run."""
    shutil.copytree(single_run, tmp_path / "logs" / "train" / "runs" / "old")
    return tmp_path


OLD_RUN = "hydra.run.dir=logs/train/runs/old"


@pytest.mark.parametrize(
    ("overrides", "env", "expected"),
    [
        (["loss=foo"], {}, ["loss=foo", "cee", "sse", "sse_logits"]),
        (["data.batch_size=abc"], {}, ["data.batch_size=abc", "Integer"]),
        (["data.batch_size=0"], {}, ["data.batch_size", "out of range", "positive integer"]),
        (["data.batchsize=3"], {}, ["data.batchsize", "batch_size", "val_size"]),
        (["optimizer.lr=-1"], {}, ["optimizer.lr", "> 0"]),
        (["ckpt_path=/nonexistent/last.ckpt"], {}, ["ckpt_path", "/nonexistent/last.ckpt"]),
        (
            ["ckpt_path=last", "hydra.run.dir=logs/train/runs/none"],
            {},
            ["ckpt_path=last", "no checkpoint"],
        ),
        (
            ["data.download=false"],
            {"LOSSLAB_DATA_DIR": "/nonexistent"},
            ["LOSSLAB_DATA_DIR", "t10k-labels-idx1-ubyte"],
        ),
        (
            ["trainer=gpu"],
            {"CUDA_VISIBLE_DEVICES": ""},
            ["trainer.accelerator", "GPU", "trainer=cpu"],
        ),
        (
            ["trainer.steps_per_call=10", "trainer.gradient_clip_val=1"],
            {},
            ["steps_per_call", "gradient_clip_val"],
        ),
        ([OLD_RUN], {}, ["already holds a run", "ckpt_path=last"]),
        ([OLD_RUN, "data.batch_size=-1"], {}, ["data.batch_size", "out of range"]),
    ],
)
def test_bad_input_fails_in_one_line_with_status_2_and_writes_nothing(
    logs_with_a_run, overrides, env, expected
):
    logs = logs_with_a_run / "logs"
    before = tree_digest(logs)
    folders_before = sorted(p for p in logs.rglob("*") if p.is_dir())
    res = run_train(*overrides, *SMALL, cwd=logs_with_a_run, env=env)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr  # exactly one line
    assert res.stderr.startswith("losslab-train: error: ")
    assert "Traceback" not in res.stdout + res.stderr
    for text in expected:
        assert text in res.stderr, (text, res.stderr)
    assert tree_digest(logs) == before  # nothing created, changed or deleted
    assert sorted(p for p in logs.rglob("*") if p.is_dir()) == folders_before


def test_hydra_full_error_shows_the_whole_traceback(tmp_path):
    res = run_train("data.batch_size=0", cwd=tmp_path, env={"HYDRA_FULL_ERROR": "1"})
    assert res.returncode != 0
    assert "Traceback" in res.stderr
    assert "data.batch_size=0 is out of range" in res.stderr


def test_a_crash_keeps_its_traceback(tmp_path, data_dir):
    res = run_train(
        *SMALL, *CRASH, "trainer.max_epochs=2", cwd=tmp_path, env={"LOSSLAB_TEST_CRASH": "1"}
    )
    assert res.returncode == 1
    assert "Traceback" in res.stderr
    assert "RuntimeError: simulated crash after epoch 1" in res.stderr
