"""losslab.study.catalogue: the finished runs a study stage reads, and the settings and missing stages
it refuses, each with one line naming what to do."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from losslab.study.catalogue import StudyError, check_margin, finished_rows, load_choices, value_key


def failed_runs(folder: Path, names: list[str]) -> None:
    """Sweep jobs that raised: a folder holding only ``error.txt``."""
    for name in names:
        (folder / name).mkdir(parents=True)
        (folder / name / "error.txt").write_text("boom\n")


def test_a_missing_stage_folder_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match=f"^{tmp_path / 'tune'}: no such folder; run the stage"):
        finished_rows(tmp_path / "tune", "tune")


@pytest.mark.parametrize(
    ("count", "listed"),
    [
        (3, "a (failed), b (failed), c (failed)"),
        (4, "a (failed), b (failed), c (failed) and 1 more"),
        (6, "a (failed), b (failed), c (failed) and 3 more"),
    ],
)
def test_unfinished_runs_are_refused_naming_the_first_three_and_counting_the_rest(
    count, listed, tmp_path: Path
) -> None:
    failed_runs(tmp_path, list("abcdef"[:count]))
    with pytest.raises(StudyError) as refused:
        finished_rows(tmp_path, "tune")
    assert str(refused.value) == (
        f"{tmp_path}: {count} tune run(s) did not finish: {listed}; run the same losslab-study "
        "command again (it resumes the stage) first"
    )


@pytest.mark.parametrize("margin", [0, 0.0, 1, -0.1, math.nan])
def test_a_margin_outside_0_1_is_refused_naming_the_option(margin) -> None:
    with pytest.raises(StudyError, match=r"^--margin=.*must be in \(0, 1\)"):
        check_margin(margin)


def test_a_margin_inside_0_1_is_accepted() -> None:
    check_margin(0.005)
    check_margin(0.999)


def test_a_study_without_chosen_lrs_is_told_to_run_the_choose_stage(tmp_path: Path) -> None:
    with pytest.raises(StudyError) as refused:
        load_choices(tmp_path)
    assert str(refused.value).endswith(f"run losslab-study choose {tmp_path / 'tune'} first")


def test_a_numpy_float_value_becomes_a_plain_float_that_yaml_can_write() -> None:
    key = value_key(np.float64(0.2))
    assert type(key) is float
    assert key == 0.2
    assert yaml.safe_load(yaml.safe_dump({key: 1})) == {0.2: 1}
    assert value_key(100) == 100
    assert value_key("cee") == "cee"
