"""The fair study (losslab-study): lr chosen on validation per loss and batch size, read back
from its file by stage 2, seeds aggregated, Welch's test in the verdict, bad settings refused."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import write_run
from scipy import stats

from losslab.study import COMPARISON_FIELDS, StudyError, choose, verdict

REPO = Path(__file__).resolve().parents[1]
TINY = ["data.train_size=300", "trainer.max_epochs=1"]


def study(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "losslab.study", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900, env=os.environ)


def tune_run(
    folder: Path, loss: str, lr: float, val: float, test: float, status: str = "ok"
) -> None:
    hp = {"loss": loss, "batch_size": 100, "lr": lr, "seed": 0, "status": status}
    curves = {
        "acc/val": [0.1, val],
        "acc/test": [0.1, test],
        "acc/train": [0.1, val],
        "loss/test": [2.3, 1 - test],
    }
    write_run(folder, curves, hp, overrides=[f"loss={loss}", f"optimizer.lr={lr}"])


def test_the_chosen_lr_follows_validation_even_where_test_disagrees(tmp_path):
    tune = tmp_path / "tune"
    tune_run(tune / "a", "cee", 0.1, val=0.95, test=0.90)  # best on val
    tune_run(tune / "b", "cee", 0.3, val=0.93, test=0.97)  # best on test
    tune_run(tune / "c", "cee", 1.0, val=0.20, test=0.20)
    tune_run(tune / "d", "sse", 0.3, val=0.80, test=0.80)
    tune_run(tune / "e", "sse", 1.0, val=math_nan(), test=math_nan(), status="diverged")
    choices = choose(tune)
    assert choices["cee"][100]["lr"] == 0.1
    assert choices["cee"][100]["inside_grid"] is False  # the smallest lr of the grid
    assert choices["sse"][100]["lr"] == 0.3  # the diverged lr counts as the worst
    assert yaml.safe_load((tune / "choices.yaml").read_text()) == choices
    table = (tune / "choices.md").read_text()
    assert "**0.9500**" in table
    assert "diverged" in table
    assert "edge of the grid" in table


def math_nan() -> float:
    return float("nan")


def test_choices_from_runs_without_a_validation_split_are_refused(tmp_path):
    hp = {"loss": "cee", "batch_size": 100, "lr": 0.1, "seed": 0, "status": "ok"}
    write_run(tmp_path / "tune" / "a", {"acc/test": [0.1, 0.9], "loss/test": [2, 1]}, hp)
    with pytest.raises(StudyError, match=r"data\.val_size"):
        choose(tmp_path / "tune")
    assert not (tmp_path / "tune" / "choices.yaml").exists()


def final_run(folder: Path, loss: str, lr: float, seed: int, test: float) -> None:
    hp = {"loss": loss, "batch_size": 100, "lr": lr, "seed": seed, "status": "ok"}
    curves = {"acc/val": [0.1, test], "acc/test": [0.1, test], "loss/test": [2.3, 0.2]}
    curves |= {"ece/test": [0.05, 0.02], "nll/test": [2.3, 0.2]}
    write_run(folder, curves, hp, overrides=[f"loss={loss}", f"seed={seed}"])


def test_the_verdict_is_welchs_test_on_the_seeds(tmp_path):
    cee, sse = [0.960, 0.962, 0.958, 0.961], [0.950, 0.955, 0.949]
    for seed, acc in enumerate(cee):
        final_run(tmp_path / "final" / f"cee{seed}", "cee", 0.3, seed, acc)
    for seed, acc in enumerate(sse):
        final_run(tmp_path / "final" / f"sse{seed}", "sse", 3.0, seed, acc)
    (row,) = verdict(tmp_path)
    a, b = np.float32(cee).astype(float), np.float32(sse).astype(float)  # event files hold float32
    expected = stats.ttest_ind(a, b, equal_var=False)
    ci = expected.confidence_interval(0.95)
    assert row["versus"] == "sse"
    assert row["lr_ratio"] == pytest.approx(10.0)
    assert row["diff"] == pytest.approx(a.mean() - b.mean())
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert row["p"] == pytest.approx(expected.pvalue)
    assert row["excludes_zero"] is True
    text = (tmp_path / "verdict.md").read_text()
    assert "Welch" in text
    assert "n=4" in text
    assert "n=3" in text
    assert (tmp_path / "reliability.png").is_file()
    with (tmp_path / "verdict.csv").open() as f:
        assert next(csv.reader(f))[:4] == ["batch_size", "loss", "lr", "n"]


def test_the_verdict_refuses_fewer_than_two_seeds(tmp_path):
    final_run(tmp_path / "final" / "cee0", "cee", 0.3, 0, 0.96)
    final_run(tmp_path / "final" / "sse0", "sse", 3.0, 0, 0.95)
    with pytest.raises(StudyError, match="seed"):
        verdict(tmp_path)
    assert not (tmp_path / "verdict.md").exists()


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["--lrs", "0,0.1"], "optimizer.lr"),
        (["--lrs", "-1"], "optimizer.lr"),
        (["--seeds", "0"], "seed"),
        (["--seeds", "3,3"], "seed"),
        (["data.val_size=0"], "data.val_size"),
    ],
)
def test_bad_study_settings_fail_in_one_line_and_write_nothing(args, key, tmp_path):
    res = study("run", "--dir", "st", *args, cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith("losslab-study: error: ")
    assert key in res.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("overrides", "key"),
    [(["data.val_size=0"], "data.val_size"), (["optimizer.lr=0,0.1"], "optimizer.lr")],
)
def test_the_study_presets_refuse_the_same_through_losslab_train(overrides, key, tmp_path):
    cmd = [sys.executable, "-m", "losslab.train", "experiment=study_tune", *overrides]
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1, res.stderr
    assert key in res.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_tiny_study_goes_through_both_stages_to_the_verdict_and_resumes(tmp_path, data_dir):
    args = ["run", "--dir", "st", "--losses", "cee,sse", "--batch-sizes", "100", "--lrs", "0.1,1"]
    args += ["--seeds", "0,1", *TINY]
    res = study(*args, cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    st = tmp_path / "st"
    choices = yaml.safe_load((st / "tune" / "choices.yaml").read_text())
    assert set(choices) == {"cee", "sse"}
    assert all(set(c["grid"]) == {0.1, 1.0} for by_bs in choices.values() for c in by_bs.values())
    # stage 2 trained each loss at its chosen lr (read from choices.yaml), two seeds each
    finals = {}
    for run in (st / "final").iterdir():
        if (run / ".hydra").is_dir():
            hp = yaml.safe_load((run / "hparams.yaml").read_text())
            finals.setdefault(hp["loss"], set()).add((hp["lr"], hp["seed"]))
    assert finals == {
        loss: {(choices[loss][100]["lr"], s) for s in (0, 1)} for loss in ("cee", "sse")
    }
    with (st / "verdict.csv").open() as f:
        rows = list(csv.reader(f))
    per_loss = {r[1]: r for r in rows[1:3]}
    assert {loss: (float(r[2]), int(r[3])) for loss, r in per_loss.items()} == {
        loss: (choices[loss][100]["lr"], 2) for loss in ("cee", "sse")
    }
    header = rows.index(COMPARISON_FIELDS)
    assert rows[header + 1][:2] == ["100", "sse"]  # the CEE - SSE comparison
    assert "Welch" in (st / "verdict.md").read_text()
    assert (st / "reliability.png").stat().st_size > 10_000
    # the same command again: nothing is trained twice
    res = study(*args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (
        res.stdout.count("finished before, skipped") + res.stderr.count("finished before, skipped")
        == 8
    )
