"""What a reader of a tiny study sees, checked without eyes: every figure the study and its
stages' reports draw gives each loss one colour, in the same order; the panels come in the
stated order with y-limits inside the metric's range; the TensorBoard views losslab-study prints
open at smoothing 0 on one stage and one value (at most 40 runs, each of that value), and render
in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from matplotlib.colors import to_hex
from test_verdict import fair_study, noise_study

from losslab.read.report import report
from losslab.read.style import loss_color
from losslab.study.catalogue import Catalogue
from losslab.study.verdict import verdict
from losslab.study.views import MOST_RUNS, URL, views

REPO = Path(__file__).resolve().parents[2]
BROWSER = next(
    (b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
)


def add_reliability(stage: Path) -> None:
    """Every run of a stage gets reliability bins: cee's confident and right, sse's less so."""
    from losslab.run.rundir import RunDir

    for run in stage.iterdir():
        if run.is_dir():
            right = 0.95 if "loss=cee" in run.name else 0.85
            bins = {"count": [0, 150, 850], "confidence": [0.0, 0.5, 0.97],
                    "accuracy": [0.0, 0.4, right]}  # fmt: skip
            RunDir(run).write_reliability(2, {"test": bins})


def line_colors(ax) -> dict[str, str]:
    """Legend label -> the colour of its line, for the panel's labelled lines."""
    return {
        line.get_label(): to_hex(line.get_color())
        for line in ax.lines
        if not line.get_label().startswith("_")
    }


def test_every_figure_of_a_study_gives_each_loss_its_colour_in_one_order(tmp_path, drawn):
    fair, noise = tmp_path / "fair", tmp_path / "noise"
    fair_study(fair)
    add_reliability(fair / "final")
    verdict(fair)
    noise_study(noise)
    verdict(noise)
    report(fair / "final")
    reliability, noise_figure, curves = drawn
    cee, sse, logits = (loss_color(x) for x in ("cee", "sse", "sse_logits"))

    # reliability.png: a panel per batch size in increasing order, the losses in the study's order
    assert [ax.get_title() for ax in reliability.axes] == ["batch size 100", "batch size 1000"]
    for ax in reliability.axes:
        assert line_colors(ax) == {"calibrated": to_hex("gray"), "cee": cee, "sse": sse,
                                   "sse_logits": logits}  # fmt: skip
        assert ax.get_ylim() == (0, 1.02)
        cee_line = next(line for line in ax.lines if line.get_label() == "cee")
        assert list(cee_line.get_xdata()) == [0.5, 0.97]  # the empty bin is not drawn

    # noise.png: tuned accuracy, fixed accuracy, fixed memorization, in that order
    assert [ax.get_title() for ax in noise_figure.axes] == [
        "tuned arm: test accuracy", "fixed arm: test accuracy", "fixed arm: memorized"]  # fmt: skip
    tuned, fixed, memorized = noise_figure.axes
    assert line_colors(tuned) == {"cee, last epoch": cee, "sse, last epoch": sse}
    assert line_colors(memorized) == {"cee, last epoch": cee, "sse, last epoch": sse}
    for ax in (tuned, fixed, memorized):
        low, high = ax.get_ylim()
        assert 0 <= low < high <= 1, ax.get_title()

    # the final stage's curves.png: columns cee, sse, sse_logits in every row, their colours
    legend = curves.legends[0]
    assert legend.get_title().get_text().startswith("mean over the seeds (up to 5) per epoch")
    assert "columns: cee, sse, sse_logits" in legend.get_title().get_text()
    patches = dict(zip([t.get_text() for t in legend.get_texts()], legend.legend_handles,
                       strict=True))  # fmt: skip
    assert {k: to_hex(v.get_facecolor()) for k, v in patches.items() if k.endswith("accuracy")} == {
        "cee accuracy": cee, "sse accuracy": sse, "sse_logits accuracy": logits}  # fmt: skip
    grid = [ax for ax in curves.axes if ax.get_ylabel() in ("accuracy", "")]  # no twins
    assert len(grid) % 3 == 0
    for i, ax in enumerate(grid):  # row by row: column j holds the j-th loss, or nothing
        loss = ("cee", "sse", "sse_logits")[i % 3]
        if not ax.get_visible():
            continue
        assert f"loss={loss}," in ax.get_title().replace(" ", "")
        assert {to_hex(line.get_color()) for line in ax.lines} == {loss_color(loss)}
        assert ax.get_ylim() == (0, 1.02)
    assert sum(ax.get_visible() for ax in grid) == 12  # 3 losses x 2 batch sizes x 2 lrs


def sweep_names(study: Path, stage: str) -> list[str]:
    return sorted(p.name for p in (study / stage).iterdir() if p.is_dir())


def name_runs_as_a_sweep_does(study: Path, catalogue: Catalogue) -> None:
    """The fake runs' folders renamed as Hydra names a sweep's jobs (``0.4``, never ``0.0``)."""
    for stage in ("final", "fixed"):
        for run in (study / stage).iterdir() if (study / stage).is_dir() else ():
            name = re.sub(r"=0\.0(,|$)", r"=0\1", run.name)
            if name != run.name:
                run.rename(run.with_name(name))


def query(url: str) -> dict[str, str]:
    assert url.startswith(URL)
    assert url.endswith("#timeseries")
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def test_a_studys_views_open_one_stage_and_one_value_at_smoothing_0(tmp_path):
    noise_study(tmp_path)
    catalogue = Catalogue.load(tmp_path)
    name_runs_as_a_sweep_does(tmp_path, catalogue)
    shown = views(tmp_path, catalogue)
    assert [command for command, _ in shown] == [
        f"tensorboard --logdir {tmp_path / 'final'}", f"tensorboard --logdir {tmp_path / 'fixed'}"]  # fmt: skip
    for (_, pages), stage, values in zip(shown, ("final", "fixed"), (("0", "0.4"), ("0.4",)),
                                               strict=True):  # fmt: skip
        names = sweep_names(tmp_path, stage)
        assert [label for label, _ in pages] == [f"label noise {v}" for v in values]
        for (_, url), value in zip(pages, values, strict=True):
            q = query(url)
            assert q["smoothing"] == "0"
            assert q["runColorGroup"] == r"regex:loss=(\w+)"
            assert re.search(q["runColorGroup"][6:], names[0]).group(1) in ("cee", "sse")
            chosen = [n for n in names if re.search(q["runFilter"], n)]
            assert chosen == [n for n in names if f"data.label_noise={value}," in n]
            assert 0 < len(chosen) <= MOST_RUNS
            tags = ["acc/train", "acc/val", "acc/test", "acc/train_true", "memo/train"]
            assert [t for t in [*tags, "acc/train_truex", "loss/test"]
                    if re.search(q["tagFilter"], t)] == tags  # fmt: skip


def test_a_value_with_more_than_40_runs_gets_a_view_per_loss(tmp_path):
    catalogue = Catalogue("study", "data.batch_size", "batch size", ("cee", "sse"), (32, 320),
                          "cee", ("tuned",), {"tuned": ("test_acc",)}, 2)  # fmt: skip
    for loss in ("cee", "sse"):
        for seed in range(21):  # 42 runs at batch size 32, 2 at 320
            (tmp_path / "final" / f"loss={loss},data.batch_size=32,seed={seed}").mkdir(parents=True)
        (tmp_path / "final" / f"loss={loss},data.batch_size=320,seed=0").mkdir()
    ((_, pages),) = views(tmp_path, catalogue)
    assert [label for label, _ in pages] == ["batch size 32, cee", "batch size 32, sse",
                                            "batch size 320"]  # fmt: skip
    names = sweep_names(tmp_path, "final")
    for (label, url), wanted in zip(pages, (21, 21, 2), strict=True):
        chosen = [n for n in names if re.search(query(url)["runFilter"], n)]
        assert len(chosen) == wanted, label  # 32 is no prefix of 320, nor 320 of 32
    assert views(tmp_path / "nothing", catalogue) == []


@pytest.mark.slow
@pytest.mark.process
@pytest.mark.skipif(BROWSER is None, reason="needs chromium (apt-get install chromium)")
def test_the_view_a_study_prints_renders_its_runs_in_headless_chromium(tmp_path):
    noise_study(tmp_path)
    catalogue = Catalogue.load(tmp_path)
    name_runs_as_a_sweep_does(tmp_path, catalogue)
    _, pages = views(tmp_path, catalogue)[1]  # the fixed arm
    ((label, url),) = pages
    out = tmp_path / "view.png"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "screenshot.py"),
            str(tmp_path / "fixed"),
            "--view",
            url,
            "--out",
            str(out),
            "--wait-ms",
            "6000",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (1400, 1000)
    assert len(data) > 40_000  # charts drawn, not a blank page
    # what TensorBoard served is what the view filters: the stage's runs, named by their folders
    served = re.search(r"tensorboard on .*: (\d+) run\(s\)", result.stdout)
    assert int(served.group(1)) == len(sweep_names(tmp_path, "fixed"))
    assert label == "label noise 0.4"
