"""losslab.read.tables: the cells of the Markdown tables and the CSV files, as a user reads them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from losslab.read.tables import cell, write_csv


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("test_acc", math.nan, "nan"),  # a diverged run's accuracy, never a number
        ("lr", math.inf, "inf"),
        ("test_loss", -math.inf, "-inf"),
        ("seed", 3, "3"),
        ("test_acc", 0.96021, "0.9602"),
        ("lr", 0.0003, "0.0003"),
        ("sec_per_epoch", 12.345, "12.3"),
        ("error", "a | b", "a \\| b"),
        ("test_acc", None, "-"),
    ],
)
def test_a_cell_shows_each_value_as_the_tables_print_it(key, value, shown) -> None:
    assert cell(key, value) == shown


def test_csv_writes_missing_and_none_values_as_empty_cells_and_only_the_asked_columns(
    tmp_path: Path,
) -> None:
    rows = [{"a": 1, "b": None, "extra": "x"}, {"a": 0.25}]
    write_csv(rows, ["a", "b"], tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_bytes() == b"a,b\r\n1,\r\n0.25,\r\n"
