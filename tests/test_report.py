"""losslab.report and ``losslab-report`` on real runs of ``losslab-train`` (made once per session)."""

from __future__ import annotations

import csv
import math
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from losslab.report import COLUMNS, main, report

pytestmark = pytest.mark.slow
REPORT_SCRIPT = Path(sys.executable).parent / "losslab-report"


def read_csv(file: Path) -> list[dict[str, str]]:
    with file.open(newline="") as f:
        return list(csv.DictReader(f))


def event_curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar curve of a run, straight from its event files: tag -> [(step, value)]."""
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
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


@pytest.fixture(scope="module")
def single_run(losslab_train, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run (not a sweep): 500 samples, 2 epochs."""
    run = tmp_path_factory.mktemp("single") / "run"
    losslab_train(
        "data.train_size=500", "trainer.max_epochs=2", f"hydra.run.dir={run}", "hydra.callbacks={}"
    )
    return run


@pytest.fixture(scope="module")
def diverging_sweep(losslab_train, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs that differ in lr only: 0.1 trains, 1e30 blows up in its first epoch."""
    sweep = tmp_path_factory.mktemp("diverging") / "sweep"
    losslab_train(
        "-m",
        "optimizer.lr=0.1,1e30",
        "data.train_size=500",
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={sweep}",
        "hydra.callbacks={}",
    )
    return sweep


# -- a 2 x 2 sweep -----------------------------------------------------------------------------


def test_sweep_makes_one_override_named_folder_per_job(sweep_2x2: Path) -> None:
    jobs = sorted(p.name for p in sweep_2x2.iterdir() if p.is_dir())
    assert jobs == sorted(
        f"data.batch_size={bs},data.train_size=1000,loss={loss},trainer.max_epochs=1"
        for bs in (50, 500)
        for loss in ("sse", "cee")
    )
    for job in jobs:
        assert (sweep_2x2 / job / ".hydra" / "config.yaml").is_file()
        assert list((sweep_2x2 / job / "tensorboard").glob("events.out.tfevents.*"))


def test_sweep_end_writes_the_report_into_the_sweep_folder(sweep_2x2: Path) -> None:
    # conf/hydra/default.yaml's ReportOnMultirunEnd callback
    for name in ("summary.md", "summary.csv", "curves.png"):
        assert (sweep_2x2 / name).is_file(), name
    assert len(read_csv(sweep_2x2 / "summary.csv")) == 4


def test_csv_numbers_equal_the_event_files_exactly(sweep_2x2: Path, tmp_path: Path) -> None:
    rows = report(sweep_2x2, out_dir=tmp_path)
    table = read_csv(tmp_path / "summary.csv")
    assert list(table[0]) == list(COLUMNS)
    assert len(table) == len(rows) == 4
    for row in table:
        curves = event_curves(sweep_2x2 / row["run"])
        last = {tag: points[-1] for tag, points in curves.items()}
        assert float(row["final_test_acc"]) == last["acc/test"][1]
        assert float(row["final_test_loss"]) == last["loss/test"][1]
        assert float(row["final_train_acc"]) == last["acc/train"][1]
        assert float(row["final_gap"]) == last["gap/acc"][1]
        assert float(row["best_test_acc"]) == max(v for _, v in curves["acc/test"])
        assert [s for s, _ in curves["acc/test"]] == [0, 1]  # epoch 0 = untrained
        assert int(row["epochs"]) == 1
        assert row["status"] == "ok"
        assert float(row["sec_per_epoch"]) > 0
        assert f"loss={row['loss']}" in row["run"]
        assert f"data.batch_size={row['batch_size']}," in row["run"]
        assert float(row["lr"]) == 0.1


def test_rows_are_sorted_by_test_accuracy_and_the_best_is_marked(
    sweep_2x2: Path, tmp_path: Path
) -> None:
    rows = report(sweep_2x2, out_dir=tmp_path)
    accs = [r["final_test_acc"] for r in rows]
    assert accs == sorted(accs, reverse=True)
    assert [r["best"] for r in rows] == ["*", "", "", ""]
    assert [r["best"] for r in read_csv(tmp_path / "summary.csv")] == ["*", "", "", ""]


def test_markdown_and_stdout_show_every_run(
    sweep_2x2: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = report(sweep_2x2, out_dir=tmp_path)
    printed = capsys.readouterr().out
    markdown = (tmp_path / "summary.md").read_text()
    for row in rows:
        assert row["run"] in markdown
        assert row["run"] in printed
        assert f"{row['final_test_acc']:.4f}" in printed
    assert "| best | run " in printed
    assert "![" in markdown
    assert "curves.png" in markdown


def test_curves_png_is_a_2x2_grid_sized_picture(sweep_2x2: Path, tmp_path: Path) -> None:
    report(sweep_2x2, out_dir=tmp_path)
    width, height = png_size(tmp_path / "curves.png")
    assert width >= 800
    assert height >= 600
    assert (tmp_path / "curves.png").stat().st_size > 20_000


def test_report_reads_one_job_folder_as_a_single_run(sweep_2x2: Path, tmp_path: Path) -> None:
    job = next(p for p in sweep_2x2.iterdir() if p.is_dir())
    (row,) = report(job, out_dir=tmp_path)
    assert row["run"] == job.name
    assert row["best"] == "*"


# -- the console script ------------------------------------------------------------------------


def test_script_on_a_single_run_prints_the_table_and_writes_next_to_it(single_run: Path) -> None:
    result = run_report_script(single_run)
    assert result.returncode == 0, result.stderr
    assert "| best | run " in result.stdout
    assert single_run.name in result.stdout
    (row,) = read_csv(single_run / "summary.csv")
    assert (row["run"], row["status"], row["epochs"], row["batch_size"]) == (
        single_run.name,
        "ok",
        "2",
        "100",
    )
    curves = event_curves(single_run)
    best = max(curves["acc/test"], key=lambda p: p[1])
    assert float(row["best_test_acc"]) == best[1]
    assert int(row["best_epoch"]) == best[0]
    assert (single_run / "summary.md").is_file()
    assert png_size(single_run / "curves.png")[0] > 300


def test_script_on_a_folder_without_runs_fails_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "tensorboard").mkdir()  # an empty tensorboard/ folder holds no run either
    result = run_report_script(tmp_path)
    assert result.returncode == 2
    assert str(tmp_path) in result.stderr
    assert "no TensorBoard event files" in result.stderr
    assert "tensorboard/events.out.tfevents.*" in result.stderr
    assert "losslab-train" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "summary.csv").exists()


def test_script_on_a_missing_path_fails_with_a_clear_message(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-run"
    result = run_report_script(missing)
    assert result.returncode == 2
    assert str(missing) in result.stderr
    assert "no such folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_report_raises_on_missing_or_empty_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no TensorBoard event files"):
        report(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        report(tmp_path / "missing")
    assert main([str(tmp_path)]) == 2


# -- diverged and incomplete runs --------------------------------------------------------------


def test_a_diverged_run_is_marked_and_listed_last(diverging_sweep: Path, tmp_path: Path) -> None:
    report(diverging_sweep, out_dir=tmp_path)
    table = read_csv(tmp_path / "summary.csv")
    assert [(r["lr"], r["status"], r["best"]) for r in table] == [
        ("0.1", "ok", "*"),
        ("1e+30", "diverged", ""),
    ]
    diverged = diverging_sweep / table[1]["run"]
    losses = [v for _, v in event_curves(diverged)["loss/test"]]
    assert not math.isfinite(losses[-1])  # really diverged, not just a bad run
    assert table[1]["final_test_loss"] == "nan"
    assert png_size(tmp_path / "curves.png")[0] >= 800  # one panel per run: same loss and bs


def test_a_run_stopped_before_the_end_is_incomplete_with_params_from_hydra(
    sweep_2x2: Path, tmp_path: Path
) -> None:
    # A crash before the end leaves curves but no HPARAMS: write such a run by hand, with the
    # .hydra/ of a real sse job.
    from torch.utils.tensorboard import SummaryWriter

    sweep = tmp_path / "sweep"
    real = sweep_2x2 / "data.batch_size=500,data.train_size=1000,loss=sse,trainer.max_epochs=1"
    shutil.copytree(real, sweep / "finished")
    shutil.copytree(real / ".hydra", sweep / "crashed" / ".hydra")
    writer = SummaryWriter(str(sweep / "crashed" / "tensorboard"))
    for epoch, acc in enumerate([0.1, 0.99, 0.98]):
        for tag in ("acc/train", "acc/test"):
            writer.add_scalar(tag, acc, epoch)
        writer.add_scalar("loss/test", 1 - acc, epoch)
    writer.close()

    rows = report(sweep, out_dir=tmp_path / "out")
    assert [r["run"] for r in rows] == ["finished", "crashed"]  # despite its higher accuracy
    crashed = rows[1]
    assert (crashed["status"], crashed["loss"], crashed["batch_size"], crashed["lr"]) == (
        "incomplete",
        "sse",
        500,
        0.1,
    )
    assert (crashed["epochs"], crashed["best_epoch"], crashed["final_gap"]) == (2, 1, None)
    assert crashed["best_test_acc"] == pytest.approx(0.99)
    assert rows[0]["best"] == "*"
    assert crashed["best"] == ""
