"""What a run prints (losslab.run.console): its summary lines, the TensorBoard command only for
a run that wrote curves, paths as the user typed them; warnings into train.log, not the console."""

from __future__ import annotations

import logging
import warnings

from losslab.run.console import log, run_log, shown, summary
from losslab.run.rundir import RunDir

LAST = {"epoch": 3, "acc/train": 0.91234, "loss/train": 0.3, "nll/train": 0.3, "ece/train": 0.02,
        "acc/test": 0.9, "loss/test": 0.35, "nll/test": 0.35, "ece/test": float("nan")}  # fmt: skip


def test_the_summary_lists_each_split_and_the_tensorboard_command_only_with_curves(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    text = summary("ok", LAST, 12.34, run)
    assert text.splitlines() == [
        "",
        "losslab: ok after 3 epochs in 12.3 s",
        "  train  acc 0.9123  loss 0.3000  nll 0.3000  ece 0.0200",
        "  test   acc 0.9000  loss 0.3500  nll 0.3500  ece -",
        "  logs   r",
    ]  # no event file (logger=null, debug=fast): no tensorboard line
    (run.path / "events.out.tfevents.1.host").write_bytes(b"")
    assert summary("ok", LAST, 12.34, run).endswith("  logs   r\n  view   tensorboard --logdir r")


def test_a_path_outside_the_working_folder_is_shown_whole(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert shown(tmp_path / "a" / "b") == "a/b"
    assert shown(tmp_path.parent) == str(tmp_path.parent)


def test_warnings_go_to_the_runs_file_and_not_to_the_console(tmp_path, capsys):
    run = RunDir(tmp_path)
    before = list(logging.getLogger("losslab").handlers)
    with run_log(run, console=True):
        warnings.warn("something a user cannot act on", UserWarning, stacklevel=1)
        log.info("epoch   1  |  shown")
        log.info("epoch   2  |  only in the file", extra={"console": False})
    out = capsys.readouterr()
    assert out.out == "epoch   1  |  shown\n"
    assert "something a user cannot act on" not in out.out + out.err
    text = run.log_file.read_text()
    assert "something a user cannot act on" in text
    assert "epoch   2  |  only in the file" in text
    assert logging.getLogger("losslab").handlers == before  # its own taken away at the end


def test_a_sweeps_job_prints_nothing_on_the_console(tmp_path, capsys):
    with run_log(RunDir(tmp_path), console=False):
        log.info("epoch   1")
    assert capsys.readouterr().out == ""
    assert "epoch   1" in (tmp_path / "train.log").read_text()
