"""losslab-train's entry point, what a shell sees once Hydra has returned: a refused run's one
line and status 2, a sweep's failed jobs and status 1 (the runs themselves: test_tiny_run)."""

from __future__ import annotations

import sys

import pytest

import losslab.train
from losslab.errors import UsageError
from losslab.sweep import sweeper as sweep


@pytest.fixture
def entry(monkeypatch):
    """``entry(argv)`` with Hydra's part replaced by what its runs leave behind in the outcome
    the task carries (``main.__wrapped__.outcome``, the Hydra task's): ``refused`` (a single
    run's UsageError) or ``failed`` (a sweep's job names, as the sweeper appends them)."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def run(argv: list[str], refused: UsageError | None = None, failed: tuple = ()) -> list[str]:
        seen = []

        def run_hydra(prog, main):
            seen.extend([prog, *sys.argv[1:]])
            outcome = main.__wrapped__.outcome
            assert (outcome.refused, outcome.failed_jobs) == (None, [])  # a fresh one each time
            outcome.refused = refused
            outcome.failed_jobs.extend(failed)

        monkeypatch.setattr(losslab.train, "run_hydra", run_hydra)
        monkeypatch.setattr(sys, "argv", ["losslab-train", *argv])
        losslab.train.entry()
        return seen

    return run


def test_a_run_that_ends_well_exits_quietly_with_hydras_arguments(entry, capsys):
    assert entry(["loss=sse", "-m"]) == ["losslab-train", "loss=sse", "-m"]
    assert capsys.readouterr().err == ""


def test_a_refused_run_exits_2_with_its_one_line(entry, capsys):
    with pytest.raises(SystemExit) as info:
        entry(["data.batch_size=0"], refused=UsageError("data.batch_size must be >= 1"))
    assert info.value.code == 2
    assert capsys.readouterr().err == "losslab-train: error: data.batch_size must be >= 1\n"


def test_hydra_full_error_shows_the_refusal_as_a_traceback(entry, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(UsageError, match=r"^seed must be >= 0$"):
        entry(["seed=-1"], refused=UsageError("seed must be >= 0"))


def test_failed_jobs_of_a_sweep_exit_1_naming_each(entry, capsys):
    with pytest.raises(SystemExit) as info:
        entry(["-m", "loss=sse,cee"], failed=["loss=sse", "loss=cee"])
    assert info.value.code == 1
    assert capsys.readouterr().err == (
        "losslab-train: error: 2 job(s) of the sweep failed: loss=sse, loss=cee\n"
    )


def test_each_command_starts_from_a_fresh_outcome(entry, capsys):
    """What one command came to is its own: no module state carries a refusal or a failed job
    into the next command run in the same process (tests, a notebook)."""
    assert not hasattr(losslab.train, "REFUSED")
    assert not hasattr(sweep, "FAILED_JOBS")
    with pytest.raises(SystemExit):
        entry(["-m", "loss=sse,cee"], failed=["loss=sse"])
    with pytest.raises(SystemExit):
        entry(["seed=-1"], refused=UsageError("seed must be >= 0"))
    capsys.readouterr()
    entry(["loss=sse"])  # nothing left over: exits quietly
    assert capsys.readouterr().err == ""


def test_the_hydra_task_records_the_outcome_of_a_run(monkeypatch):
    """The function Hydra calls carries its outcome: a single run's refusal (not raised through
    Hydra, which would print its own line first) and the number a sweeper maximises."""
    from types import SimpleNamespace

    from hydra.types import RunMode

    tasks = []
    monkeypatch.setattr(losslab.train, "run_hydra", lambda prog, main: tasks.append(main))
    monkeypatch.setattr(sys, "argv", ["losslab-train"])
    losslab.train.entry()
    (main,) = tasks
    task = main.__wrapped__
    single = SimpleNamespace(mode=RunMode.RUN)
    monkeypatch.setattr(losslab.train.HydraConfig, "get", lambda: single)
    monkeypatch.setattr(losslab.train, "train", lambda cfg: 0.75)
    assert task(None) == 0.75
    assert (task.outcome.result, task.outcome.refused) == (0.75, None)

    def refuse(cfg):
        raise UsageError("seed must be >= 0")

    monkeypatch.setattr(losslab.train, "train", refuse)
    assert task(None) == 0.75  # the last result, nothing raised
    assert str(task.outcome.refused) == "seed must be >= 0"
