"""Resume means the same run: with its own config, to the uninterrupted result; a finished run is
left as it was, file for file, unless the resume trains it longer; what would change the run is
refused; a copied run resumes from its own checkpoint; a new run starts from another's weights
(init_from) or checkpoint (ckpt_path into a new folder)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from conftest import event_curves, final_values, ok, train, tree_digest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

SMALL = ["data.train_size=1000", "trainer.max_epochs=1", "~hydra.callbacks.report"]
CRASH = ["+callbacks.crash._target_=crash_callback.CrashAfterEpoch", "+callbacks.crash.epoch=1"]
pytestmark = pytest.mark.slow


def tensorboard_view(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    """A tag's points as TensorBoard shows the run folder: every event file read in order,
    what a restarted writer's purge step hides left out."""
    ea = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    ea.Reload()
    return [(e.step, e.value) for e in ea.Scalars(tag)]


@pytest.fixture(scope="module")
def single_run(shared_run) -> Path:
    return shared_run("resume_single", *SMALL)


@pytest.fixture(scope="module")
def interrupted_sse(tmp_path_factory, data_dir) -> tuple[Path, Path]:
    """An SSE run killed a few steps into epoch 2 (of 2), and the same run uninterrupted."""
    root = tmp_path_factory.mktemp("resume")
    two_epochs = [
        "loss=sse",
        "data.train_size=1000",
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=1",  # every batch loss, to see what a resume writes twice
        "~hydra.callbacks.report",
        *CRASH,
    ]
    ok(train(*two_epochs, "hydra.run.dir=whole", cwd=root))
    crashed = train(*two_epochs, "hydra.run.dir=crashed", cwd=root, env={"LOSSLAB_TEST_CRASH": "1"})
    assert crashed.returncode == 1
    assert "simulated crash after epoch 1" in crashed.stderr
    return root / "crashed", root / "whole"


def copy_of(run: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run, target, symlinks=True)
    return target


def test_resume_continues_with_the_runs_own_config_to_the_uninterrupted_result(
    interrupted_sse, tmp_path
):
    crashed, whole = interrupted_sse
    run = copy_of(crashed, tmp_path)
    before = tree_digest(run)
    # the guide's command: no overrides but the checkpoint and the folder
    ok(train("ckpt_path=last", f"hydra.run.dir={run}", cwd=tmp_path))
    assert final_values(run) == final_values(whole)  # SSE all the way, bit for bit
    after = tree_digest(run)
    assert all(after[k] == before[k] for k in before if k.startswith(".hydra/config"))
    assert yaml.safe_load((run / ".hydra" / "config.yaml").read_text())["loss"][
        "_target_"
    ].endswith("SSELoss")
    assert yaml.safe_load((run / "hparams.yaml").read_text())["loss"] == "sse"  # what ran
    (record,) = yaml.safe_load((run / ".hydra" / "resumes.yaml").read_text())
    assert record["overrides"] == ["ckpt_path=last"]
    assert record["changed"] == {}
    assert [s for s, _ in event_curves(run)["acc/test"]] == [0, 1, 2]  # one point per epoch
    # the killed start wrote batch losses past its checkpoint; TensorBoard, reading the folder,
    # drops them (the resumed writer's purge step): each optimizer step once, as in the whole run
    written = [s for s, _ in event_curves(run)["batch/loss"]]
    assert len(written) > len(set(written))  # the overlap is in the files ...
    shown, uninterrupted = (tensorboard_view(r, "batch/loss") for r in (run, whole))
    assert shown == uninterrupted  # ... and not in what TensorBoard shows
    assert [s for s, _ in shown] == sorted({s for s, _ in shown})


def test_resuming_a_finished_run_changes_no_file_and_says_it_is_finished(single_run, tmp_path):
    run = copy_of(single_run, tmp_path)
    before = tree_digest(run)
    names = sorted(p.relative_to(run).as_posix() for p in run.rglob("*"))
    for args in (["ckpt_path=last"], ["ckpt_path=last", "trainer.max_epochs=1", "threads=2"]):
        result = ok(train(*args, f"hydra.run.dir={run}", cwd=tmp_path))
        assert "finished before (ok after 1 epochs); nothing was changed" in result.stdout
        assert "trainer.max_epochs=<more than 1>" in result.stdout
        assert tree_digest(run) == before  # every byte
        assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*")) == names


def test_a_resume_that_trains_longer_continues_and_a_plain_resume_then_finds_it_finished(
    single_run, tmp_path
):
    run = copy_of(single_run, tmp_path)
    result = ok(
        train("ckpt_path=last", "trainer.max_epochs=2", f"hydra.run.dir={run}", cwd=tmp_path)
    )
    assert "ok after 2 epochs" in result.stdout
    assert [s for s, _ in event_curves(run)["acc/test"]] == [0, 1, 2]
    (record,) = yaml.safe_load((run / ".hydra" / "resumes.yaml").read_text())
    assert record["changed"] == {"trainer.max_epochs": [1, 2]}
    # the run's config now says 2 epochs: a plain resume finds it finished, console and files agree
    assert (
        yaml.safe_load((run / ".hydra" / "resolved.yaml").read_text())["trainer"]["max_epochs"] == 2
    )
    before = tree_digest(run)
    result = ok(train("ckpt_path=last", f"hydra.run.dir={run}", cwd=tmp_path))
    assert "finished before (ok after 2 epochs)" in result.stdout
    assert tree_digest(run) == before
    # Lightning never deletes the checkpoint a run resumed from; last.ckpt links to the newest
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["epoch=1-step=10.ckpt", "epoch=2-step=20.ckpt", "last.ckpt"]
    assert (run / "checkpoints" / "last.ckpt").resolve().name == "epoch=2-step=20.ckpt"


def test_resume_that_changes_what_the_run_is_is_refused_in_one_line(interrupted_sse, tmp_path):
    crashed, _ = interrupted_sse
    run = copy_of(crashed, tmp_path)
    before = tree_digest(run)
    res = train(
        "ckpt_path=last", f"hydra.run.dir={run}", "loss=cee", "optimizer.lr=0.5", cwd=tmp_path
    )
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1, res.stderr
    assert "Traceback" not in res.stderr
    for text in ("loss=cee", "loss=sse", "optimizer.lr=0.5", "optimizer.lr=0.1", "init_from"):
        assert text in res.stderr, res.stderr
    assert tree_digest(run) == before  # byte-identical


def test_resume_may_train_longer_and_records_the_change(interrupted_sse, tmp_path):
    crashed, _ = interrupted_sse
    run = copy_of(crashed, tmp_path)
    ok(train("ckpt_path=last", f"hydra.run.dir={run}", "trainer.max_epochs=3", cwd=tmp_path))
    assert [s for s, _ in event_curves(run)["acc/test"]] == [0, 1, 2, 3]
    (record,) = yaml.safe_load((run / ".hydra" / "resumes.yaml").read_text())
    assert record["changed"] == {"trainer.max_epochs": [2, 3]}


def test_a_copied_run_resumes_from_its_own_checkpoint(single_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(single_run, copy)  # links followed: a plain copy of the files
    original = tree_digest(single_run)
    res = ok(train("ckpt_path=last", f"hydra.run.dir={copy}", "trainer.max_epochs=2", cwd=tmp_path))
    assert f"resumed {copy} with its own config" in res.stdout
    # Lightning's own line goes to the run's train.log (the console gets losslab's lines)
    log = (copy / "train.log").read_text()
    assert (
        f"Restoring states from the checkpoint path at {copy / 'checkpoints' / 'last.ckpt'}" in log
    )
    assert tree_digest(single_run) == original  # the original run is untouched
    names = sorted(p.name for p in (copy / "checkpoints").iterdir())
    assert [n for n in names if n.startswith("last")] == ["last.ckpt"]  # no last-v1.ckpt
    assert (copy / "checkpoints" / "last.ckpt").resolve().name == "epoch=2-step=20.ckpt"
    assert torch.load(copy / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    for tag, points in event_curves(copy).items():
        if not tag.startswith(("hp/", "batch/")):
            steps = [s for s, _ in points]
            assert steps == sorted(set(steps)), tag  # one point per epoch, none twice


def test_ckpt_path_accepts_the_checkpoint_names_losslab_writes(tmp_path, data_dir):
    ok(train("-m", "loss=sse,cee", *SMALL, "hydra.sweep.dir=sweep", cwd=tmp_path))
    (ckpt,) = [
        p
        for p in (tmp_path / "sweep" / "loss=sse" / "checkpoints").iterdir()
        if p.name != "last.ckpt"
    ]
    assert ckpt.name == "epoch=1-step=10.ckpt"
    # a new run that starts from it, in a new folder: the path goes in exactly as printed
    ok(
        train(
            f"ckpt_path={ckpt}",
            "loss=sse",
            "trainer.max_epochs=2",
            "hydra.run.dir=more",
            cwd=tmp_path,
        )
    )
    # the checkpoint's curves (epochs 0-1) come along into the new folder, then epoch 2
    assert [s for s, _ in event_curves(tmp_path / "more")["acc/test"]] == [0, 1, 2]


def test_init_from_trains_a_new_config_from_the_weights_in_a_new_folder(single_run, tmp_path):
    original = tree_digest(single_run)
    weights = single_run / "checkpoints" / "last.ckpt"
    ok(train(f"init_from={weights}", "loss=sse", "optimizer.lr=0.5", "data.train_size=500",
             "trainer.max_epochs=1", "hydra.run.dir=new", cwd=tmp_path))  # fmt: skip
    new = tmp_path / "new"
    assert tree_digest(single_run) == original  # the old run is untouched
    c = event_curves(new)
    old = event_curves(single_run)
    # epoch 0 of the new run is the old run's trained model on the same test set
    assert c["acc/test"][0][1] == pytest.approx(old["acc/test"][-1][1], abs=1e-6)
    assert [s for s, _ in c["acc/test"]] == [0, 1]
    saved = yaml.safe_load((new / ".hydra" / "resolved.yaml").read_text())
    assert (saved["init_from"], saved["optimizer"]["lr"]) == (str(weights), 0.5)
    ckpt = torch.load(new / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 5  # a new run: its own steps from 0, the old optimizer not kept
    assert "SSELoss" in ckpt["hyper_parameters"]["loss"]["_target_"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["init_from=/nonexistent/last.ckpt"],
            ["init_from=/nonexistent/last.ckpt", "no such checkpoint"],
        ),
        (["init_from=RUN/train.log"], ["init_from=", "not a checkpoint"]),
        (
            ["init_from=RUN/checkpoints/last.ckpt", "model.hidden=[50]"],
            ["init_from=", "[100, 784] there, [50, 784] here"],
        ),
        (
            ["init_from=RUN/checkpoints/last.ckpt", "ckpt_path=last"],
            ["init_from=", "ckpt_path=last", "choose one"],
        ),
        (["ckpt_path=RUN/train.log"], ["ckpt_path=", "not a checkpoint"]),
    ],
)
def test_bad_checkpoints_are_refused_in_one_line_before_anything_is_written(
    single_run, tmp_path, args, expected
):
    args = [a.replace("RUN", str(single_run)) for a in args]
    before = tree_digest(tmp_path)
    res = train(*args, *SMALL, "hydra.run.dir=new", cwd=tmp_path)
    assert (res.returncode, res.stderr.count("\n")) == (2, 1), res.stderr
    assert res.stderr.startswith("losslab-train: error: ")
    for text in expected:
        assert text in res.stderr, (text, res.stderr)
    assert tree_digest(tmp_path) == before
    assert not (tmp_path / "new").exists()
