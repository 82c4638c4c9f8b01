"""A sweep's progress (losslab.sweep.progress): one line per job that ends, with its name,
status, deciding metric, seconds, the sweep's count and the time left; a job's count is the
place of its own record, whatever its parallel siblings append; and a real 4-job sweep's console
holds those lines and no epoch line."""

from __future__ import annotations

import json
import re
import time
from types import SimpleNamespace

import pytest
from conftest import TINY, ok, train

from losslab.run.rundir import RunDir
from losslab.sweep import progress


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0 s"), (12.49, "12 s"), (59.6, "1 min 0 s"), (312, "5 min 12 s"), (3780, "1 h 03 min")],
)
def test_durations_read_as_a_person_says_them(seconds, text):
    assert progress.duration(seconds) == text


def test_a_line_names_the_job_its_status_metric_seconds_count_and_time_left(monkeypatch):
    monkeypatch.setattr(time, "time", lambda: 1100.0)
    header = {"total": 144, "start": 1000.0, "stage": "tune"}
    result = {"status": "ok", "history": [{"epoch": 0}, {"epoch": 5, "acc/val": 0.97123}]}
    line = progress.line(header, 37, "loss=cee,seed=100", result, 4.06)
    # 100 s for 37 jobs: 107 more take 289 s
    assert line == "tune  37/144  loss=cee,seed=100  ok  val acc 0.9712  4.1 s  ETA 4 min 49 s"
    assert progress.line(
        header, 144, "x", {"status": "diverged", "history": [{"acc/test": 0.1}]}, 1.0
    ) == ("tune 144/144  x  diverged  test acc 0.1000  1.0 s  all 144 in 1 min 40 s")
    assert progress.line(header, 2, "y", None, 0.5).startswith(
        "tune   2/144  y  failed  0.5 s  ETA"
    )


def test_each_job_counts_by_the_place_of_its_own_record(tmp_path, capsys):
    progress.start(tmp_path, 3, "final")
    outputs = []
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        RunDir(tmp_path / name).write_result("ok", 1, {}, {}, 1.0, [{"epoch": 1, "acc/val": 0.5}])
        hc = SimpleNamespace(
            sweep=SimpleNamespace(dir=str(tmp_path)),
            runtime=SimpleNamespace(output_dir=str(tmp_path / name)),
        )
        progress.job_ended(hc, failed=False, seconds=1.0)
        outputs.append(capsys.readouterr().out)
    assert [re.match(r"final (\d)/3  (\w)", o).groups() for o in outputs] == [
        ("1", "a"),
        ("2", "b"),
        ("3", "c"),
    ]
    header, *records = (tmp_path / progress.FILE).read_text().splitlines()
    assert json.loads(header)["total"] == 3
    assert [json.loads(r)["job"] for r in records] == ["a", "b", "c"]


def test_a_launch_of_nothing_leaves_the_folder_as_it_is_and_another_sweeper_prints_nothing(
    tmp_path, capsys
):
    progress.start(tmp_path, 0, None)
    assert list(tmp_path.iterdir()) == []
    hc = SimpleNamespace(
        sweep=SimpleNamespace(dir=str(tmp_path)),
        runtime=SimpleNamespace(output_dir=str(tmp_path / "j")),
    )
    progress.job_ended(hc, failed=True, seconds=1.0)
    assert capsys.readouterr().out == ""


@pytest.mark.slow
@pytest.mark.mutation_targets("progress", "sweeper", "train")
def test_a_sweep_of_four_jobs_prints_one_line_a_job_and_no_epoch_line(tmp_path, data_dir):
    res = ok(
        train(
            "-m",
            "loss=sse,cee",
            "seed=0,1",
            *TINY,
            "data.val_size=200",
            "hydra.sweep.dir=sw",
            cwd=tmp_path,
        )
    )
    lines = res.stdout.splitlines()
    assert lines[0] == "losslab-train: 4 job(s) into sw"
    jobs = [line for line in lines if line.startswith("sweep ")]
    assert [line.split("  ")[:3] for line in jobs] == [
        ["sweep 1/4", "loss=sse,seed=0", "ok"], ["sweep 2/4", "loss=sse,seed=1", "ok"],
        ["sweep 3/4", "loss=cee,seed=0", "ok"], ["sweep 4/4", "loss=cee,seed=1", "ok"],
    ]  # fmt: skip
    assert all(re.search(r"  val acc 0\.\d{4}  \d+\.\d s  (ETA .*|all 4 in .*)$", j) for j in jobs)
    assert not [line for line in lines if line.startswith("epoch ")]
    assert "GPU available" not in res.stdout + res.stderr  # Lightning's own lines: in train.log
    assert res.stderr == ""
    log = (tmp_path / "sw" / "loss=sse,seed=0" / "train.log").read_text()
    assert "epoch   1" in log  # the run's file keeps its epoch lines
