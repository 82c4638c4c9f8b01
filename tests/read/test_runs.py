"""losslab.read.runs: a run folder read back as losslab-train leaves it (built by hand here): its
epoch count and its seed group."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_run

from losslab.read.runs import read_run

ROW = {"loss": "cee", "batch_size": 100, "lr": 0.1, "seed": 0, "status": "ok"}


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
