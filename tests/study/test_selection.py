"""Nested selection (losslab.study.selection): each final seed keeps, among its candidate lrs,
the run its own validation split prefers — by the last epoch's validation accuracy, or for
early stopping the run and epoch with the best one; test never chooses; ties go to the smaller
lr and the earlier epoch; the record the fixed arm reads its lrs from; what it refuses."""

from __future__ import annotations

import shutil

import pytest
import yaml
from fakeruns import stage_run

from losslab.study.catalogue import METRICS, Catalogue, StudyError
from losslab.study.selection import (
    choose_per_seed,
    choose_pinned,
    fixed_lr,
    stage_runs,
    write_selection,
)

LAST, EARLY = METRICS["test_acc"], METRICS["test_at_best"]
NOISE = Catalogue("noise", "data.label_noise", "label noise", ("cee", "sse"), (0.0, 0.4), None,
                  ("tuned", "fixed"), {"tuned": ("test_acc", "test_at_best")}, 2, clean=0.0)  # fmt: skip


def final(folder, loss, lr, seed, val, test, value=0.0, status="ok"):
    return stage_run(folder, loss, lr, seed, value, key="data.label_noise", val=val, test=test,
                     status=status)  # fmt: skip


def two_seeds(folder) -> None:
    """cee at lrs 0.1 and 1, seeds 0 and 1. Seed 0: lr 0.1 ends with the better validation
    accuracy, lr 1 has the better test accuracy; seed 1: the other way round on validation."""
    final(folder, "cee", 0.1, 0, val=[0.1, 0.80, 0.90], test=[0.1, 0.79, 0.85])
    final(folder, "cee", 1.0, 0, val=[0.1, 0.85, 0.88], test=[0.1, 0.90, 0.95])
    final(folder, "cee", 0.1, 1, val=[0.1, 0.70, 0.80], test=[0.1, 0.70, 0.81])
    final(folder, "cee", 1.0, 1, val=[0.1, 0.92, 0.86], test=[0.1, 0.91, 0.84])


def test_each_seed_keeps_the_lr_its_validation_split_prefers_never_the_test_sets(tmp_path):
    two_seeds(tmp_path)
    cells = choose_per_seed(stage_runs(tmp_path, NOISE, "final"), [LAST, EARLY])
    seeds = cells[(0.0, "cee")]
    assert seeds[0].lrs == {"test_acc": 0.1, "test_at_best": 0.1}  # 0.90 beats 0.88 and 0.85
    assert seeds[0].values["test_acc"] == pytest.approx(0.85)
    assert (seeds[0].epochs["test_at_best"], seeds[0].values["test_at_best"]) == (
        2,
        pytest.approx(0.85),
    )
    assert seeds[1].lrs == {"test_acc": 1.0, "test_at_best": 1.0}  # 0.86 last; 0.92 at epoch 1
    assert seeds[1].values["test_acc"] == pytest.approx(0.84)
    assert (seeds[1].epochs["test_at_best"], seeds[1].values["test_at_best"]) == (
        1,
        pytest.approx(0.91),
    )
    assert seeds[1].among == [0.1, 1.0]


def test_pinned_holds_every_seed_at_one_lr_and_still_stops_early_by_validation(tmp_path):
    two_seeds(tmp_path)
    pinned = choose_pinned(stage_runs(tmp_path, NOISE, "final"), [LAST, EARLY])
    assert sorted(pinned) == [(0.0, "cee", 0.1), (0.0, "cee", 1.0)]
    at_1 = pinned[(0.0, "cee", 1.0)]  # seed 0 preferred 0.1, and is held at 1 all the same
    assert {s: c.lrs["test_acc"] for s, c in at_1.items()} == {0: 1.0, 1: 1.0}
    assert [at_1[s].values["test_acc"] for s in (0, 1)] == [
        pytest.approx(0.95),
        pytest.approx(0.84),
    ]
    # early stopping within lr 1: seed 1's best validation is epoch 1 (0.92), its test there 0.91
    assert (at_1[1].epochs["test_at_best"], at_1[1].values["test_at_best"]) == (
        1,
        pytest.approx(0.91),
    )
    assert at_1[0].among == [1.0]


def test_a_tie_goes_to_the_smaller_lr_and_the_earlier_epoch(tmp_path):
    final(tmp_path, "cee", 0.3, 0, val=[0.1, 0.9, 0.9], test=[0.1, 0.5, 0.6])
    final(tmp_path, "cee", 0.1, 0, val=[0.1, 0.9, 0.9], test=[0.1, 0.7, 0.8])
    (choice,) = choose_per_seed(stage_runs(tmp_path, NOISE, "final"), [LAST, EARLY])[
        (0.0, "cee")
    ].values()
    assert choice.lrs == {"test_acc": 0.1, "test_at_best": 0.1}
    assert choice.epochs["test_at_best"] == 1
    assert choice.values == {"test_acc": pytest.approx(0.8), "test_at_best": pytest.approx(0.7)}


def test_a_diverged_candidate_is_kept_only_when_every_candidate_diverged(tmp_path):
    final(tmp_path, "cee", 1.0, 0, val=[0.1, float("nan")], test=[0.1, 0.1], status="diverged")
    final(tmp_path, "cee", 0.1, 0, val=[0.1, 0.3], test=[0.1, 0.3])
    final(tmp_path, "sse", 1.0, 0, val=[0.1, float("nan")], test=[0.1, 0.2], status="diverged")
    cells = choose_per_seed(stage_runs(tmp_path, NOISE, "final"), [LAST])
    assert cells[(0.0, "cee")][0].lrs["test_acc"] == 0.1
    sse = cells[(0.0, "sse")][0]
    assert (sse.lrs["test_acc"], sse.values["test_acc"]) == (1.0, pytest.approx(0.2))
    assert sse.runs["test_acc"].status == "diverged"  # counted with what it last measured


def test_the_selection_file_holds_each_seeds_choice_and_the_fixed_arm_reads_its_clean_lr(tmp_path):
    for seed, (a, b) in enumerate(((0.9, 0.8), (0.7, 0.8))):
        final(tmp_path, "cee", 0.1, seed, val=[0.1, a], test=[0.1, 0.5])
        final(tmp_path, "cee", 1.0, seed, val=[0.1, b], test=[0.1, 0.5])
        final(tmp_path, "cee", 0.01, seed, val=[0.1, 0.6], test=[0.1, 0.5], value=0.4)
    cells = choose_per_seed(stage_runs(tmp_path, NOISE, "final"), [LAST, EARLY])
    write_selection(tmp_path, cells, NOISE)
    written = yaml.safe_load((tmp_path / "selection.yaml").read_text())
    assert (written["key"], written["clean"]) == ("data.label_noise", 0.0)
    assert written["choices"]["cee"][0.0][0]["test_acc"] == {"lr": 0.1, "epoch": 1}
    file = str(tmp_path / "selection.yaml")
    # the fixed arm: each seed at the lr it chose on clean labels, whatever it chose when noisy
    assert [fixed_lr("cee", seed, file) for seed in (0, 1)] == [0.1, 1.0]
    with pytest.raises(StudyError, match="holds no choice for loss=sse, seed=0 at the clean rate"):
        fixed_lr("sse", 0, file)
    with pytest.raises(StudyError, match=r"no final-stage selection at .*: the fixed arm takes"):
        fixed_lr("cee", 0, str(tmp_path / "none.yaml"))


def test_a_stage_counts_a_copied_run_once_and_refuses_one_that_did_not_finish(tmp_path):
    shutil.copytree(
        final(tmp_path, "cee", 0.1, 0, val=[0.1, 0.9], test=[0.1, 0.8]),
        tmp_path / "copy",
        symlinks=True,
    )
    assert len(stage_runs(tmp_path, NOISE, "final")) == 1  # one run, in two folders
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "error.txt").write_text("boom\n")
    with pytest.raises(
        StudyError, match=r"1 final run\(s\) did not finish: broken \(failed\); run the same"
    ):
        stage_runs(tmp_path, NOISE, "final")
