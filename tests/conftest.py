"""Shared fixtures: the real MNIST folder, a tiny hand-built MNIST, one CPU thread."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# The test machines have 2 shared cores: keep torch to one thread for the whole session.
torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parent.parent
MNIST_RAW_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _real_data_dir() -> Path:
    """``$LOSSLAB_DATA_DIR`` (relative paths taken from the repo root), else ``../shared/data``."""
    value = os.environ.get("LOSSLAB_DATA_DIR") or "../shared/data"
    return (REPO_ROOT / value).resolve()  # an absolute value replaces REPO_ROOT


REAL_DATA_DIR = _real_data_dir()
REAL_DATA_PRESENT = all((REAL_DATA_DIR / "MNIST" / "raw" / n).is_file() for n in MNIST_RAW_NAMES)
if REAL_DATA_PRESENT:  # subprocesses started by tests (losslab-train, ...) inherit it
    os.environ["LOSSLAB_DATA_DIR"] = str(REAL_DATA_DIR)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Absolute path of the folder that holds the real ``MNIST/raw/`` (read-only!)."""
    if not REAL_DATA_PRESENT:
        pytest.skip(f"real MNIST not found in {REAL_DATA_DIR / 'MNIST' / 'raw'}")
    return REAL_DATA_DIR


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    """Write a uint8 array as an IDX file: magic, one big-endian int32 per dim, then the bytes."""
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(magic.to_bytes(4, "big") + dims + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(tmp_path: Path) -> dict:
    """A 50-train / 20-test MNIST in torchvision's layout ``tmp_path/MNIST/raw/``.

    Labels are ``i % 10`` (train, 5 per class) and ``(3 * i) % 10`` (test); pixels are seeded
    random bytes. Returns ``{"root", "raw", "train_images", "train_labels", "test_images",
    "test_labels"}`` (numpy arrays: what the files hold).
    """
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1234)
    data = {
        "root": tmp_path,
        "raw": raw,
        "train_images": rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(50) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "test_labels": ((3 * np.arange(20)) % 10).astype(np.uint8),
    }
    for split, prefix in (("train", "train"), ("test", "t10k")):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", data[f"{split}_images"], 2051)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", data[f"{split}_labels"], 2049)
    return data


# -- real training runs, made once per session (losslab-train in a subprocess) ----------------


@pytest.fixture(scope="session")
def losslab_train(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """``losslab_train(*overrides)``: run the ``losslab-train`` console script of this venv in a
    fresh folder (stray outputs land there) with one thread; fail the test with its output
    if it exits non-zero. Returns the CompletedProcess."""
    script = Path(sys.executable).parent / "losslab-train"

    def run(*overrides: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(script), *overrides],
            cwd=tmp_path_factory.mktemp("train_cwd"),
            env={**os.environ, "LOSSLAB_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            pytest.fail(
                f"losslab-train {' '.join(overrides)} failed:\n{result.stdout}\n{result.stderr}"
            )
        return result

    return run


@pytest.fixture(scope="session")
def sweep_2x2(losslab_train, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 2 x 2 sweep (loss=sse,cee x data.batch_size=50,500; 1000 samples, 1 epoch, a
    validation split of 500) with the default Hydra callbacks, so the sweep folder also holds
    the end-of-sweep report. Job folders: ``loss=sse,data.batch_size=50`` and siblings.
    Read-only for tests: write reports elsewhere (``report(sweep, out_dir=tmp_path)``)."""
    sweep = tmp_path_factory.mktemp("sweep_2x2") / "sweep"
    losslab_train(
        "-m",
        "loss=sse,cee",
        "data.batch_size=50,500",
        "data.train_size=1000",
        "data.val_size=500",
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={sweep}",
    )
    return sweep


def job_folders(sweep: Path) -> list[str]:
    """The job folders of a sweep folder, sorted."""
    return sorted(
        p.name for p in sweep.iterdir() if (p / ".hydra").is_dir() or (p / "error.txt").is_file()
    )


def tree_digest(folder: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``folder`` (empty if it is missing)."""
    import hashlib

    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def write_run(
    folder: Path,
    curves: dict[str, list[float]],
    hparams: dict | None = None,
    overrides: list[str] | None = None,
) -> Path:
    """A run folder as losslab-train leaves it, built by hand: ``curves`` is ``tag -> values at
    epochs 0, 1, ...`` (``time/epoch`` from epoch 1), ``hparams`` the HPARAMS row (None: the run
    did not finish), ``overrides`` its ``.hydra/overrides.yaml``."""
    import yaml
    from torch.utils.tensorboard import SummaryWriter

    from losslab import tb

    folder.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(str(folder))
    writer.add_custom_scalars(tb.OVERFITTING_LAYOUT)
    for tag, values in curves.items():
        first = 1 if tag == "time/epoch" else 0
        for epoch, value in enumerate(values, start=first):
            writer.add_scalar(tag, value, epoch)
    if hparams is not None:
        for summary in tb.session_summaries(hparams, hparams.get("status", "ok")):
            writer.file_writer.add_summary(summary)
    writer.close()
    if overrides is not None:
        (folder / ".hydra").mkdir(exist_ok=True)
        (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    return folder
