"""Sweeps: job folders named by what varies, all in the sweep's one folder; a rerun skips what
finished with the same config (found by what the run is, whatever its folder is called) and
refuses, before anything runs, jobs whose folder holds another config's run (retrain on request);
the same run twice in one sweep trained once; failed jobs reported; interrupted jobs resumed;
experiments as sweep keys; one progress line per job; a user's own config folder (single run,
sweep, DDP); the submitit launcher."""

from __future__ import annotations

import csv
import json
import pickle
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, compose_train, job_folders, ok, train, train_process, tree_digest
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from losslab.run.build import DATA_HINT
from losslab.run.overrides import swept_keys
from losslab.run.rundir import RunDir
from losslab.sweep.sweeper import ComposedOnce, job_names

TINY = ["data.train_size=500", "trainer.max_epochs=1"]
CRASH = ["+callbacks.crash._target_=crash_callback.CrashAfterEpoch"]


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
    assert names("+tag='a=1','b=2'") == ["+tag='a=1'", "+tag='b=2'"]  # a value with "="
    assert names("hydra.sweep.dir=x") == ["job"]  # nothing to name it by


def test_swept_keys_lists_the_configs_a_glob_matches():
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        assert swept_keys(["loss=glob(s*)", "seed=0,1"]) == {
            "loss": ["sse", "sse_logits"],
            "seed": ["0", "1"],
        }


def test_swept_keys_lists_values_of_sweeps_only():
    assert swept_keys(["loss=sse,cee", "seed=0", "optimizer.lr=range(1,3)", "hydra.x=1,2"]) == {
        "loss": ["sse", "cee"],
        "optimizer.lr": ["1", "2"],
    }
    hydras = ["hydra/launcher=basic,joblib", "hydra.job.chdir=true,false", "ckpt_path=a,b"]
    assert swept_keys([*hydras, "hydrant=1,2", "ckpt_paths=3,4"]) == {
        "hydrant": ["1", "2"],  # a key of its own, not one of Hydra's
        "ckpt_paths": ["3", "4"],
    }


# -- a sweep run again into the same folder -----------------------------------------------------


@pytest.mark.slow
def test_a_rerun_skips_finished_jobs_and_refuses_changed_ones_before_anything_runs(
    tmp_path, data_dir
):
    sweep = ["-m", "loss=sse,cee", *TINY, "hydra.sweep.dir=sw"]
    ok(train(*sweep, cwd=tmp_path))
    before = tree_digest(tmp_path / "sw" / "loss=sse")

    same = ok(train(*sweep, cwd=tmp_path))  # the same command: nothing is trained twice
    assert same.stdout.startswith(
        "losslab-train: 0 job(s) into sw; 2 finished before or repeated, skipped: loss=sse, "
        "loss=cee\n"
    )
    assert "finished before" not in same.stderr
    assert tree_digest(tmp_path / "sw" / "loss=sse") == before

    everything = tree_digest(tmp_path / "sw")
    changed = train(*sweep, "optimizer.lr=0.5", cwd=tmp_path)  # the second command
    assert changed.returncode == 2
    assert changed.stderr.count("\n") == 1, changed.stderr
    for text in ("loss=sse (optimizer.lr: 0.1 -> 0.5)", "loss=cee (optimizer.lr: 0.1 -> 0.5)",
                 "Nothing was run", "hydra.sweep.dir", "hydra.sweeper.retrain=true"):  # fmt: skip
        assert text in changed.stderr, (text, changed.stderr)
    assert tree_digest(tmp_path / "sw") == everything  # multirun.yaml and the report included

    ok(train(*sweep, "optimizer.lr=0.5", "hydra.sweeper.retrain=true", cwd=tmp_path))
    with (tmp_path / "sw" / "summary.csv").open() as f:
        assert sorted(float(r["lr"]) for r in csv.DictReader(f)) == [0.5, 0.5]
    assert "optimizer.lr=0.5" in (tmp_path / "sw" / "multirun.yaml").read_text()


# the shared sweep_2x2's command
SWEEP_2X2 = ["-m", "loss=sse,cee", "data.batch_size=50,500", "data.train_size=1000",
             "data.val_size=500", "trainer.max_epochs=1"]  # fmt: skip


def test_the_sweepers_decisions_on_a_finished_sweep_train_nothing(sweep_2x2, tmp_path):
    """The shared 2 x 2 sweep, copied: the same command skips every job and changes no job
    folder; a changed one is refused, naming every job and key, before anything runs."""
    import shutil

    shutil.copytree(sweep_2x2, tmp_path / "sw", symlinks=True)
    jobs = ["loss=sse,data.batch_size=50", "loss=sse,data.batch_size=500",
            "loss=cee,data.batch_size=50", "loss=cee,data.batch_size=500"]  # fmt: skip
    before = tree_digest(tmp_path / "sw")
    same = ok(train(*SWEEP_2X2, "hydra.sweep.dir=sw", "~hydra.callbacks.report", cwd=tmp_path))
    # one line for the sweep, naming the first three jobs it skipped
    assert same.stdout == (
        f"losslab-train: 0 job(s) into sw; 4 finished before or repeated, skipped: "
        f"{jobs[0]}, {jobs[1]}, {jobs[2]} and 1 more\n"
    )
    bookkeeping = ("multirun.yaml", ".progress")  # the sweep's own files, rewritten each launch
    assert {k: v for k, v in tree_digest(tmp_path / "sw").items() if k not in bookkeeping} == {
        k: v for k, v in before.items() if k not in bookkeeping
    }
    everything = tree_digest(tmp_path / "sw")
    changed = train(*SWEEP_2X2, "trainer.max_epochs=2", "hydra.sweep.dir=sw", cwd=tmp_path)
    assert changed.returncode == 2
    assert changed.stderr.count("\n") == 1, changed.stderr
    for job in jobs:
        assert f"{job} (trainer.max_epochs: 1 -> 2)" in changed.stderr
    assert "Nothing was run" in changed.stderr
    assert tree_digest(tmp_path / "sw") == everything


@pytest.mark.slow
def test_a_user_subdir_names_the_job_folders_and_none_is_reused(sweep_2x2, tmp_path):
    """``hydra.sweep.subdir=${hydra.job.num}``, Hydra's own naming, over a finished sweep: the
    jobs run in folders 0..3, and no job folder of the sweep is skipped or refused."""
    import shutil

    shutil.copytree(sweep_2x2, tmp_path / "sw", symlinks=True)
    res = train(*SWEEP_2X2, "trainer.max_epochs=2", "hydra.sweep.dir=sw",
                "hydra.sweep.subdir=${hydra.job.num}", "trainer.fast_dev_run=true",
                "~hydra.callbacks.report", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "finished before" not in res.stdout
    numbered = sorted(p.name for p in (tmp_path / "sw").iterdir() if p.name.isdigit())
    assert numbered == ["0", "1", "2", "3"]
    assert all((tmp_path / "sw" / n / ".hydra" / "config.yaml").is_file() for n in numbered)


@pytest.mark.slow
def test_a_job_started_with_another_config_and_nothing_to_resume_is_started_over(
    tmp_path, data_dir
):
    job = tmp_path / "sw" / "loss=sse"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text("optimizer:\n  lr: 7.0\n")  # killed at once
    (job / ".hydra" / "resolved.yaml").write_text("optimizer:\n  lr: 7.0\n")
    res = ok(train("-m", "loss=sse,cee", *TINY, "hydra.sweep.dir=sw", cwd=tmp_path))
    assert (job / "result.json").is_file(), res.stdout + res.stderr
    assert "lr: 0.1" in (job / ".hydra" / "resolved.yaml").read_text()


@pytest.mark.mutation_targets("sweeper", "rundir", "start", "train", "progress")
def test_jobs_run_one_batch_at_a_time_failures_are_recorded_and_a_rerun_restarts_or_resumes(
    tiny_mnist, tmp_path
):
    """On the tiny MNIST (2 batches an epoch), one job per launch (max_batch_size=1): job
    crash.epoch=0 crashes before any checkpoint, crash.epoch=1 after epoch 1's. Each failure is
    written into its folder and named; Hydra numbers the jobs 0 and 1 across the launches. Run
    again without the crash: the first is started over, the second resumed from epoch 1."""
    args = ["-m", *CRASH, "+callbacks.crash.epoch=0,1", f"data.data_dir={tiny_mnist['root']}",
            "data.download=false", "data.batch_size=25", "trainer.max_epochs=2",
            "hydra.sweeper.max_batch_size=1", "hydra.sweep.dir=sw", "~hydra.callbacks.report"]  # fmt: skip
    res = train(*args, cwd=tmp_path, env={"LOSSLAB_TEST_CRASH": "1"})
    assert res.returncode == 1, res.stderr[-2000:]
    sw, jobs = tmp_path / "sw", ["+callbacks.crash.epoch=0", "+callbacks.crash.epoch=1"]
    for epoch, job in enumerate(jobs):
        message = f"RuntimeError: simulated crash after epoch {epoch}"
        assert f"losslab-train: job {job} failed: {message}" in res.stderr
        assert (sw / job / "error.txt").read_text().splitlines()[0] == message
        hydra = OmegaConf.load(sw / job / ".hydra" / "hydra.yaml").hydra
        assert (hydra.job.num, Path(hydra.runtime.output_dir).name) == (epoch, job)
    for epoch in (0, 1):  # a crash shows where: its traceback ends on the message again
        assert res.stderr.count(f"RuntimeError: simulated crash after epoch {epoch}\n") >= 2
    assert res.stderr.endswith(
        f"losslab-train: error: 2 job(s) of the sweep failed: {', '.join(jobs)}\n"
    )
    assert not (sw / jobs[0] / "checkpoints").exists()
    assert (sw / jobs[1] / "checkpoints" / "last.ckpt").exists()
    assert (sw / "multirun.yaml").is_file()
    # each job's one line says it failed, counted over the whole sweep (both launches)
    progress = [line for line in res.stdout.splitlines() if line.startswith("sweep ")]
    assert [line.split("  ")[:3] for line in progress] == [
        ["sweep 1/2", jobs[0], "failed"],
        ["sweep 2/2", jobs[1], "failed"],
    ]

    again = ok(train(*args, cwd=tmp_path))
    assert "failed" not in again.stderr
    for job in jobs:
        assert not (sw / job / "error.txt").exists()
        assert json.loads((sw / job / "result.json").read_text())["epochs"] == 2
    assert not (sw / jobs[0] / ".hydra" / "resumes.yaml").exists()  # started over
    (resumed,) = yaml.safe_load((sw / jobs[1] / ".hydra" / "resumes.yaml").read_text())
    assert "ckpt_path=last" in resumed["overrides"]


@pytest.mark.slow
def test_a_failed_job_is_reported_and_the_sweep_exits_non_zero(tmp_path, data_dir):
    """Job crash.epoch=0 raises in its first epoch; crash.epoch=5 never does."""
    res = train("-m", *CRASH, "+callbacks.crash.epoch=0,5", *TINY, "hydra.sweep.dir=sweep",
                cwd=tmp_path, env={"LOSSLAB_TEST_CRASH": "1"})  # fmt: skip
    sweep = tmp_path / "sweep"
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


@pytest.mark.slow
def test_an_interrupted_job_of_a_sweep_resumes_when_the_sweep_is_run_again(tmp_path, data_dir):
    args = ["-m", "loss=sse,cee", "data.train_size=500", "trainer.max_epochs=2", *CRASH,
            "+callbacks.crash.epoch=1", "hydra.sweep.dir=sweep"]  # fmt: skip
    res = train(*args, cwd=tmp_path, env={"LOSSLAB_TEST_CRASH": "1"})
    sweep = tmp_path / "sweep"
    assert res.returncode == 1
    assert (sweep / "loss=sse" / "error.txt").is_file()
    ok(train(*args, cwd=tmp_path))
    with (sweep / "summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["run"], r["status"], r["epochs"]) for r in rows) == [
        ("loss=cee", "ok", "2"),
        ("loss=sse", "ok", "2"),
    ]
    assert not (sweep / "loss=sse" / "error.txt").exists()


# -- a user's own config folder -----------------------------------------------------------------


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
    ok(train("--config-dir", str(user_conf), "experiment=tiny_a", cwd=tmp_path))
    (run,) = (tmp_path / "logs" / "tiny_a" / "runs").iterdir()  # its own task_name
    config = (run / ".hydra" / "config.yaml").read_text()
    assert "seed: 7" in config  # a top-level key of the experiment took effect
    assert "activation: tanh" in config  # the user's model config
    assert "- 16" in config


@pytest.mark.slow
def test_a_sweep_over_experiments_gives_each_its_own_folder_and_a_rerun_skips_them(
    user_conf, tmp_path, data_dir
):
    args = [
        "-m",
        "--config-dir",
        str(user_conf),
        "experiment=tiny_a,tiny_b",
        "hydra.sweep.dir=sweep",
    ]
    ok(train(*args, cwd=tmp_path))
    sweep = tmp_path / "sweep"
    assert job_folders(sweep) == ["experiment=tiny_a", "experiment=tiny_b"]
    before = tree_digest(sweep / "experiment=tiny_a")
    res = ok(train(*args, cwd=tmp_path))  # the same command again: both finished
    assert res.stdout.startswith(
        "losslab-train: 0 job(s) into sweep; 2 finished before or repeated, skipped: "
        "experiment=tiny_a, experiment=tiny_b\n"
    )
    assert tree_digest(sweep / "experiment=tiny_a") == before


@pytest.mark.slow
def test_a_sweep_over_experiments_with_their_own_task_names_lands_in_one_folder(
    user_conf, tmp_path, data_dir
):
    """Each experiment names its own task_name (its log folder), but the sweep's folder is
    resolved once, from the command line's config: both jobs land in it."""
    ok(train("-m", "--config-dir", str(user_conf), "experiment=tiny_a,tiny_b", cwd=tmp_path))
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["train"]
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    assert job_folders(sweep) == ["experiment=tiny_a", "experiment=tiny_b"]
    for job, task in (("experiment=tiny_a", "tiny_a"), ("experiment=tiny_b", "tiny_b")):
        assert yaml.safe_load((sweep / job / ".hydra" / "config.yaml").read_text())[
            "task_name"
        ] == (task)


@pytest.mark.slow
@pytest.mark.process
def test_a_user_config_folder_reaches_the_ddp_processes_of_a_sweep(user_conf, tmp_path, data_dir):
    res = train_process("-m", "--config-dir", str(user_conf), "experiment=tiny_b", "trainer=ddp",
                        "trainer.devices=2", "seed=7,8", "hydra.sweep.dir=sweep", cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    sweep = tmp_path / "sweep"
    assert job_folders(sweep) == ["seed=7", "seed=8"]
    for job in job_folders(sweep):
        assert (sweep / job / "checkpoints" / "last.ckpt").is_file()
        assert "- 24" in (sweep / job / ".hydra" / "config.yaml").read_text()


@pytest.mark.slow
@pytest.mark.process
def test_a_submitit_local_sweep_of_two_jobs_completes(tmp_path, data_dir):
    res = train_process("-m", "hydra/launcher=submitit_local", "loss=sse,cee", *TINY, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    assert job_folders(sweep) == ["loss=cee", "loss=sse"]
    assert all((sweep / j / "checkpoints" / "last.ckpt").is_file() for j in job_folders(sweep))
    assert (sweep / "summary.csv").is_file()


class CountingLoader:
    """Hydra's config loader, as far as ComposedOnce uses it: counts its compositions."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def load_sweep_config(self, master_config, sweep_overrides):
        self.calls.append(list(sweep_overrides))
        return OmegaConf.create({"job": list(sweep_overrides), "nested": {"x": 1}})

    def get_sources(self) -> str:
        return "sources"


def test_a_sweep_composes_each_job_once_and_hands_out_copies():
    loader = CountingLoader()
    once = ComposedOnce(loader)
    master = OmegaConf.create({})
    first = once.load_sweep_config(master, ["loss=sse"])
    first.nested.x = 99  # a job that changes its config changes its own copy only
    again = once.load_sweep_config(master, ["loss=sse"])
    other = once.load_sweep_config(master, ["loss=cee"])
    assert loader.calls == [["loss=sse"], ["loss=cee"]]
    assert (again.nested.x, list(again.job), list(other.job)) == (1, ["loss=sse"], ["loss=cee"])
    assert once.get_sources() == "sources"  # everything else is Hydra's loader
    shipped = pickle.loads(pickle.dumps(once))  # to a launcher's worker process: no cache
    shipped.load_sweep_config(master, ["loss=sse"])
    assert shipped._loader.calls == [["loss=sse"], ["loss=cee"], ["loss=sse"]]


# -- the sweeper's decisions, in process: a launcher that records instead of training -------------


def crashed(message: str) -> BaseException:
    """An exception as a job raises it: with its traceback."""
    try:
        raise RuntimeError(message)
    except RuntimeError as err:
        return err


class RecordingLauncher:
    """Hydra's launcher, as far as the sweeper uses it: records each launch (the jobs' overrides
    and the index of the first) and trains nothing; ``fails`` maps a job folder name to what
    that job raises."""

    def __init__(self, sweep_dir: Path, fails: dict[str, BaseException]) -> None:
        self.sweep_dir, self.fails, self.launches = sweep_dir, fails, []

    def launch(self, job_overrides, initial_job_idx):
        from hydra.core.utils import JobReturn, JobStatus

        self.launches.append(([list(job) for job in job_overrides], initial_job_idx))
        results = []
        for job in job_overrides:
            subdir = [o for o in job if o.startswith("hydra.sweep.subdir=")]
            name = subdir[0].partition("=")[2].strip("'") if subdir else ""
            folder = {"hydra": {"runtime": {"output_dir": str(self.sweep_dir / name)}}}
            failed = name in self.fails
            results.append(
                JobReturn(
                    overrides=list(job),
                    hydra_cfg=OmegaConf.create(folder),
                    status=JobStatus.FAILED if failed else JobStatus.COMPLETED,
                    _return_value=self.fails[name] if failed else 0.9,
                )
            )
        return results


def sweep(
    sweep_dir: Path | None, *overrides: str, fails=None, outcome=None
) -> tuple[RecordingLauncher, object]:
    """``losslab-train -m OVERRIDES hydra.sweep.dir=SWEEP_DIR`` up to the launches: Hydra's
    multirun config and losslab's sweeper, as ``losslab-train -m`` makes them (its task carries
    ``outcome``, as losslab-train's does), with a recording launcher. Returns the launcher and
    what the sweep returned. ``sweep_dir=None``: the sweep's folder is the config's."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext, RunMode

    from losslab.run.config import register

    register()
    args = [*overrides, *([f"hydra.sweep.dir={sweep_dir}"] if sweep_dir else [])]

    def task(cfg):
        return None

    if outcome is not None:
        task.outcome = outcome
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        cfg = hydra.compose_config("train", args, run_mode=RunMode.MULTIRUN)
        HydraConfig.instance().set_config(cfg)
        before = HydraConfig.instance().cfg
        sweeper = Plugins.instance().instantiate_sweeper(
            config=cfg,
            hydra_context=HydraContext(config_loader=hydra.config_loader, callbacks=None),
            task_function=task,
        )
        sweep_dir = Path(cfg.hydra.sweep.dir)
        sweeper.launcher = launcher = RecordingLauncher(sweep_dir, fails or {})
        returned = sweeper.sweep(arguments=OmegaConf.to_container(cfg.hydra.overrides.task))
        assert (
            HydraConfig.instance().cfg is before
        )  # the checks of the jobs leave it as they found it
    return launcher, returned


def finished(folder: Path, *overrides: str) -> RunDir:
    """A job folder as losslab-train leaves it when ``losslab-train OVERRIDES`` finished there."""
    from hydra.core.hydra_config import HydraConfig

    cfg = compose_train(list(overrides), checked=False, output_dir=str(folder))
    choices = {"hydra": {"runtime": {"choices": dict(HydraConfig.get().runtime.choices)}}}
    run = RunDir(folder)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    run.write_config(OmegaConf.to_yaml(cfg), resolved, yaml.safe_dump(choices), list(overrides))
    run.write_result("ok", 1, {}, {}, 1.0)
    return run


def on(data: dict) -> list[str]:
    """The overrides that point a job at the tiny MNIST."""
    return [f"data.data_dir={data['root']}", "data.download=False"]


def subdir(name: str) -> str:
    return f"hydra.sweep.subdir='{name}'"


def in_dir(sweep_dir: Path) -> str:
    """What every job is given: the sweep's one folder, resolved once."""
    return f"hydra.sweep.dir='{sweep_dir}'"


@pytest.mark.mutation_targets("sweeper")
def test_a_sweep_launches_its_batches_in_turn_and_records_the_jobs_that_fail(
    tiny_mnist, tmp_path, capsys, monkeypatch
):
    """Three jobs, one a launch; job seed=1 crashes, seed=3 is refused: each failure is written
    into its folder and named, and the sweep goes on. Hydra numbers the jobs across the launches."""
    from losslab.errors import UsageError
    from losslab.train import Outcome

    fails = {"seed=1": crashed("simulated crash\nsecond line"),
             "seed=3": UsageError("optimizer.lr: must be\n  > 0")}  # fmt: skip
    sw = tmp_path / "not" / "yet" / "sw"  # its parent folders too are made
    outcome = Outcome()
    launcher, returned = sweep(sw, "seed=1,2,3", *on(tiny_mnist), "hydra.sweeper.max_batch_size=1",
                               fails=fails, outcome=outcome)  # fmt: skip
    assert launcher.launches == [
        ([[f"seed={s}", *on(tiny_mnist), in_dir(sw), subdir(f"seed={s}")]], s - 1)
        for s in (1, 2, 3)
    ]
    assert [[r.status.name for r in batch] for batch in returned] == [
        ["FAILED"],
        ["COMPLETED"],
        ["FAILED"],
    ]
    assert OmegaConf.load(sw / "multirun.yaml").hydra.sweep.dir == str(sw)
    assert outcome.failed_jobs == ["seed=1", "seed=3"]  # what losslab-train exits 1 for
    assert outcome.refused is None
    text = (sw / "seed=1" / "error.txt").read_text().split("\n")
    assert text[:3] == ["RuntimeError: simulated crash", "", "Traceback (most recent call last):"]
    assert text[3].startswith('  File "')
    assert text[-3:] == ["RuntimeError: simulated crash", "second line", ""]
    assert RunDir(sw / "seed=3").error_line() == "optimizer.lr: must be > 0"
    assert not (sw / "seed=2").exists()
    out, err = capsys.readouterr()
    assert out == f"losslab-train: 3 job(s) into {sw}\n"
    assert json.loads((sw / ".progress").read_text().splitlines()[0])["total"] == 3
    assert "losslab-train: job seed=1 failed: RuntimeError: simulated crash\n" in err
    assert "losslab-train: job seed=3 failed: optimizer.lr: must be > 0\n" in err
    assert err.count("Traceback") == 1  # a crash shows where, a usage error does not


def test_a_sweep_whose_task_carries_no_outcome_still_records_its_failures(tiny_mnist, tmp_path):
    """Another task function (not losslab-train's): the failures are written and named all the
    same."""
    sw = tmp_path / "sw"
    sweep(sw, "seed=1,2", *on(tiny_mnist), fails={"seed=2": crashed("boom")})
    assert RunDir(sw / "seed=2").error_line() == "RuntimeError: boom"


@pytest.mark.mutation_targets("sweeper")
def test_a_glob_over_a_group_gives_a_job_per_matching_config(tiny_mnist, tmp_path):
    launcher, _ = sweep(tmp_path / "sw", "loss=glob(s*)", *on(tiny_mnist))
    ((jobs, _),) = launcher.launches
    assert [job[-1] for job in jobs] == [subdir("loss=sse"), subdir("loss=sse_logits")]


@pytest.mark.mutation_targets("sweeper")
def test_a_rerun_launches_only_the_jobs_that_did_not_finish(tiny_mnist, tmp_path, capsys):
    sw = tmp_path / "sw"
    finished(sw / "seed=1", "seed=1", *on(tiny_mnist))
    launcher, _ = sweep(sw, "seed=1,2", *on(tiny_mnist), "hydra.sweeper.max_batch_size=1")
    assert launcher.launches == [([["seed=2", *on(tiny_mnist), in_dir(sw), subdir("seed=2")]], 0)]
    assert capsys.readouterr().out == (
        f"losslab-train: 1 job(s) into {sw}; 1 finished before or repeated, skipped: seed=1\n"
    )


@pytest.mark.mutation_targets("sweeper")
def test_a_rerun_with_its_keys_in_another_order_finds_its_finished_jobs(
    tiny_mnist, tmp_path, capsys
):
    """The job folders are named by the first command (``loss=...,seed=...``); the same sweep
    typed the other way round names its jobs ``seed=...,loss=...``, and finds the runs by what
    they are: nothing is trained again, no folder is added."""
    sw = tmp_path / "sw"
    finished(sw / "loss=sse,seed=1", "loss=sse", "seed=1", *on(tiny_mnist))
    finished(sw / "loss=cee,seed=1", "loss=cee", "seed=1", *on(tiny_mnist))
    before = tree_digest(sw)
    launcher, _ = sweep(sw, "seed=1,2", "loss=sse,cee", *on(tiny_mnist))
    ((jobs, _),) = launcher.launches
    assert [job[-1] for job in jobs] == [subdir("seed=2,loss=sse"), subdir("seed=2,loss=cee")]
    assert capsys.readouterr().out == (
        f"losslab-train: 2 job(s) into {sw}; 2 finished before or repeated, skipped: "
        f"loss=sse,seed=1, loss=cee,seed=1\n"
    )
    assert {k: v for k, v in tree_digest(sw).items() if k.startswith("loss=")} == before


@pytest.mark.mutation_targets("sweeper")
def test_the_same_run_twice_in_one_sweep_is_trained_once(tiny_mnist, tmp_path, capsys):
    sw = tmp_path / "sw"
    launcher, _ = sweep(sw, "seed=1,1,2", *on(tiny_mnist))
    ((jobs, _),) = launcher.launches
    assert [job[0] for job in jobs] == ["seed=1", "seed=2"]
    assert capsys.readouterr().out == (
        f"losslab-train: 2 job(s) into {sw}; 1 finished before or repeated, skipped: "
        f"seed=1,#2 (the same run as seed=1)\n"
    )


@pytest.mark.mutation_targets("sweeper")
def test_a_run_that_finished_in_a_reuse_folder_is_copied_not_trained(tiny_mnist, tmp_path, capsys):
    """``hydra.sweeper.reuse``: a job whose run finished in another sweep's folder with the same
    config (whatever that folder's experiment or ``study.*`` bookkeeping) gets a copy of it; a run
    there with another lr, or one that did not finish, is trained here."""
    other, sw = tmp_path / "final", tmp_path / "fixed"
    same = finished(other / "lr_rank=1,seed=1", "seed=1", "study.lr_rank=1", *on(tiny_mnist))
    finished(other / "seed=2", "seed=2", "optimizer.lr=0.5", *on(tiny_mnist))
    finished(other / "seed=3", "seed=3", *on(tiny_mnist)).result_file.unlink()  # started only
    before = tree_digest(other)
    launcher, _ = sweep(sw, "seed=1,2,3", *on(tiny_mnist), f"hydra.sweeper.reuse=[{sw}/../final]")
    ((jobs, _),) = launcher.launches
    assert [job[0] for job in jobs] == ["seed=2", "seed=3"]
    assert tree_digest(sw / "seed=1") == tree_digest(same.path)  # a whole copy
    assert RunDir(sw / "seed=1").identity() == same.identity()
    assert tree_digest(other) == before  # the other sweep's runs stay as they were
    assert capsys.readouterr().out == (
        f"losslab-train: 2 job(s) into {sw}; 1 finished before or repeated, skipped: "
        f"seed=1 (copied from {other / 'lr_rank=1,seed=1'})\n"
    )
    # run again: the copy is this sweep's own finished run now
    launcher, _ = sweep(sw, "seed=1", *on(tiny_mnist), f"hydra.sweeper.reuse=[{other}]")
    assert launcher.launches == []


@pytest.mark.mutation_targets("sweeper")
def test_a_rerun_that_only_prints_more_skips_the_finished_jobs(tiny_mnist, tmp_path, capsys):
    """``verbose=true`` changes what a job prints, not what it computes: the same runs."""
    sw = tmp_path / "sw"
    finished(sw / "seed=1", "seed=1", *on(tiny_mnist))
    launcher, _ = sweep(sw, "seed=1,2", *on(tiny_mnist), "verbose=true")
    assert [job[0] for (jobs, _) in launcher.launches for job in jobs] == ["seed=2"]
    assert "skipped: seed=1\n" in capsys.readouterr().out


@pytest.mark.mutation_targets("sweeper")
def test_every_job_gets_the_sweeps_one_folder(tiny_mnist, tmp_path):
    """The sweep's folder is resolved once, from the command's config (task_name=train and the
    time), and handed to every job: an experiment's own task_name cannot send a job elsewhere."""
    launcher, _ = sweep(None, "experiment=book_ch4,overfit", f"paths.log_dir={tmp_path}",
                        *on(tiny_mnist))  # fmt: skip
    ((jobs, _),) = launcher.launches
    folders = {o for job in jobs for o in job if o.startswith("hydra.sweep.dir=")}
    (folder,) = folders
    sweep_dir = Path(folder.partition("=")[2].strip("'"))
    assert sweep_dir.parent == tmp_path / "train" / "multiruns"
    assert (sweep_dir / "multirun.yaml").is_file()
    assert [job[-1] for job in jobs] == [
        subdir("experiment=book_ch4"),
        subdir("experiment=overfit"),
    ]


@pytest.mark.parametrize("sampled", ["optimizer.lr=interval(0.01,1)", "seed=interval(0,10)"])
def test_a_range_to_sample_from_is_refused_before_anything_runs(tiny_mnist, tmp_path, sampled):
    from losslab.errors import UsageError

    with pytest.raises(UsageError) as refused:
        sweep(tmp_path / "sw", "loss=sse,cee", sampled, *on(tiny_mnist))
    assert str(refused.value) == (
        f"{sampled}: interval() is a range for a sampling sweeper (Optuna, Nevergrad); losslab's "
        f"sweeper runs lists (a,b,c), choice(...), range(...) and glob(...): list the values"
    )
    assert not (tmp_path / "sw").exists()


@pytest.mark.mutation_targets("sweeper")
def test_a_rerun_with_another_config_is_refused_naming_each_job_and_what_differs(
    tiny_mnist, tmp_path
):
    from losslab.errors import UsageError

    sw = tmp_path / "sw"
    changed = [
        "optimizer.lr=0.5",
        "trainer.max_epochs=4",
        "data.batch_size=10",
        "data.label_noise=0.2",
    ]
    finished(sw / "loss=sse", "loss=sse", *on(tiny_mnist), *changed)
    finished(sw / "loss=cee", "loss=cee", *on(tiny_mnist), *changed[:3])
    before = tree_digest(sw)
    with pytest.raises(UsageError) as refused:
        sweep(sw, "loss=sse,cee", *on(tiny_mnist))
    assert str(refused.value) == (
        f"2 job(s) of this sweep already hold runs made with another config, in {sw}: "
        "loss=sse (data.batch_size: 10 -> 100, data.label_noise: 0.2 -> 0.0, optimizer.lr: 0.5 -> "
        "0.1, and 1 more); loss=cee (data.batch_size: 10 -> 100, optimizer.lr: 0.5 -> 0.1, "
        "trainer.max_epochs: 4 -> 5). "
        "Nothing was run: choose a new hydra.sweep.dir, or add hydra.sweeper.retrain=true to "
        "train these jobs again (their folders are replaced)"
    )
    assert tree_digest(sw) == before

    launcher, _ = sweep(sw, "loss=sse,cee", *on(tiny_mnist), "hydra.sweeper.retrain=true")
    assert [job[0] for job in launcher.launches[0][0]] == ["loss=sse", "loss=cee"]
    assert not (sw / "loss=sse").exists()  # replaced by the new runs
    assert not (sw / "loss=cee").exists()


@pytest.mark.mutation_targets("sweeper")
def test_a_user_subdir_is_kept_and_no_job_folder_is_judged(tiny_mnist, tmp_path):
    """``hydra.sweep.subdir=${hydra.job.num}``: Hydra names the folders; a folder named as
    losslab would name the job, holding another config's run, is no concern of this sweep."""
    sw = tmp_path / "sw"
    finished(sw / "seed=1", "seed=1", "optimizer.lr=0.5", *on(tiny_mnist))
    numbered = "hydra.sweep.subdir=${hydra.job.num}"
    launcher, _ = sweep(sw, "seed=1,2", *on(tiny_mnist), numbered)
    assert launcher.launches == [
        ([["seed=1", *on(tiny_mnist), in_dir(sw)], ["seed=2", *on(tiny_mnist), in_dir(sw)]], 0)
    ]


@pytest.mark.mutation_targets("sweeper")
def test_every_data_folder_of_a_sweep_is_checked_before_any_job_runs(tiny_mnist, tmp_path):
    from losslab.errors import UsageError

    empty = tmp_path / "empty"
    with pytest.raises(UsageError) as refused:
        sweep(tmp_path / "sw", f"data.data_dir={tiny_mnist['root']},{empty}", "data.download=false")
    assert str(refused.value).startswith(
        f"MNIST not found in {empty}/MNIST/raw (missing train-images-idx3-ubyte, "
    )
    assert str(refused.value).endswith(
        f"there. {DATA_HINT} (in the sweep's job data.data_dir={str(empty).replace('/', '_')})"
    )
    assert not (tmp_path / "sw").exists()


# -- what a sweep prints --------------------------------------------------------------------------


def tiny_sweep(tiny_mnist, *more: str) -> list[str]:
    return ["-m", "loss=sse,cee", f"data.data_dir={tiny_mnist['root']}", "data.download=false",
            "data.batch_size=20", "data.val_size=10", "data.eval_batch_size=25",
            "trainer.max_epochs=2", "hydra.sweep.dir=sw", "~hydra.callbacks.report", *more]  # fmt: skip


@pytest.mark.mutation_targets("sweeper", "train", "progress", "console")
def test_each_job_of_a_sweep_prints_one_line_when_it_ends_and_keeps_the_rest_in_its_log(
    tiny_mnist, tmp_path
):
    res = ok(train(*tiny_sweep(tiny_mnist), cwd=tmp_path))
    lines = res.stdout.splitlines()
    assert lines[0] == "losslab-train: 2 job(s) into sw"
    assert len(lines) == 3, res.stdout
    assert re.fullmatch(
        r"sweep 1/2  loss=sse  ok  val acc \d\.\d{4}  \d+\.\d s  ETA \d+ s", lines[1]
    )
    assert re.fullmatch(r"sweep 2/2  loss=cee  ok  val acc \d\.\d{4}  \d+\.\d s  all 2 in \d+ s",
                        lines[2])  # fmt: skip
    for line, job in zip(lines[1:], ("loss=sse", "loss=cee"), strict=True):
        result = json.loads((tmp_path / "sw" / job / "result.json").read_text())
        assert f"val acc {result['metrics']['hp/val_acc']:.4f}" in line
    assert res.stderr == ""  # Lightning's own lines and every warning: in the runs' train.log
    log = (tmp_path / "sw" / "loss=sse" / "train.log").read_text()
    assert "epoch   2  |" in log
    assert "losslab: ok after 2 epochs" in log
    assert "smaller than the logging interval" in log  # a warning, kept where it belongs
    records = (tmp_path / "sw" / ".progress").read_text().splitlines()
    assert json.loads(records[0])["total"] == 2
    assert [json.loads(r)["job"] for r in records[1:]] == ["loss=sse", "loss=cee"]


@pytest.mark.mutation_targets("sweeper", "train", "progress", "console")
def test_a_verbose_sweep_prints_each_jobs_epochs_and_summary_too(tiny_mnist, tmp_path):
    res = ok(train(*tiny_sweep(tiny_mnist, "verbose=true"), cwd=tmp_path))
    assert res.stdout.count("epoch   0  |") == 2
    assert res.stdout.count("losslab: ok after 2 epochs") == 2
    assert re.search(r"^sweep 2/2  loss=cee  ok  ", res.stdout, re.MULTILINE)


def test_a_progress_line_gives_the_count_the_job_its_result_and_the_time_left():
    import time

    from losslab.sweep.progress import duration, line

    header = {"total": 12, "start": time.time() - 40, "stage": "tune"}
    result = {"status": "ok", "history": [{"epoch": 0}, {"epoch": 1, "acc/val": 0.97123}]}
    assert line(header, 4, "loss=cee,seed=1", result, 4.12) == (
        "tune  4/12  loss=cee,seed=1  ok  val acc 0.9712  4.1 s  ETA 1 min 20 s"
    )
    tested = {"status": "diverged", "history": [{"epoch": 1, "acc/test": 0.1}]}
    assert line({**header, "stage": "sweep"}, 12, "seed=2", tested, 0.25) == (
        "sweep 12/12  seed=2  diverged  test acc 0.1000  0.2 s  all 12 in 40 s"
    )
    assert line(header, 5, "seed=3", None, 1.0) == "tune  5/12  seed=3  failed  1.0 s  ETA 56 s"
    assert [duration(s) for s in (0, 12.4, 60, 312, 3599.6, 3780, 36000)] == [
        "0 s", "12 s", "1 min 0 s", "5 min 12 s", "1 h 00 min", "1 h 03 min", "10 h 00 min"]  # fmt: skip
