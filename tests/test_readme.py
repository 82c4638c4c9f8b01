"""The README is true: its paths and make targets exist, its code snippet runs, and the
commands that name a log folder write exactly there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ok
from conftest import train as train_in_process

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
    assert {"src/losslab/losses", "src/losslab/run/rundir.py", "scripts/check_losses.py"} <= paths
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert missing == []


def test_the_readme_has_no_unfilled_placeholders():
    assert re.findall(r"\b[A-Z]+_(?:TABLE|TEXT)\b|\{\{\w+\}\}", README) == []


def test_the_use_the_losses_snippet_runs(capsys):
    section = README.split("### Use the losses in your own code", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "0.5108"


@pytest.mark.parametrize(
    "name",
    [
        "book_ch4",
        "loss_vs_batch",
        "overfit",
        "study_tune",
        "study_final",
        "noise_tune",
        "noise_final",
    ],
)
def test_every_experiment_named_in_the_readme_exists(name):
    assert f"experiment={name}" in README or f"experiment/{name}.yaml" in README
    assert (REPO / "conf" / "experiment" / f"{name}.yaml").is_file()


TINY = ["trainer.max_epochs=1", "data.train_size=200"]


def train(*args: str, cwd: Path):
    return ok(train_in_process(*args, cwd=cwd))


@pytest.mark.slow
def test_the_overfit_command_writes_into_logs_overfit_runs(tmp_path, data_dir):
    assert "losslab-train experiment=overfit && losslab-report logs/overfit/runs/<time>" in README
    train("experiment=overfit", *TINY, cwd=tmp_path)
    (run,) = (tmp_path / "logs" / "overfit" / "runs").iterdir()
    assert (run / ".hydra" / "config.yaml").is_file()
    assert list(tmp_path.iterdir()) == [tmp_path / "logs"]


@pytest.mark.slow
def test_make_sweep_writes_into_logs_loss_vs_batch_multiruns(tmp_path, data_dir):
    assert "logs/loss_vs_batch/multiruns/<time>/" in README
    train("experiment=loss_vs_batch", "data.batch_size=500,1000", *TINY, cwd=tmp_path)
    (sweep,) = (tmp_path / "logs" / "loss_vs_batch" / "multiruns").iterdir()
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == [
        f"loss={loss},data.batch_size={bs}" for loss in ("cee", "sse") for bs in (1000, 500)
    ]
    assert (sweep / "summary.md").is_file()


@pytest.mark.slow
def test_the_own_config_folder_example_runs_as_written(tmp_path, data_dir):
    section = README.split("### Your own experiments, without touching the package", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL).group(1)
    path, body = re.search(r"cat > (\S+) <<'EOF'\n(.*?)\nEOF", block, flags=re.DOTALL).groups()
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_text(body)
    assert "losslab-train --config-dir my_conf experiment=wide" in block
    train("--config-dir", "my_conf", "experiment=wide", *TINY, cwd=tmp_path)
    (run,) = (tmp_path / "logs" / "wide" / "runs").iterdir()  # -> logs/wide/runs/<time>
    assert "- 400" in (run / ".hydra" / "config.yaml").read_text()
