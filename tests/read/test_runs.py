"""losslab.read.runs: a run folder read back as losslab-train leaves it (built by hand here): its
epoch count, its settings, what run it is, its seed group, its curves without an event file, and
folders that hold the same run counted once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import write_run

from losslab.read.runs import distinct, read_run, read_runs
from losslab.run.identity import identity
from losslab.run.rundir import RunDir

ROW = {"loss": "cee", "batch_size": 100, "lr": 0.1, "seed": 0, "status": "ok"}
CONFIG = {"data": {"batch_size": 100, "data_dir": "/a", "seed": 0}, "optimizer": {"lr": 0.1},
          "seed": 0, "threads": 1}  # fmt: skip


def configured(folder: Path, config: dict, overrides: list[str], loss: str = "cee") -> Path:
    """The ``.hydra/`` files losslab-train writes first, for a run folder built by hand."""
    hydra = yaml.safe_dump({"hydra": {"runtime": {"choices": {"loss": loss}}}})
    RunDir(folder).write_config(yaml.safe_dump(config), config, hydra, overrides)
    return folder


def seeded(seed: int, **data) -> dict:
    return {**CONFIG, "seed": seed, "data": {**CONFIG["data"], "seed": seed, **data}}


@pytest.mark.parametrize(
    ("lengths", "epochs"),
    [
        ({"acc/test": 4, "acc/val": 3, "acc/train": 2}, 3),  # test first
        ({"acc/val": 3, "acc/train": 2}, 2),  # then val
        ({"acc/train": 2}, 1),  # then train
        ({"loss/train": 2}, None),  # no accuracy curve: no epoch count
    ],
)
def test_the_epochs_are_the_last_epoch_of_the_test_else_val_else_train_accuracy(
    lengths, epochs, tmp_path: Path
) -> None:
    write_run(tmp_path / "r", {tag: [0.5] * n for tag, n in lengths.items()}, ROW)
    assert read_run(tmp_path / "r", tmp_path).row["epochs"] == epochs


def test_a_runs_group_is_its_overrides_without_seed_checkpoint_and_hydra_ones(
    tmp_path: Path,
) -> None:
    write_run(tmp_path / "a", {"acc/test": [0.5]}, ROW,
              overrides=["seed=1", "loss=sse", "ckpt_path=/x/last.ckpt", "data.batch_size=50"])  # fmt: skip
    write_run(tmp_path / "b", {"acc/test": [0.5]}, ROW,
              overrides=["hydra.run.dir=/y", "data.batch_size=50", "loss=sse", "seed=2"])  # fmt: skip
    groups = {read_run(tmp_path / n, tmp_path).group for n in ("a", "b")}
    assert groups == {("data.batch_size=50", "loss=sse")}


def test_a_run_without_recorded_overrides_is_a_group_of_its_own(tmp_path: Path) -> None:
    write_run(tmp_path / "sweep" / "a", {"acc/test": [0.5]}, ROW)
    run = read_run(tmp_path / "sweep" / "a", tmp_path)
    assert (run.name, run.group) == ("sweep/a", ("sweep/a",))


def test_a_run_knows_its_settings_what_it_is_and_its_label(tmp_path: Path) -> None:
    write_run(tmp_path / "r", {"acc/test": [0.1, 0.5]}, {**ROW, "hidden": "100", "epochs": 1})
    configured(tmp_path / "r", CONFIG, ["loss=cee", "seed=0", "hydra.run.dir=/x"])
    run = read_run(tmp_path / "r", tmp_path)
    # the HPARAMS row, without what the run came to
    assert run.settings == {"loss": "cee", "batch_size": 100, "lr": 0.1, "seed": 0, "hidden": "100"}
    assert run.identity == identity(CONFIG, {"loss": "cee"})
    assert run.overrides == ("loss=cee",)  # seed and Hydra's own left out


def test_a_run_that_did_not_end_takes_its_settings_from_its_config(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    configured(tmp_path / "r", CONFIG, ["seed=0"])
    run = read_run(tmp_path / "r", tmp_path)
    assert (run.settings["lr"], run.settings["batch_size"], run.settings["seed"]) == (0.1, 100, 0)
    assert run.row["status"] == "incomplete"


def test_runs_of_one_setting_share_a_group_whatever_their_seed_and_command(tmp_path: Path) -> None:
    """What a run is without its seed: the overrides' order, a neutral key or the data seed that
    follows the seed do not split a group; another lr does."""
    for name, config, overrides in (
        ("a", seeded(0), ["seed=0", "loss=cee"]),
        ("b", {**seeded(1), "threads": 4}, ["loss=cee", "seed=1", "threads=4"]),
        ("c", {**seeded(2), "optimizer": {"lr": 0.3}}, ["optimizer.lr=0.3", "seed=2"]),
    ):
        write_run(tmp_path / name, {"acc/test": [0.1, 0.5]}, ROW)
        configured(tmp_path / name, config, overrides)
    a, b, c = (read_run(tmp_path / n, tmp_path) for n in "abc")
    assert a.group == b.group != c.group
    assert a.identity != b.identity  # another seed: another run
    assert (a.overrides, b.overrides) == (("loss=cee",), ("loss=cee", "threads=4"))


def test_a_run_that_logged_nothing_has_the_curves_its_result_holds(tmp_path: Path) -> None:
    """``logger=null``: no event file, the epochs' metrics in result.json's history."""
    run = RunDir(tmp_path / "r")
    history = [{"epoch": 0, "step": 0, "acc/test": 0.1, "acc/val": 0.2, "lr": 0.1},
               {"epoch": 1, "step": 5, "acc/test": 0.8, "acc/val": 0.7, "time/epoch": 2.0}]  # fmt: skip
    run.path.mkdir()
    run.write_result("ok", 1, {}, ROW, 3.0, history)
    read = read_run(run.path, tmp_path)
    assert read.curves == {
        "acc/test": [(0, 0.1), (1, 0.8)],
        "acc/val": [(0, 0.2), (1, 0.7)],
        "lr": [(0, 0.1)],
        "time/epoch": [(1, 2.0)],
    }
    assert (read.row["epochs"], read.row["val_acc"], read.row["best_epoch"]) == (1, 0.7, 1)


def test_folders_that_hold_the_same_run_count_once_a_finished_one_first(tmp_path: Path) -> None:
    for name, status in (("a", None), ("b", "ok"), ("c", "ok")):
        write_run(tmp_path / name, {"acc/test": [0.1, 0.5]}, ROW if status else None)
        configured(tmp_path / name, CONFIG, ["seed=0"])
    write_run(tmp_path / "d", {"acc/test": [0.1, 0.5]}, ROW)
    configured(tmp_path / "d", seeded(1), ["seed=1"])
    write_run(tmp_path / "e", {"acc/test": [0.1, 0.5]}, ROW)  # no record of its config
    write_run(tmp_path / "f", {"acc/test": [0.1, 0.5]}, ROW)
    kept, left_out = distinct(read_runs(tmp_path))
    # a did not end: b, the first finished copy, stands for a and c; runs without a config stay
    assert [r.name for r in kept] == ["b", "d", "e", "f"]
    assert left_out == [("a", "b"), ("c", "b")]
