"""A study as data (losslab.study.catalogue): what it compares, saved with the study and read
back whole; the comparisons (against a reference, or every pair); each arm's metrics with their
direction; the margin it refuses; compared values as plain numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from losslab.study.catalogue import (
    METRICS,
    Catalogue,
    StudyError,
    check_margin,
    stage_file,
    value_key,
)

NOISE = Catalogue("noise", "data.label_noise", "label noise", ("cee", "sse", "mae"),
                  (0.0, 0.2), None, ("tuned", "fixed"),
                  {"tuned": ("test_acc", "test_at_best"), "fixed": ("test_acc", "memorized")},
                  top_k=3, margin=0.01, clean=0.0)  # fmt: skip


def test_a_catalogue_saved_with_the_study_reads_back_equal(tmp_path):
    NOISE.save(tmp_path)
    assert Catalogue.load(tmp_path) == NOISE
    saved = yaml.safe_load((tmp_path / "study.yaml").read_text())
    assert saved["losses"] == ["cee", "sse", "mae"]
    assert saved["metrics"]["fixed"] == ["test_acc", "memorized"]


def test_the_comparisons_are_each_loss_against_the_reference_or_every_pair_in_order():
    assert NOISE.pairs() == [("cee", "sse"), ("cee", "mae"), ("sse", "mae")]
    fair = Catalogue("study", "data.batch_size", "batch size", ("cee", "sse", "gce"), (100,),
                     "sse", ("tuned",), {"tuned": ("test_acc",)})  # fmt: skip
    assert fair.pairs() == [("sse", "cee"), ("sse", "gce")]
    assert [fair.order(loss) for loss in ("cee", "gce", "other")] == [0, 2, 3]


def test_each_arm_compares_its_own_metrics_and_memorization_is_better_lower():
    assert [m.name for m in NOISE.arm_metrics("fixed")] == ["test_acc", "memorized"]
    assert (METRICS["memorized"].higher, METRICS["memorized"].word.format("sse")) == (
        False,
        "sse memorizes less",
    )
    assert (METRICS["test_at_best"].when, METRICS["test_acc"].when) == ("early", "last")
    assert {m.curve for m in METRICS.values()} == {"acc/test", "memo/train"}


def test_a_folder_without_a_catalogue_is_no_study(tmp_path):
    with pytest.raises(StudyError, match="is not a study folder"):
        Catalogue.load(tmp_path)


@pytest.mark.parametrize("margin", [0, 0.0, 1, -0.1, math.nan])
def test_a_margin_outside_0_1_is_refused_naming_the_option(margin) -> None:
    with pytest.raises(StudyError, match=r"^--margin=.*must be in \(0, 1\)"):
        check_margin(margin)


def test_a_margin_inside_0_1_is_accepted() -> None:
    check_margin(0.005)
    check_margin(0.999)


def test_a_numpy_float_value_becomes_a_plain_float_that_yaml_can_write() -> None:
    key = value_key(np.float64(0.2))
    assert type(key) is float
    assert key == 0.2
    assert yaml.safe_load(yaml.safe_dump({key: 1})) == {0.2: 1}
    assert value_key(100) == 100
    assert value_key("cee") == "cee"


def test_a_stage_file_is_read_again_when_it_changes_and_a_callers_edit_stays_its_own(tmp_path):
    """stage_file keeps its parse per text (a sweep resolves it for every job): a file written
    again gives its new contents, and a caller that edits what it got changes no later read."""
    file = tmp_path / "candidates.yaml"
    file.write_text("cee: {0.0: {lrs: [0.3, 0.1]}}\n")
    first = stage_file(file, "no file at {path}")
    first["cee"][0.0]["lrs"].append(9.0)
    assert stage_file(file, "no file at {path}") == {"cee": {0.0: {"lrs": [0.3, 0.1]}}}
    file.write_text("cee: {0.0: {lrs: [1.0]}}\n")
    assert stage_file(file, "no file at {path}") == {"cee": {0.0: {"lrs": [1.0]}}}
    with pytest.raises(StudyError, match=r"^optimizer.lr: no file at .*nowhere.yaml$"):
        stage_file(tmp_path / "nowhere.yaml", "no file at {path}")
