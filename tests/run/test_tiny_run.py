"""A whole run on the tiny MNIST (50 training images), in this process, in seconds: what
losslab-train writes and prints from start to result, and what a start with ``ckpt_path`` does
to it (leave a finished run alone, train it longer, refuse another config, start a new run from
its checkpoint). The same paths on real MNIST are the slow tests of test_train and test_resume;
these are the ones ``make mutate`` runs."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml
from conftest import ok, train, tree_digest

from losslab.read.runs import read_curves

# make mutate runs these for the mutants of the modules they test (their training passes through
# the library, whose modules have tests of their own)
pytestmark = pytest.mark.mutation_targets(
    "train", "start", "build", "rundir", "callbacks", "console", "checkpoints"
)

TINY_RUN = ["data.download=false", "data.batch_size=20", "data.val_size=10",
            "data.eval_batch_size=25", "trainer.max_epochs=2", "~hydra.callbacks.report"]  # fmt: skip


@pytest.fixture
def tiny_run(tiny_mnist, tmp_path) -> tuple[Path, list[str], str]:
    """``(cwd, args, console)``: a finished 2-epoch run in ``cwd/run``, its arguments (``args``
    plus ``hydra.run.dir=run`` trains it) and what it printed."""
    args = [f"data.data_dir={tiny_mnist['root']}", *TINY_RUN]
    res = ok(train(*args, "hydra.run.dir=run", cwd=tmp_path))
    return tmp_path, args, res.stdout + res.stderr


def test_a_run_writes_its_config_result_reliability_checkpoint_and_summary(tiny_run):
    cwd, _, console = tiny_run
    run = cwd / "run"
    result = json.loads((run / "result.json").read_text())
    assert (result["status"], result["epochs"]) == ("ok", 2)
    assert (result["hparams"]["epochs"], result["hparams"]["status"]) == (2, "ok")
    # every epoch's metrics: the curves, also for a run that logged nothing
    assert [h["epoch"] for h in result["history"]] == [0, 1, 2]
    assert [h["step"] for h in result["history"]] == [0, 2, 4]
    curves = read_curves(run)
    for tag in ("acc/test", "loss/val", "acc/train"):
        assert [(h["epoch"], h[tag]) for h in result["history"]] == [
            (epoch, pytest.approx(value)) for epoch, value in curves[tag]
        ], tag
    assert result["hparams"]["loss"] == "cee"
    assert 0 < result["seconds"] < time.time() - (run / ".hydra" / "config.yaml").stat().st_mtime
    assert yaml.safe_load((run / "hparams.yaml").read_text()) == result["hparams"]  # no other
    reliability = json.loads((run / "reliability.json").read_text())
    assert reliability["epoch"] == 2
    counts = {split: sum(bins["count"]) for split, bins in reliability["bins"].items()}
    assert counts == {"train": 40, "val": 10, "test": 20}
    assert (run / "checkpoints" / "epoch=2-step=4.ckpt").is_file()  # 40 images / 20 a batch
    assert (run / "checkpoints" / "last.ckpt").resolve().name == "epoch=2-step=4.ckpt"
    hydra = yaml.safe_load((run / ".hydra" / "hydra.yaml").read_text())["hydra"]
    assert hydra["runtime"]["choices"]["loss"] == "cee"
    overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
    assert overrides[1:] == TINY_RUN[:-1]  # Hydra's own ~hydra.callbacks.report is not the task's
    assert yaml.safe_load((run / ".hydra" / "resolved.yaml").read_text())["data"]["val_size"] == 10
    assert not (run / ".hydra" / "resumes.yaml").exists()
    summary = re.search(r"losslab: ok after 2 epochs in [0-9.]+ s\n(.*\n){3}  logs   run\n"
                        r"  view   tensorboard --logdir run", console)  # fmt: skip
    assert summary, console
    for split in ("train", "val", "test"):
        line = re.search(rf"  {split:<5}  acc (\S+)  loss (\S+)  nll (\S+)  ece (\S+)", console)
        assert line, (split, console)
        assert all(re.fullmatch(r"\d+\.\d{4}", value) for value in line.groups()), line[0]
        metrics = result["metrics"]
        train_acc = metrics["hp/test_acc"] + metrics["hp/gap_acc"]  # gap = train - test
        expected = train_acc if split == "train" else metrics[f"hp/{split}_acc"]
        assert float(line[1]) == pytest.approx(expected, abs=5e-5)
    log = (run / "train.log").read_text()
    assert summary[0] in log
    # every warning goes to the run's train.log, none to the console (2 batches an epoch, fewer
    # than log_every_n_steps: Lightning warns)
    assert "smaller than the logging interval" in log
    assert "Warning" not in console
    assert "smaller than the logging interval" not in console


def test_a_resume_of_a_finished_run_changes_nothing_and_says_how_to_train_longer(tiny_run):
    cwd, args, _ = tiny_run
    before = tree_digest(cwd / "run")
    res = ok(train(*args, "hydra.run.dir=run", "ckpt_path=last", cwd=cwd))
    assert (
        "losslab: run finished before (ok after 2 epochs); nothing was changed. To train "
        "longer: ckpt_path=last trainer.max_epochs=<more than 2>"
    ) in res.stdout + res.stderr
    assert tree_digest(cwd / "run") == before


def test_a_resume_with_more_epochs_continues_in_place_and_records_the_change(tiny_run):
    cwd, args, _ = tiny_run
    res = ok(train(*args, "hydra.run.dir=run", "ckpt_path=last", "trainer.max_epochs=3", cwd=cwd))
    assert "changed: {'trainer.max_epochs': (2, 3)}" in res.stdout + res.stderr
    result = json.loads((cwd / "run" / "result.json").read_text())
    assert (result["status"], result["epochs"]) == ("ok", 3)
    (record,) = yaml.safe_load((cwd / "run" / ".hydra" / "resumes.yaml").read_text())
    assert "trainer.max_epochs=3" in record["overrides"]
    assert record["changed"] == {"trainer.max_epochs": [2, 3]}
    saved = yaml.safe_load((cwd / "run" / ".hydra" / "config.yaml").read_text())
    assert saved["trainer"]["max_epochs"] == 3
    assert (cwd / "run" / "checkpoints" / "epoch=3-step=6.ckpt").is_file()
    log = (cwd / "run" / "train.log").read_text()
    assert f"Restoring states from the checkpoint path at {cwd / 'run' / 'checkpoints'}" in log


def test_a_resume_that_changes_what_the_run_is_is_refused_naming_the_key(tiny_run):
    cwd, args, _ = tiny_run
    before = tree_digest(cwd / "run")
    res = train(*args, "hydra.run.dir=run", "ckpt_path=last", "loss=sse", "seed=3", cwd=cwd)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1, res.stderr
    assert "refused: loss=sse (the run has loss=cee); seed=3 (the run has seed=0)" in res.stderr
    assert tree_digest(cwd / "run") == before


def test_a_longer_resume_that_would_stretch_the_schedule_is_refused_in_one_line(
    tiny_mnist, tmp_path
):
    """A cosine schedule's T_max is ${trainer.max_epochs}: training longer would change the
    schedule the run trained with, so the resume is refused and the run left as it is."""
    args = [f"data.data_dir={tiny_mnist['root']}", *TINY_RUN, "hydra.run.dir=run"]
    ok(train(*args, "scheduler=cosine", cwd=tmp_path))
    before = tree_digest(tmp_path / "run")
    res = train(*args, "scheduler=cosine", "ckpt_path=last", "trainer.max_epochs=3", cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr == (
        f"losslab-train: error: ckpt_path=last: trainer.max_epochs=3 would also change "
        f"scheduler.T_max (2 -> 3) of {tmp_path / 'run'}, which trained with scheduler.T_max=2: "
        f"the run's schedule is part of what it is. At resume only trainer.max_epochs, "
        f"trainer.max_steps, trainer.enable_progress_bar, trainer.steps_per_call, threads, verbose, "
        f"data.data_dir, data.download may change: start a new run for another configuration "
        f"(init_from=<checkpoint> starts one from its weights)\n"
    )
    assert res.stderr.count("\n") == 1
    assert tree_digest(tmp_path / "run") == before


def test_init_from_a_run_folder_starts_from_its_last_checkpoint_and_records_the_file(tiny_run):
    cwd, args, _ = tiny_run
    ok(train(*args, "hydra.run.dir=warm", f"init_from={cwd / 'run'}", "seed=4", cwd=cwd))
    last = (cwd / "run" / "checkpoints" / "last.ckpt").resolve()
    config = yaml.safe_load((cwd / "warm" / ".hydra" / "config.yaml").read_text())
    assert config["init_from"] == str(last)  # what ran: the file the folder stood for
    old, new = read_curves(cwd / "run")["acc/test"], read_curves(cwd / "warm")["acc/test"]
    assert new[0] == (0, old[-1][1])  # epoch 0 of the new run: the old run's last weights
    (cwd / "nothing").mkdir()
    refused = train(*args, "hydra.run.dir=cold", f"init_from={cwd / 'nothing'}", cwd=cwd)
    assert refused.returncode == 2
    assert refused.stderr == (
        f"losslab-train: error: init_from={cwd / 'nothing'}: this folder holds no "
        f"checkpoints/last.ckpt; pass a run folder that losslab-train wrote with checkpoints (not "
        f"callbacks=null), or a .ckpt file\n"
    )
    assert not (cwd / "cold").exists()  # the folder Hydra made for the refused run went again


def test_a_checkpoint_file_starts_a_new_run_and_leaves_the_old_one_alone(tiny_run):
    cwd, args, _ = tiny_run
    ckpt = cwd / "run" / "checkpoints" / "epoch=2-step=4.ckpt"
    before = tree_digest(cwd / "run")
    ok(train(*args, "hydra.run.dir=new", f"ckpt_path={ckpt}", "trainer.max_epochs=3", cwd=cwd))
    result = json.loads((cwd / "new" / "result.json").read_text())
    assert (result["status"], result["epochs"]) == ("ok", 3)
    assert tree_digest(cwd / "run") == before
    old, new = read_curves(cwd / "run")["acc/test"], read_curves(cwd / "new")["acc/test"]
    assert [step for step, _ in old] == [0, 1, 2]
    assert [step for step, _ in new] == [0, 1, 2, 3]
    assert new[:3] == old  # the old run's curves came along into the new folder
    new = tree_digest(cwd / "new")
    refused = train(*args, "hydra.run.dir=new", f"ckpt_path={ckpt}", cwd=cwd)
    assert refused.returncode == 2
    assert f"hydra.run.dir={cwd / 'new'} already holds a run: ckpt_path=" in refused.stderr
    assert tree_digest(cwd / "new") == new


def test_a_run_folder_that_holds_a_run_is_refused_and_last_needs_a_checkpoint(tiny_run):
    cwd, args, _ = tiny_run
    again = train(*args, "hydra.run.dir=run", cwd=cwd)
    assert again.returncode == 2
    assert f"hydra.run.dir={cwd / 'run'} already holds a run: resume it with ckpt_path=last" in (
        again.stderr
    )
    shutil.copytree(cwd / "run" / ".hydra", cwd / "bare" / ".hydra")  # a run, no checkpoint
    bare = train(*args, "hydra.run.dir=bare", "ckpt_path=last", cwd=cwd)
    assert bare.returncode == 2
    last = cwd / "bare" / "checkpoints" / "last.ckpt"
    assert bare.stderr == (
        f"losslab-train: error: ckpt_path=last: {cwd / 'bare'} holds a run but no checkpoint "
        f"({last} is missing: it ran with callbacks=null, or stopped before its first epoch "
        f"ended), so there is nothing to resume from; start a new run\n"
    )
    (cwd / "empty").mkdir()
    empty = train(*args, "hydra.run.dir=empty", "ckpt_path=last", cwd=cwd)
    assert empty.returncode == 2
    assert empty.stderr == (
        f"losslab-train: error: ckpt_path=last: no run in {cwd / 'empty'} (no "
        f"{cwd / 'empty' / 'checkpoints' / 'last.ckpt'}). To resume a run, pass its folder too: "
        f"ckpt_path=last hydra.run.dir=logs/<task>/runs/<time>\n"
    )
    assert list((cwd / "empty").iterdir()) == []


def test_a_run_without_checkpoints_cannot_be_resumed_and_says_why(tiny_mnist, tmp_path):
    args = [f"data.data_dir={tiny_mnist['root']}", *TINY_RUN, "hydra.run.dir=run"]
    ok(train(*args, "callbacks=null", cwd=tmp_path))
    before = tree_digest(tmp_path / "run")
    res = train(*args, "callbacks=null", "ckpt_path=last", cwd=tmp_path)
    assert res.returncode == 2
    assert f"{tmp_path / 'run'} holds a run but no checkpoint" in res.stderr
    assert "it ran with callbacks=null" in res.stderr
    assert res.stderr.count("\n") == 1
    assert tree_digest(tmp_path / "run") == before


def test_a_run_that_logs_nothing_names_its_folder_but_no_tensorboard(tiny_mnist, tmp_path):
    """The ``view   tensorboard`` line only when the run wrote event files; its curves are in
    result.json all the same."""
    args = [f"data.data_dir={tiny_mnist['root']}", *TINY_RUN, "hydra.run.dir=run"]
    res = ok(train(*args, "logger=null", cwd=tmp_path))
    assert "  logs   run\n" in res.stdout
    assert "tensorboard" not in res.stdout
    assert not list((tmp_path / "run").glob("events.out.tfevents.*"))
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert [h["epoch"] for h in result["history"]] == [0, 1, 2]


def test_the_seed_draws_the_initial_weights(tiny_run):
    """Epoch 0 is measured before any step, on the test split no seed touches: another seed,
    other initial weights, another epoch-0 test loss (the same seed's rerun is test_train's)."""
    cwd, args, _ = tiny_run
    ok(train(*args, "hydra.run.dir=other", "seed=3", cwd=cwd))
    (step, first), *_ = read_curves(cwd / "run")["loss/test"]
    (step_other, other), *_ = read_curves(cwd / "other")["loss/test"]
    assert step == step_other == 0
    assert first != other


def test_train_returns_the_final_validation_accuracy_a_sweeper_maximises(tiny_run, capsys):
    """``losslab.train.train(cfg)``: what Hydra's sweepers get, for a new run and for a resume
    of a finished one (which says so, with the folder as given when it is outside the cwd)."""
    from conftest import REPO_ROOT, compose_train
    from hydra import initialize_config_dir

    from losslab.train import train as train_composed

    cwd, args, _ = tiny_run
    expected = json.loads((cwd / "run" / "result.json").read_text())["metrics"]["hp/val_acc"]
    assert expected == expected  # not NaN: the run has a validation split

    def train_config(*overrides: str, output_dir: Path) -> float:
        cfg = compose_train([*args, *overrides], checked=False, output_dir=str(output_dir))
        with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
            return train_composed(cfg)  # Hydra's config loader is up, as in a run

    assert train_config("ckpt_path=last", output_dir=cwd / "run") == expected
    out = capsys.readouterr().out
    assert f"losslab: {cwd / 'run'} finished before (ok after 2 epochs)" in out
    value = train_config("seed=1", output_dir=cwd / "new")
    result = json.loads((cwd / "new" / "result.json").read_text())
    assert value == result["metrics"]["hp/val_acc"]


def test_a_resume_of_a_diverged_run_says_to_start_a_new_one(tiny_run, capsys):
    cwd, args, _ = tiny_run
    result_file = cwd / "run" / "result.json"
    result = json.loads(result_file.read_text())
    result_file.write_text(json.dumps({**result, "status": "diverged", "metrics": {}}))
    before = tree_digest(cwd / "run")
    res = ok(train(*args, "hydra.run.dir=run", "ckpt_path=last", "trainer.max_epochs=5", cwd=cwd))
    assert (
        "losslab: run finished before (diverged after 2 epochs); nothing was changed. To train "
        "longer: start a new run: it diverged"
    ) in res.stdout
    assert tree_digest(cwd / "run") == before


def test_a_resume_whose_saved_config_is_no_yaml_is_refused_in_one_line(tiny_run):
    cwd, args, _ = tiny_run
    config = cwd / "run" / ".hydra" / "config.yaml"
    config.write_text("loss: [cee\n")  # cut by hand
    before = tree_digest(cwd / "run")
    res = train(*args, "hydra.run.dir=run", "ckpt_path=last", cwd=cwd)
    assert res.returncode == 2
    assert res.stderr.startswith(f"losslab-train: error: cannot read {config}, line 2: ")
    assert res.stderr.endswith("(not valid YAML)\n")
    assert res.stderr.count("\n") == 1
    assert tree_digest(cwd / "run") == before
