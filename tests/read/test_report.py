"""losslab.read.report and ``losslab-report``: on a real sweep of ``losslab-train`` (made once per
session) and on runs built by hand so that each rule gives a different answer when broken."""

from __future__ import annotations

import csv
import json
import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TESTS, job_folders, write_run
from scipy import stats
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from losslab.read.report import main, report
from losslab.read.runs import COLUMNS
from losslab.read.stats import summarize
from losslab.read.tables import markdown_table, mean_ci
from losslab.run.rundir import RunDir

REPORT_SCRIPT = Path(sys.executable).parent / "losslab-report"


def read_csv(file: Path) -> list[dict[str, str]]:
    with file.open(newline="") as f:
        return list(csv.DictReader(f))


def event_curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar curve of a run, straight from its event files: tag -> [(step, value)]."""
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {t: [(e.step, e.value) for e in events.Scalars(t)] for t in events.Tags()["scalars"]}


def png_size(file: Path) -> tuple[int, int]:
    data = file.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{file} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def run_report_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPORT_SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=300
    )


def hp(
    loss: str = "cee", batch_size: int = 100, lr: float = 0.1, seed: int = 0, status: str = "ok"
) -> dict:
    return {"loss": loss, "batch_size": batch_size, "lr": lr, "seed": seed, "status": status}


def curves(
    train: list[float], test: list[float], val: list[float] | None = None, seconds=(1.0,)
) -> dict:
    out = {
        "acc/train": train,
        "acc/test": test,
        "loss/train": [1 - a for a in train],
        "loss/test": [1 - a for a in test],
    }
    out["gap/acc"] = [a - b for a, b in zip(train, test, strict=True)]
    out["time/epoch"] = list(seconds)
    if val is not None:
        out["acc/val"] = val
        out["loss/val"] = [1 - a for a in val]
    return out


# -- selection ----------------------------------------------------------------------------------


def test_the_best_run_and_best_epoch_follow_validation_not_test(tmp_path):
    """val prefers a (final 0.90 vs 0.85), test prefers b (0.80 vs 0.95): a wins; a's best
    epoch by val is 1 although its test accuracy peaks at epoch 2."""
    write_run(
        tmp_path / "a",
        curves([0.1, 0.9, 0.95], test=[0.1, 0.7, 0.80], val=[0.1, 0.92, 0.90]),
        hp(lr=0.1),
    )
    write_run(
        tmp_path / "b",
        curves([0.1, 0.9, 0.99], test=[0.1, 0.9, 0.95], val=[0.1, 0.8, 0.85]),
        hp(lr=0.3),
    )
    rows = report(tmp_path, out_dir=tmp_path / "out")
    assert [(r["run"], r["best"]) for r in rows] == [("a", "*"), ("b", "")]
    assert (rows[0]["best_epoch"], rows[0]["best_acc"]) == (1, pytest.approx(0.92))
    # what the choice is worth: test at the epoch validation chose, not test's own best (0.80)
    assert rows[0]["test_at_best"] == pytest.approx(0.7)
    assert (rows[1]["best_epoch"], rows[1]["test_at_best"]) == (2, pytest.approx(0.95))
    markdown = (tmp_path / "out" / "summary.md").read_text()
    assert "validation" in markdown
    assert "not a fair selection" not in markdown


def test_without_a_validation_split_the_ranking_is_by_test_and_says_it_is_not_fair(tmp_path):
    # train ranks b first, test ranks a first: the report must follow test, not train
    write_run(tmp_path / "a", curves([0.1, 0.80], test=[0.1, 0.90]), hp(lr=0.1))
    write_run(tmp_path / "b", curves([0.1, 0.99], test=[0.1, 0.70]), hp(lr=0.3))
    rows = report(tmp_path, out_dir=tmp_path / "out")
    assert [r["run"] for r in rows] == ["a", "b"]
    assert rows[0]["best"] == "*"
    assert (rows[0]["best_epoch"], rows[0]["test_at_best"]) == (1, pytest.approx(0.90))
    assert "not a fair selection" in (tmp_path / "out" / "summary.md").read_text()


def test_seconds_per_epoch_is_the_mean_training_time_of_the_epochs(tmp_path):
    write_run(
        tmp_path / "a",
        curves([0.1, 0.5, 0.6, 0.7], test=[0.1, 0.5, 0.6, 0.7], seconds=[2.0, 4.0, 6.0]),
        hp(),
    )
    (row,) = report(tmp_path / "a", out_dir=tmp_path / "out")
    assert row["sec_per_epoch"] == pytest.approx(4.0)
    assert row["epochs"] == 3


# -- seeds --------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [[0.91, 0.93, 0.92, 0.95, 0.90], [0.5, 0.7], [0.8, 0.8, 0.8]])
def test_summarize_equals_scipy_and_numpy(values):
    s = summarize(values)
    x = np.array(values)
    assert s["n"] == len(x)
    assert s["mean"] == pytest.approx(x.mean())
    assert s["std"] == pytest.approx(x.std(ddof=1))
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    assert s["ci_low"] == pytest.approx(x.mean() - half)
    assert s["ci_high"] == pytest.approx(x.mean() + half)


def test_one_seed_shows_no_interval_instead_of_a_wrong_one():
    s = summarize([0.93])
    assert (s["n"], s["mean"], s["std"], s["ci_low"], s["ci_high"]) == (1, 0.93, None, None, None)
    assert mean_ci(s) == "0.9300 (n=1)"
    assert "±" not in mean_ci(s)


def test_runs_that_differ_only_in_seed_are_aggregated(tmp_path):
    accs = {"cee": [0.95, 0.96, 0.97], "sse": [0.90, 0.94]}
    for loss, values in accs.items():
        for seed, acc in enumerate(values):
            write_run(
                tmp_path / f"loss={loss},seed={seed}",
                curves([0.1, acc], test=[0.1, acc - 0.01], val=[0.1, acc]),
                hp(loss=loss, seed=seed),
                overrides=[f"loss={loss}", f"seed={seed}"],
            )
    # a third group, at another lr: one run, best on test, worst on validation
    write_run(tmp_path / "loss=mae,seed=0", curves([0.1, 0.99], test=[0.1, 0.99], val=[0.1, 0.5]),
              hp(loss="mae", lr=0.3), overrides=["loss=mae"])  # fmt: skip
    report(tmp_path, out_dir=tmp_path / "out")
    rows = read_csv(tmp_path / "out" / "groups.csv")
    # ranked by mean validation accuracy, never by test; only the first is marked best
    assert [(r["group"], r["best"], r["lr"], r["n"]) for r in rows] == [
        ("loss=cee", "*", "0.1", "3"), ("loss=sse", "", "0.1", "2"), ("loss=mae", "", "0.3", "1"),
    ]  # fmt: skip
    assert float(rows[2]["val_acc_mean"]) == pytest.approx(0.5)
    groups = {r["group"]: r for r in rows if r["group"] != "loss=mae"}
    # checked by hand: cee 0.96 ± 4.303 * 0.01 / sqrt(3); sse 0.92 ± 12.706 * 0.0283 / sqrt(2)
    text = (tmp_path / "out" / "groups.md").read_text()
    assert text.split("\n", 1) == [
        f"# Runs that differ only in seed: {tmp_path}",
        (TESTS / "expected" / "report_groups.md").read_text(),
    ]
    for loss, written in accs.items():
        values = [float(np.float32(v)) for v in written]  # event files hold float32
        g, expected = groups[f"loss={loss}"], summarize(values)
        assert int(g["n"]) == len(values)
        assert float(g["val_acc_mean"]) == pytest.approx(np.mean(values))
        assert float(g["val_acc_std"]) == pytest.approx(np.std(values, ddof=1))
        assert float(g["val_acc_ci_low"]) == pytest.approx(expected["ci_low"])
        assert float(g["test_acc_mean"]) == pytest.approx(np.mean(values) - 0.01, abs=1e-7)
    assert groups["loss=cee"]["best"] == "*"
    shown = (tmp_path / "out" / "groups.md").read_text()
    assert mean_ci(summarize([float(np.float32(v)) for v in accs["cee"]])) in shown
    assert "± " in shown
    assert "(sd " in shown
    assert "n=3)" in shown
    # the figure: one panel per group (mean with a band), not one per run (6 runs)
    assert png_size(tmp_path / "out" / "curves.png") == (1560, 470)  # 3 groups: 3 x 5.2 in
    # the whole summary, as a user reads it (regenerate the expected file by hand when the
    # report's layout changes on purpose)
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert summary.split("\n", 1) == [
        f"# losslab report: {tmp_path}",
        (TESTS / "expected" / "report_summary.md").read_text(),
    ]


# -- a real 2 x 2 sweep -------------------------------------------------------------------------


def test_sweep_makes_one_folder_per_job_named_by_what_varies(sweep_2x2: Path) -> None:
    assert job_folders(sweep_2x2) == sorted(
        f"loss={loss},data.batch_size={bs}" for loss in ("sse", "cee") for bs in (50, 500)
    )
    for job in job_folders(sweep_2x2):
        assert (sweep_2x2 / job / ".hydra" / "config.yaml").is_file()
        assert list((sweep_2x2 / job).glob("events.out.tfevents.*"))


def test_sweep_end_writes_the_report_into_the_sweep_folder(sweep_2x2: Path) -> None:
    for name in ("summary.md", "summary.csv", "curves.png"):
        assert (sweep_2x2 / name).is_file(), name
    assert len(read_csv(sweep_2x2 / "summary.csv")) == 4


def test_csv_numbers_equal_the_event_files_exactly(sweep_2x2: Path, tmp_path: Path) -> None:
    rows = report(sweep_2x2, out_dir=tmp_path)
    table = read_csv(tmp_path / "summary.csv")
    assert list(table[0]) == list(COLUMNS)
    assert len(table) == len(rows) == 4
    for row in table:
        c = event_curves(sweep_2x2 / row["run"])
        last = {tag: points[-1][1] for tag, points in c.items()}
        for key, tag in {
            "val_acc": "acc/val",
            "test_acc": "acc/test",
            "train_acc": "acc/train",
        }.items():
            assert float(row[key]) == last[tag], key
        for key, tag in {
            "test_nll": "nll/test",
            "test_ece": "ece/test",
            "test_brier": "brier/test",
        }.items():
            assert float(row[key]) == last[tag], key
        assert float(row["gap"]) == last["gap/acc"]
        assert float(row["best_acc"]) == max(v for _, v in c["acc/val"])  # chosen on val
        assert float(row["sec_per_epoch"]) == c["time/epoch"][0][1]
        assert [s for s, _ in c["acc/test"]] == [0, 1]  # epoch 0 = untrained
        assert (int(row["epochs"]), row["status"], row["seed"]) == (1, "ok", "0")
        assert row["run"] == f"loss={row['loss']},data.batch_size={row['batch_size']}"
        assert float(row["lr"]) == 0.1


def test_rows_are_sorted_by_validation_accuracy_and_the_best_is_marked(
    sweep_2x2: Path, tmp_path: Path
) -> None:
    rows = report(sweep_2x2, out_dir=tmp_path)
    accs = [r["val_acc"] for r in rows]
    assert accs == sorted(accs, reverse=True)
    assert [r["best"] for r in rows] == ["*", "", "", ""]
    assert [r["best"] for r in read_csv(tmp_path / "summary.csv")] == ["*", "", "", ""]


def test_markdown_and_stdout_show_every_run(sweep_2x2: Path, tmp_path: Path, capsys) -> None:
    rows = report(sweep_2x2, out_dir=tmp_path)
    printed = capsys.readouterr().out
    markdown = (tmp_path / "summary.md").read_text()
    for row in rows:
        assert row["run"] in markdown
        assert row["run"] in printed
        assert f"{row['test_acc']:.4f}" in printed
    assert "| best | run " in printed
    assert "![curves](curves.png)" in markdown


def test_curves_png_is_a_grid_of_batch_size_rows_and_loss_columns(
    sweep_2x2: Path, tmp_path: Path
) -> None:
    report(sweep_2x2, out_dir=tmp_path)
    # 2 batch sizes x 2 losses, 5.2 x 3.8 inches a panel at 100 dpi, and the legend's 0.9 in
    assert png_size(tmp_path / "curves.png") == (1040, 850)


def test_report_reads_one_job_folder_as_a_single_run(sweep_2x2: Path, tmp_path: Path) -> None:
    job = sweep_2x2 / job_folders(sweep_2x2)[0]
    (row,) = report(job, out_dir=tmp_path)
    assert row["run"] == job.name
    assert row["best"] == "*"
    assert png_size(tmp_path / "curves.png") == (520, 470)


# -- the console script -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.process
def test_script_on_a_run_prints_the_table_and_writes_next_to_it(
    sweep_2x2: Path, tmp_path: Path
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(sweep_2x2 / job_folders(sweep_2x2)[0], run)
    result = run_report_script(run)
    assert result.returncode == 0, result.stderr
    assert "| best | run " in result.stdout
    (row,) = read_csv(run / "summary.csv")
    assert (row["run"], row["status"], row["epochs"]) == ("run", "ok", "1")
    assert (run / "summary.md").is_file()


@pytest.mark.process
def test_script_on_a_folder_without_runs_fails_with_a_clear_message(tmp_path: Path) -> None:
    result = run_report_script(tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert str(tmp_path) in result.stderr
    assert "no run found" in result.stderr
    assert "losslab-train" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "summary.csv").exists()


@pytest.mark.process
def test_script_on_a_missing_path_fails_with_a_clear_message(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-run"
    result = run_report_script(missing)
    assert result.returncode == 2
    assert str(missing) in result.stderr
    assert "no such folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_report_raises_on_missing_or_empty_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no run found"):
        report(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        report(tmp_path / "missing")
    assert main([str(tmp_path)]) == 2


# -- diverged, incomplete, failed ---------------------------------------------------------------


def test_diverged_incomplete_and_failed_runs_come_last_whatever_their_accuracy(
    tmp_path: Path,
) -> None:
    write_run(tmp_path / "ok", curves([0.1, 0.5], test=[0.1, 0.5]), hp())
    write_run(
        tmp_path / "diverged", curves([0.1, 0.99], test=[0.1, math.nan]), hp(status="diverged")
    )
    write_run(
        tmp_path / "crashed", curves([0.1, 0.99], test=[0.1, 0.99]), None, overrides=["loss=sse"]
    )
    (tmp_path / "failed").mkdir()
    (tmp_path / "failed" / "error.txt").write_text(
        "data.batch_size=0 is out of range\n\nTraceback ..."
    )
    rows = report(tmp_path, out_dir=tmp_path / "out")
    assert [(r["run"], r["status"], r["best"]) for r in rows] == [
        ("ok", "ok", "*"),
        ("diverged", "diverged", ""),
        ("crashed", "incomplete", ""),
        ("failed", "failed", ""),
    ]
    assert rows[3]["error"] == "data.batch_size=0 is out of range"
    table = read_csv(tmp_path / "out" / "summary.csv")
    assert table[1]["test_acc"] == "nan"
    summary = (tmp_path / "out" / "summary.md").read_text().splitlines()
    assert summary[2:6] == [
        "4 run(s); Ranked by final **test** accuracy because these runs hold no validation "
        "split (`data.val_size=0`): **this ranking is not a fair selection** (choosing on the "
        "test set overstates what the choice will do on new data). Hold out a validation split "
        "(`data.val_size=10000`) to choose.",
        "",
        "**1 run(s) failed**: see `error.txt` in their folders.",
        "",
    ]
    # one panel per run, three a row: 2 rows of 3 columns
    assert png_size(tmp_path / "out" / "curves.png") == (1560, 850)


# -- cases mutation testing found untested (make mutate) ----------------------------------------


@pytest.mark.parametrize(
    ("noise", "line"),
    [
        (None, "| sweep/a | sse  |         32 | 1e-05 |    4 |"),  # no column without noise
        (0.2, "| sweep/a | sse  |         32 | 1e-05 |         0.2 |    4 |"),
    ],
)
def test_a_row_takes_loss_batch_size_lr_seed_and_label_noise_from_the_hparams(
    noise, line, tmp_path: Path
) -> None:
    hparams = hp("sse", 32, 1e-5, 4) | ({"label_noise": noise} if noise is not None else {})
    write_run(tmp_path / "sweep" / "a", curves([0.1, 0.5], test=[0.1, 0.5]), hparams)
    (row,) = report(tmp_path, out_dir=tmp_path / "out")
    assert (row["run"], row["loss"], row["batch_size"], row["lr"], row["seed"]) == (
        "sweep/a",
        "sse",
        32,
        1e-5,
        4,
    )
    assert row["label_noise"] == noise
    markdown = (tmp_path / "out" / "summary.md").read_text()
    assert line in markdown


def test_an_unfinished_run_takes_them_from_its_hydra_files(tmp_path: Path) -> None:
    """A run killed before its first event file: only .hydra/ was written (by RunDir, as
    losslab-train writes it at the start)."""
    resolved = {
        "seed": 3,
        "data": {"batch_size": 256, "label_noise": 0.2},
        "optimizer": {"lr": 0.03},
    }
    RunDir(tmp_path / "killed").write_config(
        config_yaml="seed: 3\n",  # as composed: interpolations kept, not read for the row
        resolved=resolved,
        hydra_yaml="hydra:\n  runtime:\n    choices:\n      loss: sse_logits\n",
        overrides=["loss=sse_logits"],
    )
    (row,) = report(tmp_path / "killed", out_dir=tmp_path / "out")
    assert (row["loss"], row["batch_size"], row["lr"], row["seed"], row["label_noise"]) == (
        "sse_logits",
        256,
        0.03,
        3,
        0.2,
    )
    assert (row["status"], row["epochs"], row["best"]) == ("incomplete", None, "")


def test_the_status_is_the_one_the_run_wrote_and_the_report_never_judges_curves(
    tmp_path: Path,
) -> None:
    """The status has one owner: the run's result.json, read through RunDir (the Classifier
    marks a non-finite epoch metric diverged: tests/test_module.py). A non-finite curve in a run
    that says ok stays ok; a diverged run with finite curves stays diverged."""
    broken = curves([0.1, 0.6], test=[0.1, 0.6], val=[0.1, 0.6])
    broken["loss/train"] = [2.3, math.inf]
    broken["batch/loss"] = [2.3, math.nan]
    write_run(tmp_path / "inf_ok", broken, hp(status="ok"))
    write_run(tmp_path / "inf_diverged", broken, hp(status="diverged"))
    finite = curves([0.1, 0.9], test=[0.1, 0.9], val=[0.1, 0.9])
    write_run(tmp_path / "finite_diverged", finite, hp(status="diverged"))
    write_run(tmp_path / "finite_ok", curves([0.1, 0.4], test=[0.1, 0.4], val=[0.1, 0.4]), hp())
    rows = report(tmp_path, out_dir=tmp_path / "out")
    assert [(r["run"], r["status"], r["best"]) for r in rows] == [
        ("inf_ok", "ok", "*"),
        ("finite_ok", "ok", ""),
        ("finite_diverged", "diverged", ""),  # whatever its accuracy
        ("inf_diverged", "diverged", ""),
    ]
    for row in rows:
        assert row["status"] == RunDir(tmp_path / row["run"]).status()
        assert (
            row["status"]
            == json.loads((tmp_path / row["run"] / "result.json").read_text())["status"]
        )


def test_an_error_line_with_a_pipe_stays_one_markdown_cell(tmp_path: Path) -> None:
    (tmp_path / "failed").mkdir()
    (tmp_path / "failed" / "error.txt").write_text("loss=foo: allowed values: a | b\nmore\n")
    write_run(tmp_path / "ok", curves([0.1, 0.5], test=[0.1, 0.5], seconds=[4.0]), hp())
    report(tmp_path, out_dir=tmp_path / "out")
    markdown = (tmp_path / "out" / "summary.md").read_text()
    assert "loss=foo: allowed values: a \\| b" in markdown
    assert "more" not in markdown
    ok_line = next(line for line in markdown.splitlines() if line.startswith("| *"))
    assert "|       4 | ok     |" in ok_line  # s/epoch to 3 significant digits
    failed_line = next(
        line for line in markdown.splitlines() if "failed" in line and "error" not in line
    )
    assert "| -    |" in failed_line  # missing values show as "-"


def test_runs_that_differ_in_nothing_but_seed_form_one_group_named_defaults(tmp_path: Path) -> None:
    for seed, acc in enumerate([0.90, 0.92]):
        write_run(
            tmp_path / f"s{seed}",
            curves([0.1, acc], test=[0.1, acc]),
            hp(seed=seed),
            overrides=[f"seed={seed}"],
        )
    report(tmp_path, out_dir=tmp_path / "out")
    (group,) = read_csv(tmp_path / "out" / "groups.csv")
    assert (group["group"], group["seeds"], group["n"], group["best"]) == (
        "(defaults)",
        "0 1",
        "2",
        "*",
    )


def test_markdown_table_aligns_text_left_and_numbers_right() -> None:
    table = markdown_table(["name", "n"], [["a", "10"], ["bcd", "2"]], [True, False])
    assert table == "| name |  n |\n|------|---:|\n| a    | 10 |\n| bcd  |  2 |"


def test_summarize_gives_a_point_interval_for_identical_values_and_nothing_for_none() -> None:
    assert summarize([0.5, 0.5]) == {"n": 2, "mean": 0.5, "std": 0.0, "ci_low": 0.5, "ci_high": 0.5}
    assert summarize([math.nan, None]) == {
        "n": 0,
        "mean": None,
        "std": None,
        "ci_low": None,
        "ci_high": None,
    }
    assert mean_ci(summarize([])) == "-"


# -- more cases mutation testing found untested -------------------------------------------------


def titles(figure) -> list[str]:
    return [ax.get_title() for ax in figure.axes if ax.get_visible() and ax.get_title()]


def seed_group(folder: Path, loss: str, accs: list[float], *extra: str) -> None:
    """One run per accuracy, seeds 0, 1, ...: the same overrides (``loss=...``, ``extra``)."""
    for seed, acc in enumerate(accs):
        write_run(
            folder / f"loss={loss},seed={seed}",
            curves([0.1, acc], test=[0.1, acc - 0.01], val=[0.1, acc]),
            hp(loss=loss, seed=seed),
            overrides=[f"loss={loss}", *extra, f"seed={seed}"],
        )


def test_groups_csv_has_every_column_and_stdout_prints_the_runs_then_the_groups(
    tmp_path: Path, capsys
) -> None:
    seed_group(tmp_path, "cee", [0.90, 0.94])
    report(tmp_path, out_dir=tmp_path / "out")
    printed = capsys.readouterr().out
    (group,) = read_csv(tmp_path / "out" / "groups.csv")
    assert list(group)[:7] == ["best", "group", "loss", "batch_size", "lr", "n", "seeds"]
    assert (group["loss"], group["batch_size"], group["lr"], group["n"]) == (
        "cee",
        "100",
        "0.1",
        "2",
    )
    val = summarize([float(np.float32(0.90)), float(np.float32(0.94))])
    for key in ("mean", "std", "ci_low", "ci_high"):
        assert float(group[f"val_acc_{key}"]) == pytest.approx(val[key]), key
    # the runs table, a blank line, the groups table, a blank line, the selection note
    runs_table, groups_table, rest = printed.split("\n\n", 2)
    assert runs_table.startswith("| best | run ")
    assert runs_table.count("\n") == 3  # header, rule, 2 runs
    assert groups_table == (tmp_path / "out" / "groups.md").read_text().split("\n\n")[2].strip()
    assert rest.startswith("Ranked by final **validation** accuracy")


def test_the_figure_has_a_panel_per_run_titled_by_its_name_and_any_bad_status(
    drawn, tmp_path: Path
) -> None:
    write_run(tmp_path / "a", curves([0.1, 0.9], test=[0.1, 0.9]), hp())
    write_run(tmp_path / "b", curves([0.1, 0.5], test=[0.1, math.nan]), hp(status="diverged"))
    report(tmp_path, out_dir=tmp_path / "out")
    (figure,) = drawn
    assert titles(figure) == ["a", "b  [diverged]"]
    assert figure.legends[0].get_title().get_text() == "per epoch"


def test_the_figure_has_a_panel_per_seed_group_with_the_mean_and_its_band(
    drawn, tmp_path: Path
) -> None:
    seed_group(tmp_path, "cee", [0.90, 0.94])
    seed_group(tmp_path, "sse", [0.80, 0.82])
    report(tmp_path, out_dir=tmp_path / "out")
    (figure,) = drawn
    assert titles(figure) == ["loss=cee (2 seeds)", "loss=sse (2 seeds)"]
    assert figure.legends[0].get_title().get_text() == (
        "mean over the seeds (up to 2) per epoch (columns: cee, sse)"
    )


def test_a_run_that_did_not_end_ok_is_never_marked_best(tmp_path: Path) -> None:
    write_run(tmp_path / "a", curves([0.1, 0.9], test=[0.1, 0.9]), hp(status="diverged"))
    (row,) = report(tmp_path, out_dir=tmp_path / "out")
    assert (row["status"], row["test_acc"], row["best"]) == ("diverged", pytest.approx(0.9), "")
    assert read_csv(tmp_path / "out" / "summary.csv")[0]["best"] == ""
    # the best column stays, empty, so that tables of runs always have the same first columns
    assert (tmp_path / "out" / "summary.md").read_text().count("| best | run ") == 1


def test_an_ok_run_without_a_finite_accuracy_ranks_after_the_ok_runs_with_one(
    tmp_path: Path,
) -> None:
    write_run(tmp_path / "a", curves([0.1, 0.9], test=[0.1, math.nan]), hp())
    write_run(tmp_path / "b", curves([0.1, 0.5], test=[0.1, 0.5]), hp())
    rows = report(tmp_path, out_dir=tmp_path / "out")
    assert [(r["run"], r["best"]) for r in rows] == [("b", "*"), ("a", "")]


def test_the_outputs_go_next_to_the_runs_or_into_a_new_nested_out_folder(tmp_path: Path) -> None:
    write_run(tmp_path / "a", curves([0.1, 0.9], test=[0.1, 0.9]), hp())
    report(tmp_path)
    assert (tmp_path / "summary.csv").is_file()
    assert main([str(tmp_path), "--out", str(tmp_path / "x" / "y")]) == 0
    assert sorted(p.name for p in (tmp_path / "x" / "y").iterdir()) == [
        "curves.png",
        "summary.csv",
        "summary.md",
    ]


def test_the_script_prints_one_error_line_on_stderr_and_exits_2(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"losslab-report: error: {tmp_path / 'missing'}: no such folder; expected a run or a "
        "folder of run folders as losslab-train writes them (a .hydra/ config, event files, a result)\n"
    )


def test_a_group_is_named_by_the_overrides_that_set_it_apart_from_the_others(
    tmp_path: Path,
) -> None:
    seed_group(tmp_path / "two", "cee", [0.90, 0.94], "data.batch_size=50", "optimizer.lr=0.1")
    seed_group(tmp_path / "two", "sse", [0.80, 0.82], "data.batch_size=500", "optimizer.lr=0.1")
    seed_group(tmp_path / "one", "sse", [0.80, 0.82], "optimizer.lr=0.1")
    report(tmp_path / "two", out_dir=tmp_path / "out2")
    report(tmp_path / "one", out_dir=tmp_path / "out1")
    # what both groups share (optimizer.lr=0.1) is left out; a lone group keeps its overrides
    assert [r["group"] for r in read_csv(tmp_path / "out2" / "groups.csv")] == [
        "data.batch_size=50,loss=cee",
        "data.batch_size=500,loss=sse",
    ]
    assert [r["group"] for r in read_csv(tmp_path / "out1" / "groups.csv")] == [
        "loss=sse,optimizer.lr=0.1"
    ]


def test_groups_rank_by_their_mean_whatever_their_order_and_one_without_it_comes_last(
    tmp_path: Path,
) -> None:
    """sse holds the best single run (0.99) but the lower mean (0.745 < 0.90); mae no test
    accuracy at all: ranked cee, sse, mae."""
    for seed in (0, 1):
        write_run(tmp_path / f"a{seed}", {"acc/train": [0.1, 0.5]}, hp("mae", seed=seed),
                  overrides=["loss=mae", f"seed={seed}"])  # fmt: skip
        for name, loss, acc in (("b", "sse", (0.99, 0.50)[seed]), ("c", "cee", 0.90)):
            write_run(tmp_path / f"{name}{seed}", curves([0.1, acc], test=[0.1, acc]),
                      hp(loss, seed=seed), overrides=[f"loss={loss}", f"seed={seed}"])  # fmt: skip
    report(tmp_path, out_dir=tmp_path / "out")
    rows = read_csv(tmp_path / "out" / "groups.csv")
    assert [(r["group"], r["best"], r["n"]) for r in rows] == [
        ("loss=cee", "*", "2"),
        ("loss=sse", "", "2"),
        ("loss=mae", "", "0"),  # no metric measured: no seed counts
    ]
    assert rows[2]["test_acc_mean"] == ""


def test_a_groups_n_counts_the_seeds_of_its_best_measured_metric(tmp_path: Path) -> None:
    """No run wrote a test loss: n is the seeds of the other metrics, not 0."""
    for seed, acc in enumerate([0.90, 0.94]):
        c = curves([0.1, acc], test=[0.1, acc])
        del c["loss/test"]
        write_run(tmp_path / f"s{seed}", c, hp(seed=seed), overrides=[f"seed={seed}"])
    report(tmp_path, out_dir=tmp_path / "out")
    (group,) = read_csv(tmp_path / "out" / "groups.csv")
    assert (group["n"], group["test_loss_mean"]) == ("2", "")


def test_only_a_group_of_runs_without_any_accuracy_is_marked_best_by_nobody(
    tmp_path: Path,
) -> None:
    for seed in (0, 1):
        write_run(tmp_path / f"s{seed}", {"acc/train": [0.1, 0.5]}, hp(seed=seed),
                  overrides=[f"seed={seed}"])  # fmt: skip
    report(tmp_path, out_dir=tmp_path / "out")
    (group,) = read_csv(tmp_path / "out" / "groups.csv")
    assert (group["best"], group["n"]) == ("", "0")


# -- one run counted once, the settings that tell runs apart, runs that logged nothing ----------


def with_config(folder: Path, seed: int = 0, lr: float = 0.1) -> Path:
    """The ``.hydra/`` files losslab-train writes first (what says which run a folder holds)."""
    import yaml

    config = {"data": {"batch_size": 100, "seed": seed}, "optimizer": {"lr": lr}, "seed": seed}
    hydra = yaml.safe_dump({"hydra": {"runtime": {"choices": {"loss": "cee"}}}})
    RunDir(folder).write_config(yaml.safe_dump(config), config, hydra, [f"seed={seed}"])
    return folder


def test_a_run_in_two_folders_is_counted_once_and_the_report_names_both(tmp_path, capsys):
    """A copy of a run (another folder name, the same config and seed) is one run: one row, no
    seed group of two, and the report says which folder it left out."""
    for name in ("orig", "copy"):
        write_run(tmp_path / name, curves([0.1, 0.9], test=[0.1, 0.8], val=[0.1, 0.85]), hp())
        with_config(tmp_path / name)
    write_run(tmp_path / "other", curves([0.1, 0.9], test=[0.1, 0.7], val=[0.1, 0.75]), hp(seed=1))
    with_config(tmp_path / "other", seed=1)
    rows = report(tmp_path, out_dir=tmp_path / "out")
    assert [r["run"] for r in rows] == ["copy", "other"]  # the first by path stands for both
    # seeds 0 and 1 of one setting: two seeds, not three runs
    assert [(r["n"], r["seeds"]) for r in read_csv(tmp_path / "out" / "groups.csv")] == [
        ("2", "0 1")
    ]
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert (
        "**1 folder(s) left out**, each the same run as another (the same resolved config and "
        "seed), counted once: orig is copy." in summary
    )
    assert "2 run(s);" in summary
    out = capsys.readouterr().out
    assert "Counted once (the same config and seed in two folders): orig is copy." in out


def test_settings_that_differ_between_the_runs_get_columns_after_the_lr(tmp_path):
    """train_size and hidden tell these runs apart (hidden is its own column, after lr); the
    optimizer is the same in every run: no column for it."""
    for name, size, hidden, acc in (("a", 300, "100", 0.9), ("b", 60000, "100-100", 0.8)):
        row = {**hp(), "train_size": size, "hidden": hidden, "optimizer": "sgd"}
        write_run(tmp_path / name, curves([0.1, acc], test=[0.1, acc]), row)
    rows = report(tmp_path, out_dir=tmp_path / "out")
    assert [(r["run"], r["train_size"], r["hidden"]) for r in rows] == [
        ("a", 300, "100"), ("b", 60000, "100-100")]  # fmt: skip
    assert "optimizer" not in rows[0]
    with (tmp_path / "out" / "summary.csv").open() as f:
        header = next(csv.reader(f))
    assert header[:7] == ["best", "run", "loss", "batch_size", "lr", "train_size", "hidden"]
    assert "optimizer" not in header
    markdown = (tmp_path / "out" / "summary.md").read_text()
    assert "|  lr | train size | hidden  |" in markdown
    assert "| 100-100 |" in markdown  # a text column, left-aligned


def test_runs_that_logged_nothing_are_reported_from_their_results(tmp_path, drawn):
    """``logger=null``: no event file; the curves, the table and the figure come from
    result.json's history."""
    for name, acc in (("a", 0.9), ("b", 0.7)):
        run = RunDir(tmp_path / name)
        run.path.mkdir()
        history = [{"epoch": 0, "step": 0, "acc/test": 0.1, "acc/val": 0.1, "acc/train": 0.1},
                   {"epoch": 1, "step": 5, "acc/test": acc - 0.05, "acc/val": acc,
                    "acc/train": acc + 0.05, "time/epoch": 2.0}]  # fmt: skip
        run.write_result("ok", 1, {}, hp(), 2.5, history)
        with_config(run.path, lr={"a": 0.1, "b": 0.3}[name])  # what losslab-train writes first
    rows = report(tmp_path, out_dir=tmp_path / "out")
    assert [(r["run"], r["best"], r["val_acc"], r["epochs"]) for r in rows] == [
        ("a", "*", 0.9, 1), ("b", "", 0.7, 1)]  # fmt: skip
    assert rows[0]["sec_per_epoch"] == 2.0
    (figure,) = drawn
    assert titles(figure)[:2] == ["a", "b"]


def test_an_out_that_names_a_file_is_refused_in_one_line(tmp_path, capsys):
    write_run(tmp_path / "a", curves([0.1, 0.9], test=[0.1, 0.9]), hp())
    (tmp_path / "out.md").write_text("mine")
    assert main([str(tmp_path / "a"), "--out", str(tmp_path / "out.md")]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"losslab-report: error: --out={tmp_path / 'out.md'}: a file is "
                              f"there; --out names a folder to write\n")  # fmt: skip
    assert (tmp_path / "out.md").read_text() == "mine"
    assert not (tmp_path / "a" / "summary.csv").exists()


def test_a_single_runs_panel_is_titled_by_what_it_trained(drawn, tmp_path: Path) -> None:
    settings = {**hp(lr=0.01), "train_size": 300, "val_size": 0, "hidden": "100-100"}
    write_run(tmp_path / "run", curves([0.1, 1.0], test=[0.1, 0.8]), settings)
    report(tmp_path / "run", out_dir=tmp_path / "out")
    (figure,) = drawn
    assert [t.replace("\n", " ") for t in titles(figure)] == [
        "cee, batch size 100, lr 0.01, 300 train images, hidden 100-100, seed 0"
    ]  # not "run", nor "." (its folder's name); wrapped to the panel's width
    full = {**hp(lr=0.01), "train_size": 60_000, "val_size": 0, "hidden": "100"}
    write_run(tmp_path / "full", curves([0.1, 1.0], test=[0.1, 0.8]), full)
    report(tmp_path / "full", out_dir=tmp_path / "out2")
    assert titles(drawn[-1]) == ["cee, batch size 100, lr 0.01, seed 0"]  # the defaults: unsaid
