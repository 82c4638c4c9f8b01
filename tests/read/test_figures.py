"""The figures (losslab.read.figures) hold what they claim, read back from the drawn figure: each
loss's colour, each split's and moment's line style, the legend entries, the panel order, the
y-limits inside the metric's range, the bands' min-max, the seeds a panel lacks; the pooled
reliability bins and the mean curves equal sums worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.colors import to_hex
from matplotlib.image import imread

from losslab.read import figures
from losslab.read.figures import CurvePanel, Series, ValuePanel
from losslab.read.style import LOSS_COLORS, loss_color, loss_order, metric_range

BLUE, ORANGE, GREEN, RED = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"


def size(file: Path) -> tuple[int, int]:
    """(width, height) of a PNG in pixels."""
    height, width = imread(file).shape[:2]
    return width, height


def legend(legend) -> list[str]:
    return [t.get_text() for t in legend.get_texts()]


# -- style ---------------------------------------------------------------------------------------


def test_each_shipped_loss_has_its_colour_and_a_loss_of_your_own_a_stable_spare_one():
    assert [loss_color(x) for x in ("cee", "sse", "sse_logits", "mae")] == [BLUE, ORANGE, GREEN,
                                                                             RED]  # fmt: skip
    own = loss_color("gce")
    assert own == loss_color("gce")
    assert own not in LOSS_COLORS.values()
    assert own == "#e377c2"  # SPARE_COLORS[crc32("gce") % 6 == 2]: the same on every machine
    assert loss_order(["mae", "gce", "sse", "cee", "abc", "sse"]) == ["cee", "sse", "mae", "abc",
                                                                      "gce"]  # fmt: skip


def test_each_metric_kind_has_its_range():
    assert metric_range("acc/test") == metric_range("memo/train") == (0.0, 1.0)
    assert metric_range("ece/val") == (0.0, 1.0)
    assert metric_range("brier/test") == (0.0, 2.0)
    assert metric_range("gap/acc") == (-1.0, 1.0)
    assert metric_range("nll/test") == (0.0, None)
    assert metric_range("loss/train") == (None, None)  # a loss of your own may go below 0


# -- data ----------------------------------------------------------------------------------------


def test_pooled_bins_weigh_each_bin_of_each_run_by_its_count_and_drop_empty_bins():
    run1 = {"bins": {"val": {"count": [2, 0, 3], "confidence": [0.3, 0.0, 0.8],
                             "accuracy": [0.5, 0.0, 1.0]}}}  # fmt: skip
    run2 = {"bins": {"val": {"count": [2, 0, 1], "confidence": [0.4, 0.0, 0.6],
                             "accuracy": [0.0, 0.0, 0.0]}}}  # fmt: skip
    pooled = figures.pooled_bins([run1, None, run2], split="val")
    # bin 0: 4 samples, confidence (2*0.3 + 2*0.4)/4, accuracy (2*0.5 + 0)/4; bin 1 is empty;
    # bin 2: 4 samples, confidence (3*0.8 + 0.6)/4, accuracy 3/4
    assert pooled == {
        "count": [4, 4],
        "confidence": pytest.approx([0.35, 0.75]),
        "accuracy": pytest.approx([0.25, 0.75]),
    }
    assert figures.pooled_bins([None, None]) is None
    one = {"bins": {"test": {"count": [1, 0], "confidence": [0.9, 0.0], "accuracy": [1.0, 0.0]}}}
    assert figures.pooled_bins([one]) == {"count": [1], "confidence": [0.9], "accuracy": [1.0]}
    with pytest.raises(KeyError):
        figures.pooled_bins([run1])  # the default split is test


def test_mean_curves_average_the_epochs_every_run_reached_with_a_min_max_band():
    runs = [
        {"acc/test": [(0, 0.5), (1, 0.7), (2, 0.9)], "loss/test": [(0, 2.0)]},
        {"acc/test": [(0, 0.7), (1, 0.9)], "loss/test": [(0, 1.0)]},
        {"acc/test": [(0, 0.6), (1, 1.0)], "loss/test": [(0, float("nan"))]},
    ]
    means, bands = figures.mean_curves(runs)
    assert means == {
        "acc/test": [(0, pytest.approx(0.6)), (1, pytest.approx(0.8667, abs=1e-4))],
        "loss/test": [],  # a NaN at epoch 0: no mean there
    }
    # the lowest and the highest run: inside [0, 1] however few the seeds (a t-interval of
    # three seeds would reach 1.2 at epoch 1)
    assert bands["acc/test"] == [(0, 0.5, 0.7), (1, 0.7, 1.0)]
    assert figures.mean_curves([runs[0]])[1]["acc/test"] == []  # one run: no band
    means, bands = figures.mean_curves([runs[0], {"acc/test": runs[1]["acc/test"]}])
    assert (means["loss/test"], bands["loss/test"]) == ([], [])  # no epoch every run reached


# -- curves --------------------------------------------------------------------------------------

CURVES = {"acc/train": [(0, 0.5), (1, 1.0)], "acc/test": [(0, 0.4), (1, 0.7)],
          "loss/train": [(0, 2.0), (1, 0.1)], "loss/test": [(0, 2.0), (1, 1.0)]}  # fmt: skip


def accuracy_axes(fig) -> list:
    return [ax for ax in fig.axes if ax.get_visible() and ax.get_ylabel() == "accuracy"]


def test_the_curves_grid_has_a_row_per_setting_and_a_column_per_loss_in_a_fixed_order(
    drawn, tmp_path
):
    bands = {"acc/test": [(0, 0.3, 0.5), (1, 0.6, 0.8)]}
    panels = [  # given out of order: the figure orders them
        CurvePanel("loss=mae,bs=1000", "mae", CURVES, None, "bs=1000", "", ((0, 1000, ""),)),
        CurvePanel("loss=sse,bs=100", "sse", CURVES, None, "bs=100", "", ((0, 100, ""),)),
        CurvePanel(
            "loss=cee,bs=100",
            "cee",
            CURVES,
            bands,
            "bs=100",
            "not drawn: seed 3 diverged",
            ((0, 100, ""),),
        ),
    ]
    fig = figures.plot_curves(panels, "mean over the seeds", tmp_path / "c.png")
    assert drawn == [fig]
    width, _height = size(tmp_path / "c.png")
    assert width == 1560  # 3 columns x 5.2 in
    assert fig.legends[0].get_title().get_text() == (
        "mean over the seeds (columns: cee, sse, mae; rows: bs=100, bs=1000)"
    )
    grid = fig.axes[: 2 * 3]  # the subplots, row by row, before their twin axes
    assert [ax.get_title() if ax.get_visible() else None for ax in grid] == [
        "loss=cee, bs=100", "loss=sse, bs=100", None,
        None, None, "loss=mae, bs=1000",
    ]  # fmt: skip
    cee, sse, mae = (grid[0], grid[1], grid[5])
    for ax, color in ((cee, BLUE), (sse, ORANGE), (mae, RED)):
        styles = {line.get_linestyle(): to_hex(line.get_color()) for line in ax.lines}
        assert styles == {":": color, "-": color}  # train dotted, test solid: the loss's colour
        assert ax.get_ylim() == (0, 1.02)  # a train accuracy of 1 stays inside the frame
    loss_ax = next(a for a in fig.axes if a.get_ylabel() == "loss (gray)")  # cee's twin
    assert {(line.get_linestyle(), line.get_color()) for line in loss_ax.lines} == {
        (":", "0.45"), ("-", "0.45")}  # fmt: skip
    assert loss_ax.get_ylim() == (0, pytest.approx(2.1))
    (band,) = cee.collections
    vertices = band.get_paths()[0].vertices
    assert (vertices[:, 1].min(), vertices[:, 1].max()) == (0.3, 0.8)
    assert to_hex(band.get_facecolor()[0][:3]) == BLUE
    assert [t.get_text() for t in cee.texts] == ["not drawn: seed 3 diverged"]
    (fig_legend,) = fig.legends
    assert legend(fig_legend) == [
        "train (dotted)",
        "test (solid)",
        "cee accuracy",
        "sse accuracy",
        "mae accuracy",
        "loss",
        "band: min-max over the seeds",
    ]  # fmt: skip: only the splits drawn; no val here


def test_a_single_run_is_one_panel_titled_by_what_it_trained(drawn, tmp_path):
    curves = {"acc/val": [(1, 0.6), (2, 0.8)], "loss/val": [(1, 1.0), (2, 0.5)]}
    fig = figures.plot_curves(
        [CurvePanel("cee, lr 0.01, seed 0", "cee", curves)],
        "one run, per epoch",
        tmp_path / "c.png",
    )
    (ax,) = accuracy_axes(fig)
    assert ax.get_title() == "cee, lr 0.01, seed 0"
    (line,) = ax.lines
    assert (list(line.get_xdata()), list(line.get_ydata())) == ([1, 2], [0.6, 0.8])
    assert (line.get_linestyle(), line.get_marker()) == ("--", ".")  # val dashed
    assert fig.legends[0].get_title().get_text() == "one run, per epoch"
    assert legend(fig.legends[0]) == ["val (dashed)", "cee accuracy", "loss"]


def test_panels_without_distinct_cells_fill_rows_of_three(drawn, tmp_path):
    long = [(e, 0.5) for e in range(31)]
    panels = [CurvePanel(f"run {i}", "cee", {"acc/val": long}) for i in range(4)]
    fig = figures.plot_curves(panels, "four runs", tmp_path / "c.png")
    assert size(tmp_path / "c.png")[0] == 1560
    assert [ax.get_title() for ax in accuracy_axes(fig)] == [f"run {i}" for i in range(4)]
    (line,) = accuracy_axes(fig)[0].lines
    assert line.get_marker() == "None"  # 31 epochs: no dots over the curve
    thirty = [(e, 0.5) for e in range(29)] + [(29, float("inf"))]
    fig = figures.plot_curves([CurvePanel("r", "gce", {"acc/val": thirty})], "", tmp_path / "t.png")
    (line,) = accuracy_axes(fig)[0].lines
    assert line.get_marker() == "."  # 30 epochs still get their dots
    assert len(line.get_ydata()) == 29  # an infinite value is not drawn
    assert to_hex(line.get_color()) == loss_color("gce")
    fig = figures.plot_curves([CurvePanel("e", "cee", {})], "", tmp_path / "e.png")
    (empty,) = accuracy_axes(fig)
    assert [t.get_text() for t in empty.texts] == ["no epoch curves"]


# -- reliability ---------------------------------------------------------------------------------


def test_the_reliability_figure_sizes_markers_by_images_and_leaves_out_near_empty_bins(
    drawn, tmp_path
):
    few = figures.MIN_BIN_IMAGES - 1
    panels = {
        1000: {"sse": {"count": [400], "confidence": [0.7], "accuracy": [0.6]}, "cee": None},
        100: {
            "sse": None,
            "cee": {
                "count": [few, 200, 800],
                "confidence": [0.2, 0.5, 0.9],
                "accuracy": [0.9, 0.4, 0.95],
            },
        },
    }
    fig = figures.plot_reliability(panels, "reliability", tmp_path / "r.png", "batch size")
    left, right = fig.axes
    assert (left.get_title(), right.get_title()) == ("batch size 100", "batch size 1000")
    assert fig.get_suptitle() == (
        f"reliability\nmarker area: images in the bin; bins of fewer than "
        f"{figures.MIN_BIN_IMAGES} images left out"
    )
    for ax in (left, right):
        assert (ax.get_xlim(), ax.get_ylim()) == ((0, 1), (0, 1.02))
        diagonal = ax.lines[0]
        assert (list(diagonal.get_xdata()), diagonal.get_linestyle()) == ([0, 1], ":")
    assert legend(left.get_legend()) == ["calibrated", "cee"]
    (line,) = left.lines[1:]
    assert list(line.get_xdata()) == [0.5, 0.9]  # the bin of 99 images is not drawn
    assert to_hex(line.get_color()) == BLUE
    (dots,) = left.collections
    assert list(dots.get_sizes()) == [4 + 200 * 200 / 800, 4 + 200]  # area in proportion
    assert to_hex(right.lines[1].get_color()) == ORANGE


# -- noise ---------------------------------------------------------------------------------------


def test_the_noise_figure_has_a_panel_per_arm_and_metric_with_styled_dodged_series(drawn, tmp_path):
    tuned = ValuePanel("tuned arm: test accuracy", "acc/test", "test accuracy", [
        Series("sse", "last", {0.0: [0.95, 0.97], 0.4: [0.8, 0.9]}),
        Series("cee", "last", {0.0: [0.96, 0.96], 0.4: [0.7, 0.8]}),
        Series("cee", "early", {0.0: [0.96, 0.94], 0.4: [0.85, 0.85]}),
    ])  # fmt: skip
    memo = ValuePanel("fixed arm: memorized", "memo/train", "memorized", [
        Series("cee", "last", {0.4: [0.5, 0.6]}), Series("mae", "last", {0.4: [0.01, 0.02]}),
    ])  # fmt: skip
    fig = figures.plot_noise([tuned, memo], "label noise p", tmp_path / "noise.png", "arms: ...")
    assert fig.get_suptitle() == "mean over seeds (line) and each seed (dots)\narms: ..."
    left, right = fig.axes
    assert [left.get_title(), right.get_title()] == ["tuned arm: test accuracy",
                                                     "fixed arm: memorized"]  # fmt: skip
    assert left.get_xlabel() == "label noise p"
    # series by loss order, then last epoch before early-stopped; one line and one dot cloud each
    assert legend(left.get_legend()) == ["cee, last epoch", "cee, early-stopped",
                                         "sse, last epoch"]  # fmt: skip
    means = [line for line in left.lines if line.get_label() in legend(left.get_legend())]
    assert [(to_hex(m.get_color()), m.get_linestyle(), m.get_marker()) for m in means] == [
        (BLUE, "-", "o"), (BLUE, "--", "s"), (ORANGE, "-", "o")]  # fmt: skip
    assert means[1].get_markerfacecolor() == "white"  # early-stopped: open squares
    xs = [list(m.get_xdata()) for m in means]
    assert xs[0][0] < xs[1][0] < xs[2][0]  # spread sideways around 0 ...
    assert xs[1][0] == pytest.approx(0.0)
    assert xs[1][1] == pytest.approx(0.4)
    assert xs[2][0] - xs[1][0] == pytest.approx(0.4 * 0.06)
    assert list(means[2].get_ydata()) == pytest.approx([0.96, 0.85])  # the mean of the seeds
    dots = [line for line in left.lines if line.get_linestyle() == "None"]
    assert sorted(y for d in dots for y in d.get_ydata()) == sorted(
        [0.95, 0.97, 0.8, 0.9, 0.96, 0.96, 0.7, 0.8, 0.96, 0.94, 0.85, 0.85])  # fmt: skip
    low, high = left.get_ylim()
    assert 0 <= low < 0.7
    assert 0.97 < high <= 1
    low, high = right.get_ylim()
    assert low == 0
    assert high > 0.6
    assert [to_hex(m.get_color()) for m in right.lines if m.get_linestyle() == "-"] == [BLUE, RED]
    assert list(left.get_xticks()) == [0.0, 0.4]
