"""A whole run on the tiny MNIST (50 training images), in this process, in seconds: what
losslab-train writes and prints from start to result, and what a start with ``ckpt_path`` does
to it (leave a finished run alone, train it longer, refuse another config, start a new run from
its checkpoint). The same paths on real MNIST are the slow tests of test_train and test_resume;
these are the ones ``make mutate`` runs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import ok, train, tree_digest

# make mutate runs these for the mutants of the modules they test (their training passes through
# the library, whose modules have tests of their own)
pytestmark = pytest.mark.mutation_targets("train", "start", "build", "rundir", "callbacks")

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
    assert result["hparams"]["loss"] == "cee"
    assert result["seconds"] > 0
    reliability = json.loads((run / "reliability.json").read_text())
    assert reliability["epoch"] == 2
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
        metrics = result["metrics"]
        train_acc = metrics["hp/test_acc"] + metrics["hp/gap_acc"]  # gap = train - test
        expected = train_acc if split == "train" else metrics[f"hp/{split}_acc"]
        assert float(line[1]) == pytest.approx(expected, abs=5e-5)
    assert summary[0] in (run / "train.log").read_text()


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
    assert (cwd / "run" / "checkpoints" / "epoch=3-step=6.ckpt").is_file()


def test_a_resume_that_changes_what_the_run_is_is_refused_naming_the_key(tiny_run):
    cwd, args, _ = tiny_run
    before = tree_digest(cwd / "run")
    res = train(*args, "hydra.run.dir=run", "ckpt_path=last", "loss=sse", "seed=3", cwd=cwd)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1, res.stderr
    assert "refused: loss=sse (the run has loss=cee); seed=3 (the run has seed=0)" in res.stderr
    assert tree_digest(cwd / "run") == before


def test_a_checkpoint_file_starts_a_new_run_and_leaves_the_old_one_alone(tiny_run):
    cwd, args, _ = tiny_run
    ckpt = cwd / "run" / "checkpoints" / "epoch=2-step=4.ckpt"
    before = tree_digest(cwd / "run")
    ok(train(*args, "hydra.run.dir=new", f"ckpt_path={ckpt}", "trainer.max_epochs=3", cwd=cwd))
    result = json.loads((cwd / "new" / "result.json").read_text())
    assert (result["status"], result["epochs"]) == ("ok", 3)
    assert tree_digest(cwd / "run") == before
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
    shutil.copytree(cwd / "run" / ".hydra", cwd / "bare" / ".hydra")
    bare = train(*args, "hydra.run.dir=bare", "ckpt_path=last", cwd=cwd)
    assert bare.returncode == 2
    assert f"ckpt_path=last: no checkpoint {cwd / 'bare' / 'checkpoints' / 'last.ckpt'}." in (
        bare.stderr
    )
