"""losslab as a built package: the wheel carries the configs and trains from any folder, its
metadata asks for torch alone unless the ``train`` extra is wanted, and the console scripts
say in one line what to install when the extras are missing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

pytestmark = pytest.mark.process


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
    assert metadata["License-Expression"] == "MIT"  # SPDX, matching LICENSE
    with zipfile.ZipFile(wheel) as z:
        license_file = next(n for n in z.namelist() if n.endswith("licenses/LICENSE"))
        assert z.read(license_file) == (REPO / "LICENSE").read_bytes()
    requires = metadata.get_all("Requires-Dist")
    plain = [r for r in requires if "extra ==" not in r]
    assert plain == ["torch>=2.6"]
    train = {re.split(r"[<>=;\s]", r, maxsplit=1)[0] for r in requires if 'extra == "train"' in r}
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


@pytest.fixture(scope="module")
def bare_python(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment holding losslab's wheel and nothing else: no torch, no
    training extras (what ``pip install --no-deps losslab`` leaves)."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    run(PYTHON, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    run(
        PYTHON, "-m", "pip", "install", "-q", "--no-deps", "--target", purelib.stdout.strip(), wheel
    )
    return python


@pytest.mark.slow
@pytest.mark.parametrize("script", ["train_main", "report_main", "study_main", "eval_main"])
def test_a_console_script_without_the_training_extras_names_the_first_missing_one(
    bare_python, script, tmp_path
):
    code = f"from losslab.cli import {script}; {script}()"
    result = subprocess.run(
        [bare_python, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    prog = {"train_main": "losslab-train", "report_main": "losslab-report",
            "study_main": "losslab-study", "eval_main": "losslab-eval"}[script]  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (  # the first distribution of the train extra, and nothing before
        f"{prog}: error: {prog} needs the training extras ('torchvision' is missing): "
        f'pip install "losslab[train]"\n'
    )
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
