"""The README is true: its paths and make targets exist, and its code snippet runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
PATH_PATTERN = re.compile(r"(?<![\w/.-])((?:src|scripts|conf|tests|docs|\.ci)/[\w./-]*[\w])")


def test_every_make_target_in_the_readme_exists():
    targets = set(re.findall(r"make ([a-z][\w-]*)", README))
    makefile = (REPO / "Makefile").read_text()
    defined = set(re.findall(r"^([a-z][\w-]*):", makefile, flags=re.MULTILINE))
    assert targets  # the README does name some
    assert targets <= defined, targets - defined


def test_every_file_path_in_the_readme_exists():
    paths = set(PATH_PATTERN.findall(README))
    assert {"src/losslab/losses.py", "scripts/check_losses.py"} <= paths
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert missing == []


def test_the_readme_has_no_unfilled_placeholders():
    assert re.findall(r"\b[A-Z]+_(?:TABLE|TEXT)\b", README) == []


def test_the_use_the_losses_snippet_runs(capsys):
    section = README.split("### Use the losses in your own code", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "0.5108"


@pytest.mark.parametrize("name", ["book_ch4", "loss_vs_batch", "overfit"])
def test_every_experiment_named_in_the_readme_exists(name):
    assert f"experiment={name}" in README or f"experiment/{name}.yaml" in README
    assert (REPO / "conf" / "experiment" / f"{name}.yaml").is_file()
