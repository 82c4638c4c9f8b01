"""The figures (losslab.read.figures) hold what they claim: each plotted line's data, its label and
style, the axes' labels, titles and limits, and the saved image's size; the pooled reliability
bins and the mean curves equal sums worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.colors import to_hex
from matplotlib.image import imread

from losslab.read import figures


def size(file: Path) -> tuple[int, int]:
    """(width, height) of a PNG in pixels."""
    height, width = imread(file).shape[:2]
    return width, height


def legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_pooled_bins_weigh_each_bin_of_each_run_by_its_count_and_drop_empty_bins():
    run1 = {"bins": {"val": {"count": [2, 0, 3], "confidence": [0.3, 0.0, 0.8],
                             "accuracy": [0.5, 0.0, 1.0]}}}  # fmt: skip
    run2 = {"bins": {"val": {"count": [2, 0, 1], "confidence": [0.4, 0.0, 0.6],
                             "accuracy": [0.0, 0.0, 0.0]}}}  # fmt: skip
    pooled = figures.pooled_bins([run1, None, run2], split="val")
    # bin 0: 4 samples, confidence (2*0.3 + 2*0.4)/4, accuracy (2*0.5 + 0)/4; bin 1 is empty;
    # bin 2: 4 samples, confidence (3*0.8 + 0.6)/4, accuracy 3/4
    assert pooled == {
        "confidence": pytest.approx([0.35, 0.75]),
        "accuracy": pytest.approx([0.25, 0.75]),
    }
    assert figures.pooled_bins([None, None]) is None
    # the test split by default; a bin of a single sample counts
    one = {"bins": {"test": {"count": [1, 0], "confidence": [0.9, 0.0], "accuracy": [1.0, 0.0]}}}
    assert figures.pooled_bins([one]) == {"confidence": [0.9], "accuracy": [1.0]}
    with pytest.raises(KeyError):
        figures.pooled_bins([run1])  # the default split is test


def test_mean_curves_average_the_epochs_every_run_reached_with_a_t_band():
    runs = [
        {"acc/test": [(0, 0.5), (1, 0.7), (2, 0.9)], "loss/test": [(0, 2.0)]},
        {"acc/test": [(0, 0.7), (1, 0.9)], "loss/test": [(0, 1.0)]},
    ]
    means, bands = figures.mean_curves(runs)
    assert means == {
        "acc/test": [(0, pytest.approx(0.6)), (1, pytest.approx(0.8))],
        "loss/test": [(0, pytest.approx(1.5))],
    }
    # two runs: half-width t(0.975, 1) * sd / sqrt(2) = 12.706 * 0.1414 / 1.414 = 1.2706
    (e0, low0, high0), (e1, _, _) = bands["acc/test"]
    assert (e0, e1) == (0, 1)
    assert (low0, high0) == (
        pytest.approx(0.6 - 1.2706, abs=1e-3),
        pytest.approx(0.6 + 1.2706, abs=1e-3),
    )
    assert figures.mean_curves([runs[0]])[1]["acc/test"] == []  # one run: no band
    # a curve that another run lacks has no epoch every run reached: nothing to draw
    means, bands = figures.mean_curves([runs[0], {"acc/test": runs[1]["acc/test"]}])
    assert (means["loss/test"], bands["loss/test"]) == ([], [])


def test_the_noise_figure_draws_each_loss_in_one_colour_solid_last_dashed_early(drawn, tmp_path):
    ci = {"mean": 0.9, "ci_low": 0.88, "ci_high": 0.92}
    lines = {
        "last epoch": {
            "cee": [(0.0, ci), (0.2, {"mean": 0.8, "ci_low": None, "ci_high": None})],
            "sse": [(0.0, {"mean": 0.95, "ci_low": 0.94, "ci_high": 0.96})],
        },
        "early-stopped": {"cee": [(0.0, {"mean": 0.7, "ci_low": 0.6, "ci_high": 0.8})]},
    }
    figures.plot_noise(lines, tmp_path / "noise.png")
    (fig,) = drawn
    (ax,) = fig.axes
    assert size(tmp_path / "noise.png") == (640, 460)
    assert ax.get_xlabel() == "label noise p (fraction of training labels flipped)"
    assert ax.get_ylabel() == "test accuracy"
    assert ax.get_title() == "Test accuracy under symmetric label noise (mean, 95% CI over seeds)"
    assert legend(ax) == ["cee, last epoch", "sse, last epoch", "cee, early-stopped"]
    drawn_lines = []
    for bars in ax.containers:
        line, caps, (segments,) = bars.lines
        errors = [round((s[1][1] - s[0][1]) / 2, 6) for s in segments.get_segments()]
        drawn_lines.append((list(line.get_xdata()), list(line.get_ydata()), errors,
                            line.get_linestyle(), to_hex(line.get_color()), line.get_marker()))  # fmt: skip
        assert len(caps) == 2
    c0, c1 = to_hex("C0"), to_hex("C1")
    assert drawn_lines == [
        ([0.0, 0.2], [0.9, 0.8], [0.02, 0.0], "-", c0, "o"),
        ([0.0], [0.95], [0.01], "-", c1, "o"),
        ([0.0], [0.7], [0.1], "--", c0, "o"),
    ]


def test_the_reliability_figure_has_a_panel_per_key_with_the_diagonal_and_each_loss(
    drawn, tmp_path
):
    panels = {
        100: {"cee": {"confidence": [0.5, 0.9], "accuracy": [0.4, 0.95]}, "sse": None},
        1000: {"cee": None, "sse": {"confidence": [0.7], "accuracy": [0.6]}},
    }
    figures.plot_reliability(panels, "reliability of the final runs", tmp_path / "r.png")
    (fig,) = drawn
    assert size(tmp_path / "r.png") == (840, 420)
    assert fig.get_suptitle() == "reliability of the final runs"
    left, right = fig.axes
    for ax, key in ((left, 100), (right, 1000)):
        assert ax.get_title() == f"batch size {key}"
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("confidence (max softmax)", "accuracy")
        assert ax.get_xlim() == (0, 1)
        assert ax.get_ylim() == (0, 1)
        diagonal = ax.lines[0]
        assert (list(diagonal.get_xdata()), list(diagonal.get_ydata())) == ([0, 1], [0, 1])
        assert (diagonal.get_linestyle(), diagonal.get_color()) == (":", "gray")
    assert legend(left) == ["calibrated", "cee"]
    assert legend(right) == ["calibrated", "sse"]
    assert [list(line.get_xdata()) for line in left.lines[1:]] == [[0.5, 0.9]]
    assert [list(line.get_ydata()) for line in right.lines[1:]] == [[0.6]]
    assert (right.lines[1].get_linestyle(), right.lines[1].get_marker()) == ("-", "o")


def row(batch_size, loss):
    return {"batch_size": batch_size, "loss": loss}


def test_the_curves_figure_is_a_batch_size_by_loss_grid_of_twin_axis_panels(drawn, tmp_path):
    curves = {"acc/train": [(0, 0.5), (1, 0.8)], "acc/test": [(0, 0.4), (1, 0.7)],
              "loss/test": [(0, 2.0), (1, 1.0)]}  # fmt: skip
    bands = {"acc/test": [(0, 0.3, 0.5), (1, 0.6, 0.8)]}
    panels = [
        ("loss=cee,data.batch_size=100", curves, bands, row(100, "cee")),
        ("loss=sse,data.batch_size=100", curves, None, row(100, "sse")),
        ("loss=cee,data.batch_size=1000", {}, None, row(1000, "cee")),
    ]
    figures.plot_curves(panels, "runs", tmp_path / "c.png")
    (fig,) = drawn
    assert size(tmp_path / "c.png") == (1040, 760)  # 2 columns x 5.2 in, 2 rows x 3.8 in
    assert fig.get_suptitle() == "runs (rows: batch size, columns: loss)"
    accuracy_axes = [ax for ax in fig.axes if ax.get_ylabel() == "accuracy (solid)"]
    loss_axes = [ax for ax in fig.axes if ax.get_ylabel() == "loss (dashed)"]
    assert len(accuracy_axes) == len(loss_axes) == 3
    hidden = [ax for ax in fig.axes if not ax.get_visible()]
    assert len(hidden) == 1  # batch size 1000 has no sse panel
    cee, sse, empty = accuracy_axes
    assert cee.get_title() == "loss=cee, data.batch_size=100"
    assert (cee.get_xlabel(), cee.get_ylim()) == ("epoch", (0, 1))
    assert legend(cee) == ["train acc", "test acc", "test loss"]
    solid = {line.get_label(): line for line in cee.lines}
    assert list(solid["test acc"].get_ydata()) == [0.4, 0.7]
    assert list(solid["test acc"].get_xdata()) == [0, 1]  # epochs
    (band,) = cee.collections  # the test accuracy's band, from (epoch, low, high)
    vertices = band.get_paths()[0].vertices
    assert (vertices[:, 0].min(), vertices[:, 0].max()) == (0, 1)
    assert (vertices[:, 1].min(), vertices[:, 1].max()) == (0.3, 0.8)
    assert (solid["test acc"].get_linestyle(), solid["test acc"].get_marker()) == ("-", ".")
    assert to_hex(solid["test acc"].get_color()) == to_hex("tab:orange")
    assert to_hex(solid["train acc"].get_color()) == to_hex("tab:blue")
    (dashed,) = loss_axes[0].lines
    assert (dashed.get_label(), dashed.get_linestyle()) == ("test loss", "--")
    assert len(cee.collections) == 1
    assert len(sse.collections) == 0
    assert [t.get_text() for t in empty.texts] == ["no epoch curves"]
    # ... in the middle of the panel, whatever its size
    (note,) = empty.texts
    assert (note.get_position(), note.get_transform()) == ((0.5, 0.5), empty.transAxes)
    assert (note.get_ha(), note.get_va()) == ("center", "center")
    assert to_hex(band.get_facecolor()[0][:3]) == to_hex("tab:orange")  # its line's colour
    assert all(tick == int(tick) for tick in cee.get_xticks())  # whole epochs only


def test_a_curve_is_drawn_at_its_own_epochs_when_epoch_0_was_not_logged(drawn, tmp_path):
    curves = {"acc/val": [(1, 0.6), (2, 0.8)], "loss/val": [(1, 1.0), (2, 0.5)]}
    bands = {"acc/val": [(1, 0.5, 0.7), (2, 0.7, 0.9)]}
    figures.plot_curves([("r", curves, bands, row(None, "cee"))], "", tmp_path / "c.png")
    accuracy = next(ax for ax in drawn[0].axes if ax.get_ylabel() == "accuracy (solid)")
    (line,) = accuracy.lines
    assert (list(line.get_xdata()), list(line.get_ydata())) == ([1, 2], [0.6, 0.8])
    (band,) = accuracy.collections
    assert band.get_paths()[0].vertices[:, 0].min() == 1


def test_panels_without_distinct_cells_fill_rows_of_three(drawn, tmp_path):
    long = [(e, 0.5) for e in range(31)]
    panels = [(f"run {i}", {"acc/val": long}, None, row(None, "cee")) for i in range(4)]
    figures.plot_curves(panels, "four runs", tmp_path / "c.png")
    (fig,) = drawn
    assert size(tmp_path / "c.png") == (1560, 760)
    assert fig.get_suptitle() == "four runs"
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.get_ylabel() == "accuracy (solid)"]
    assert len(visible) == 4
    (line,) = visible[0].lines
    assert line.get_marker() == "None"  # 31 epochs: no dots over the curve
    assert legend(visible[0]) == ["val acc"]  # accuracy curves alone still get a legend
    thirty = [(e, 0.5) for e in range(29)] + [(29, float("inf"))]
    figures.plot_curves(
        [("r", {"acc/val": thirty}, None, row(None, "cee"))], "", tmp_path / "t.png"
    )
    (line,) = next(ax for ax in drawn[-1].axes if ax.get_ylabel() == "accuracy (solid)").lines
    assert line.get_marker() == "."  # 30 epochs still get their dots
    assert str(line.get_ydata()[-1]) == "nan"  # an infinite value is not drawn
    assert to_hex(line.get_color()) == to_hex("tab:green")
    figures.plot_curves(panels[:1], "one run", tmp_path / "one.png")
    assert drawn[-1].get_suptitle() == ""  # one panel: its title says it all
    figures.plot_curves(panels[:2], "two runs", tmp_path / "two.png")
    assert drawn[-1].get_suptitle() == "two runs"
