"""Scale out: DDP over two CPU processes (gloo) gives the single-process run's numbers, inside a
sweep too; the processes are real processes, so these tests start them as a user would."""

from __future__ import annotations

import pytest
from conftest import event_curves, final_values, train_process

SMALL = ["data.train_size=1000", "trainer.max_epochs=1", "~hydra.callbacks.report"]
pytestmark = [pytest.mark.slow, pytest.mark.process]


def test_ddp_on_two_cpu_processes_matches_the_single_process_run(shared_run, tmp_path):
    """Same global batch: each of the 2 processes takes half of every batch of 100, DDP averages
    the two half-batch gradients = the full-batch gradient. Only float summation order differs."""
    single = shared_run("resume_single", *SMALL)
    run_dir = tmp_path / "ddp"
    res = train_process(
        *SMALL, "trainer=ddp", "trainer.devices=2", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    ddp, one = final_values(run_dir), final_values(single)
    assert ddp["loss/test"] == pytest.approx(one["loss/test"], rel=1e-3)
    assert abs(ddp["acc/test"] - one["acc/test"]) <= 0.003
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ddp"]  # exactly one run folder
    # batch/loss is the global batch's loss (the mean over the two halves), not rank 0's half
    (step, ddp_loss), (_, single_loss) = (
        event_curves(run_dir)["batch/loss"][0],
        event_curves(single)["batch/loss"][0],
    )
    assert step == 1
    assert ddp_loss == pytest.approx(single_loss, abs=1e-6)


def test_ddp_inside_a_multirun_makes_one_sweep_with_two_jobs(tmp_path, data_dir):
    res = train_process(
        "-m", "loss=sse,cee", "trainer=ddp", "trainer.devices=2", *SMALL, cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    sweeps = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1, sweeps  # no second sweep re-launched by a child process
    jobs = sorted(p.name for p in sweeps[0].iterdir() if p.is_dir())
    assert jobs == ["loss=cee", "loss=sse"]
    for job in jobs:
        assert len(list((sweeps[0] / job).glob("events.*"))) == 1
        assert (sweeps[0] / job / "result.json").is_file()  # both completed
    assert not (tmp_path / "multirun").exists()
