"""Scale out and hold up: DDP (CPU, gloo), sweeps with DDP, resume, launchers, bad input."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO = Path(__file__).resolve().parents[1]
SMALL = ["data.train_size=1000", "trainer.max_epochs=1", "hydra.callbacks={}"]

pytestmark = pytest.mark.slow


def run_train(
    *overrides: str, cwd: Path = REPO, env: dict | None = None
) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "losslab.train", *overrides]
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})}
    )


def final(run_dir: Path) -> dict[str, float]:
    ea = EventAccumulator(str(run_dir / "tensorboard"))
    ea.Reload()
    return {tag: ea.Scalars(tag)[-1].value for tag in ("acc/test", "loss/test", "acc/train")}


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def single_run(tmp_path_factory, data_dir) -> Path:
    run_dir = tmp_path_factory.mktemp("single") / "run"
    res = run_train(*SMALL, f"hydra.run.dir={run_dir}")
    assert res.returncode == 0, res.stderr
    return run_dir


def test_ddp_on_two_cpu_processes_matches_the_single_process_run(single_run, tmp_path):
    """Same global batch: each of the 2 processes takes half of every batch of 100, DDP averages
    the two half-batch gradients = the full-batch gradient. Only float summation order differs."""
    run_dir = tmp_path / "ddp"
    res = run_train(*SMALL, "trainer=ddp", "trainer.devices=2", f"hydra.run.dir={run_dir}")
    assert res.returncode == 0, res.stderr
    ddp, single = final(run_dir), final(single_run)
    assert ddp["loss/test"] == pytest.approx(single["loss/test"], rel=1e-3)
    assert abs(ddp["acc/test"] - single["acc/test"]) <= 0.003
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]  # exactly one run folder


def test_ddp_inside_a_multirun_makes_one_sweep_with_two_jobs(tmp_path, data_dir):
    res = run_train("-m", "loss=sse,cee", "trainer=ddp", "trainer.devices=2", *SMALL, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    sweeps = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1, sweeps  # no second sweep re-launched by a child process
    jobs = sorted(p.name for p in sweeps[0].iterdir() if p.is_dir())
    assert len(jobs) == 2, jobs
    assert all("trainer=ddp" in j for j in jobs), jobs
    for job in jobs:
        assert len(list((sweeps[0] / job / "tensorboard").glob("events.*"))) == 1
        assert (sweeps[0] / job / "checkpoints" / "last.ckpt").is_file()  # both completed
    assert not (tmp_path / "multirun").exists()


def test_a_crashed_run_resumes_from_last_checkpoint_to_the_uninterrupted_result(tmp_path, data_dir):
    two_epochs = ["data.train_size=1000", "trainer.max_epochs=2", "hydra.callbacks={}"]
    whole = tmp_path / "whole"
    assert run_train(*two_epochs, f"hydra.run.dir={whole}").returncode == 0

    crashed = tmp_path / "crashed"
    crash = ["+callbacks.crash._target_=crash_callback.CrashAfterEpoch", "+callbacks.crash.epoch=1"]
    env = {"PYTHONPATH": str(REPO / "tests")}
    res = run_train(*two_epochs, *crash, f"hydra.run.dir={crashed}", env=env)
    assert res.returncode != 0
    assert "simulated crash after epoch 1" in res.stderr
    before = tree_digest(crashed)

    res = run_train(*two_epochs, "ckpt_path=last", f"hydra.run.dir={crashed}")
    assert res.returncode == 0, res.stderr
    assert final(crashed) == final(whole)
    after = tree_digest(crashed)
    # the first start's config is kept; the resume's went to .hydra/<time>/
    kept = [k for k in before if k.startswith(".hydra/") or k.endswith(".log")]
    assert all(after[k] == before[k] for k in kept if not k.endswith(".log"))


def test_submitit_local_sweep_of_two_jobs_completes(tmp_path, data_dir):
    res = run_train("-m", "hydra/launcher=submitit_local", "loss=sse,cee", *SMALL, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    jobs = [p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(jobs) == 2
    assert all((j / "checkpoints" / "last.ckpt").is_file() for j in jobs)


# -- bad input: each fails with a clear message, non-zero, and changes nothing already there --


@pytest.fixture
def logs_with_a_run(single_run, tmp_path) -> Path:
    """A working folder whose logs/ already holds a finished run."""
    import shutil

    shutil.copytree(single_run, tmp_path / "logs" / "train" / "runs" / "old")
    return tmp_path


OLD_RUN = "hydra.run.dir=logs/train/runs/old"


@pytest.mark.parametrize(
    ("overrides", "env", "expected"),
    [
        (["loss=foo"], {}, ["loss", "cee", "sse"]),
        (["data.batch_size=abc"], {}, ["data.batch_size", "abc"]),
        (["data.batch_size=0"], {}, ["data.batch_size", "out of range"]),
        (["data.batchsize=3"], {}, ["batchsize"]),
        (["ckpt_path=/nonexistent/last.ckpt"], {}, ["ckpt_path", "/nonexistent/last.ckpt"]),
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
        ([OLD_RUN], {}, ["already holds a run", "ckpt_path=last"]),
        ([OLD_RUN, "data.batch_size=-1"], {}, ["data.batch_size", "out of range"]),
    ],
)
def test_bad_input_fails_clearly_and_keeps_what_was_written(
    logs_with_a_run, overrides, env, expected
):
    old = logs_with_a_run / "logs" / "train" / "runs" / "old"
    before = tree_digest(old)
    res = run_train(*overrides, *SMALL, cwd=logs_with_a_run, env=env)
    assert res.returncode != 0
    for text in expected:
        assert text in res.stderr, (text, res.stderr[-2000:])
    after = tree_digest(old)
    assert [k for k in before if after.get(k) != before[k] and not k.endswith(".log")] == []
    assert set(before) <= set(after)  # nothing deleted
