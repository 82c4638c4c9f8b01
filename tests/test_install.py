"""losslab as a built package: the wheel carries the configs and trains from any folder, its
metadata asks for torch alone unless the ``train`` extra is wanted, and the console scripts
say in one line what to install when the extras are missing."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def run(*cmd: str | Path, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        list(map(str, cmd)), capture_output=True, text=True, timeout=600, **kwargs
    )
    assert result.returncode == 0, f"{cmd}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel .`` (no download: the build backend of this venv)."""
    dist = tmp_path_factory.mktemp("dist")
    run(PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, REPO)
    (built,) = dist.glob("losslab-*.whl")
    return built


def test_the_wheel_needs_torch_alone_and_the_train_extra_brings_the_rest(wheel):
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(z.read(name).decode())
    requires = metadata.get_all("Requires-Dist")
    plain = [r for r in requires if "extra ==" not in r]
    assert plain == ["torch>=2.6"]
    train = {r.split(";")[0].split(">")[0].strip() for r in requires if 'extra == "train"' in r}
    assert {
        "lightning",
        "hydra-core",
        "tensorboard",
        "torchmetrics",
        "matplotlib",
        "torchvision",
        "scipy",
    } <= train


def test_the_wheel_and_the_sdist_carry_the_configs(wheel, tmp_path):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    shipped = {
        f"losslab/conf/{p.relative_to(REPO / 'conf')}" for p in (REPO / "conf").rglob("*.yaml")
    }
    assert shipped <= names
    assert {"losslab/conf/train.yaml", "losslab/conf/loss/sse_logits.yaml"} <= shipped
    assert "hydra_plugins/losslab_sweeper/__init__.py" in names
    run(PYTHON, "-m", "build", "--sdist", "--no-isolation", "-o", tmp_path, REPO)
    (sdist,) = tmp_path.glob("losslab-*.tar.gz")
    with tarfile.open(sdist) as t:
        members = {m.split("/", 1)[1] for m in t.getnames() if "/" in m}
    assert "src/losslab/conf/train.yaml" in members
    assert "src/losslab/conf/experiment/book_ch4.yaml" in members


@pytest.mark.slow
def test_the_installed_wheel_trains_and_reports_from_an_empty_folder(wheel, tmp_path, data_dir):
    site = tmp_path / "site"
    run(PYTHON, "-m", "pip", "install", "-q", "--no-deps", "--target", site, wheel)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "LOSSLAB_DATA_DIR": str(data_dir)}
    where = run(
        PYTHON,
        "-c",
        "import losslab.train as t; print(t.__file__); print(t.CONF_DIR)",
        cwd=work,
        env=env,
    )
    assert where.stdout.splitlines() == [
        str(site / "losslab" / "train.py"),
        str(site / "losslab" / "conf"),
    ]
    train = run(
        site / "bin" / "losslab-train",
        "data.train_size=500",
        "trainer.max_epochs=1",
        cwd=work,
        env=env,
    )
    (run_dir,) = (work / "logs" / "train" / "runs").iterdir()  # under this folder's logs/
    assert f"logs   logs/train/runs/{run_dir.name}" in train.stdout
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    report = run(site / "bin" / "losslab-report", run_dir, cwd=work, env=env)
    assert "| best | run " in report.stdout
    assert (run_dir / "summary.csv").is_file()


@pytest.mark.parametrize(
    ("script", "missing"),
    [("train_main", "lightning"), ("report_main", "tensorboard"), ("study_main", "scipy")],
)
def test_a_console_script_without_the_training_extras_says_what_to_install(
    script, missing, tmp_path
):
    code = (
        f"import sys; sys.modules[{missing!r}] = None; from losslab.cli import {script}; {script}()"
    )
    result = subprocess.run(
        [PYTHON, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert 'pip install "losslab[train]"' in result.stderr
    assert repr(missing) in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_losses_import_with_torch_alone():
    code = (
        "import sys\n"
        "for m in ('lightning', 'hydra', 'omegaconf', 'tensorboard', 'torchmetrics', 'matplotlib', 'torchvision'):\n"
        "    sys.modules[m] = None\n"
        "import torch, losslab\n"
        "print(losslab.CEELoss()(torch.zeros(2, 10), torch.tensor([1, 2])).item())\n"
    )
    result = run(PYTHON, "-c", code)
    assert float(result.stdout) == pytest.approx(2.302585, rel=1e-6)  # log 10
