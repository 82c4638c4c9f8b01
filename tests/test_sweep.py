"""Sweeps: job folders named by what varies, failed jobs reported, finished jobs skipped on a
rerun, experiments as sweep keys, and a user's own config folder (single run, sweep, DDP)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import job_folders, tree_digest
from hydra.core.override_parser.overrides_parser import OverridesParser

from losslab.sweep import job_names, swept_keys

REPO = Path(__file__).resolve().parents[1]
TINY = ["data.train_size=500", "trainer.max_epochs=1"]


def run_train(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "losslab.train", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests"), **(env or {})}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def names(*overrides: str) -> list[str]:
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    return job_names(parsed, jobs)


def test_job_names_lead_with_the_swept_keys_in_the_order_given():
    assert names("trainer.max_epochs=1", "loss=sse,cee", "data.batch_size=32,100") == [
        "loss=sse,data.batch_size=32",
        "loss=sse,data.batch_size=100",
        "loss=cee,data.batch_size=32",
        "loss=cee,data.batch_size=100",
    ]
    assert names("experiment=a,b", "seed=0") == ["experiment=a", "experiment=b"]


def test_job_names_without_a_swept_key_or_with_repeats_stay_distinct():
    assert names("loss=sse", "hydra.sweep.dir=x", "ckpt_path=last") == ["loss=sse"]
    assert names("seed=1,1") == ["seed=1", "seed=1,#2"]
    assert names("data.data_dir=a/b,c") == ["data.data_dir=a_b", "data.data_dir=c"]


def test_swept_keys_lists_values_of_sweeps_only():
    assert swept_keys(["loss=sse,cee", "seed=0", "optimizer.lr=range(1,3)", "hydra.x=1,2"]) == {
        "loss": ["sse", "cee"],
        "optimizer.lr": ["1", "2"],
    }


@pytest.mark.slow
def test_a_failed_job_is_reported_and_the_sweep_exits_non_zero(tmp_path, data_dir):
    """Job crash.epoch=0 raises in its first epoch; crash.epoch=5 never does."""
    sweep = tmp_path / "sweep"
    crash = [
        "+callbacks.crash._target_=crash_callback.CrashAfterEpoch",
        "+callbacks.crash.epoch=0,5",
    ]
    res = run_train(
        "-m",
        *crash,
        *TINY,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        env={"LOSSLAB_TEST_CRASH": "1"},
    )
    assert res.returncode == 1
    assert (
        "job +callbacks.crash.epoch=0 failed: RuntimeError: simulated crash after epoch 0"
        in res.stderr
    )
    assert "Traceback" in res.stderr  # a crash keeps its traceback
    assert "1 job(s) of the sweep failed: +callbacks.crash.epoch=0" in res.stderr
    with (sweep / "summary.csv").open() as f:
        rows = {r["run"]: r for r in csv.DictReader(f)}
    assert rows["+callbacks.crash.epoch=5"]["status"] == "ok"
    failed = rows["+callbacks.crash.epoch=0"]
    assert (failed["status"], failed["loss"]) == ("failed", "cee")
    assert failed["error"] == "RuntimeError: simulated crash after epoch 0"
    assert "failed" in (sweep / "summary.md").read_text()
    assert (sweep / "curves.png").is_file()


def test_a_bad_value_in_any_job_stops_the_sweep_before_anything_is_written(tmp_path):
    res = run_train("-m", "data.batch_size=500,0", *TINY, cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1, res.stderr
    assert "data.batch_size=0 is out of range" in res.stderr
    assert "job data.batch_size=0" in res.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def user_conf(tmp_path_factory) -> Path:
    """A user's own config folder: two tiny experiments, and a model config of its own."""
    conf = tmp_path_factory.mktemp("my_conf")
    (conf / "experiment").mkdir()
    (conf / "model").mkdir()
    for name, hidden in (("tiny_a", 16), ("tiny_b", 24)):
        (conf / "experiment" / f"{name}.yaml").write_text(
            f"# @package _global_\ndefaults:\n  - override /model: small\ntask_name: {name}\n"
            f"seed: 7\nmodel:\n  hidden: [{hidden}]\ndata:\n  train_size: 500\n"
            f"trainer:\n  max_epochs: 1\n"
        )
    (conf / "model" / "small.yaml").write_text(
        "defaults:\n  - /schema/model@_here_\n  - _self_\nhidden: [8]\nactivation: tanh\n"
    )
    return conf


@pytest.mark.slow
def test_a_user_experiment_runs_from_its_own_config_folder(user_conf, tmp_path, data_dir):
    res = run_train("--config-dir", str(user_conf), "experiment=tiny_a", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (run,) = (tmp_path / "logs" / "tiny_a" / "runs").iterdir()  # its own task_name
    config = (run / ".hydra" / "config.yaml").read_text()
    assert "seed: 7" in config  # a top-level key of the experiment took effect
    assert "activation: tanh" in config  # the user's model config
    assert "- 16" in config


@pytest.mark.slow
def test_a_sweep_over_experiments_gives_each_its_own_folder_and_a_rerun_skips_them(
    user_conf, tmp_path, data_dir
):
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "--config-dir",
        str(user_conf),
        "experiment=tiny_a,tiny_b",
        f"hydra.sweep.dir={sweep}",
    ]
    res = run_train(*args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert job_folders(sweep) == ["experiment=tiny_a", "experiment=tiny_b"]
    before = tree_digest(sweep / "experiment=tiny_a")
    # the same command again: both finished, nothing is trained twice
    res = run_train(*args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (
        res.stdout.count("finished before, skipped") + res.stderr.count("finished before, skipped")
        == 2
    )
    assert tree_digest(sweep / "experiment=tiny_a") == before


@pytest.mark.slow
def test_an_interrupted_job_of_a_sweep_resumes_when_the_sweep_is_run_again(tmp_path, data_dir):
    sweep = tmp_path / "sweep"
    crash = ["+callbacks.crash._target_=crash_callback.CrashAfterEpoch", "+callbacks.crash.epoch=1"]
    args = [
        "-m",
        "loss=sse,cee",
        "data.train_size=500",
        "trainer.max_epochs=2",
        *crash,
        f"hydra.sweep.dir={sweep}",
    ]
    res = run_train(*args, cwd=tmp_path, env={"LOSSLAB_TEST_CRASH": "1"})
    assert res.returncode == 1
    assert (sweep / "loss=sse" / "error.txt").is_file()
    res = run_train(*args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    with (sweep / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["run"], r["status"], r["epochs"]) for r in rows) == [
        ("loss=cee", "ok", "2"),
        ("loss=sse", "ok", "2"),
    ]
    assert not (sweep / "loss=sse" / "error.txt").exists()


@pytest.mark.slow
def test_a_user_config_folder_reaches_the_ddp_processes_of_a_sweep(user_conf, tmp_path, data_dir):
    sweep = tmp_path / "sweep"
    res = run_train(
        "-m",
        "--config-dir",
        str(user_conf),
        "experiment=tiny_b",
        "trainer=ddp",
        "trainer.devices=2",
        "seed=7,8",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert job_folders(sweep) == ["seed=7", "seed=8"]
    for job in job_folders(sweep):
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        assert "- 24" in (sweep / job / ".hydra" / "config.yaml").read_text()


@pytest.mark.slow
def test_a_submitit_local_sweep_of_two_jobs_completes(tmp_path, data_dir):
    res = run_train("-m", "hydra/launcher=submitit_local", "loss=sse,cee", *TINY, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    assert job_folders(sweep) == ["loss=cee", "loss=sse"]
    assert all((sweep / j / "checkpoints" / "last.ckpt").is_file() for j in job_folders(sweep))
    assert (sweep / "summary.csv").is_file()
