"""MNIST's four IDX files: their layout, their checks (header, size, label values), the download,
and the reading, once per process (torch and torchvision only; the data module builds on it)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torchvision.datasets import MNIST

from losslab.names import NUM_CLASSES

__all__ = ["MNIST_FILES", "check_files", "check_idx_file", "download", "read"]

# name -> (IDX magic number, shape of one item). The item count is read from the header, so a
# smaller file in the same format (a test fixture) loads too; the official files hold 60000/10000.
MNIST_FILES = {
    "train-images-idx3-ubyte": (2051, (28, 28)),
    "train-labels-idx1-ubyte": (2049, ()),
    "t10k-images-idx3-ubyte": (2051, (28, 28)),
    "t10k-labels-idx1-ubyte": (2049, ()),
}
# the splits this process has read: (files, sizes, times) -> (images, labels)
_READ: dict[tuple, tuple[Tensor, Tensor]] = {}


def _flat(err: BaseException) -> str:
    return " ".join(str(err).split())


def check_idx_file(path: Path, magic: int, item_shape: tuple[int, ...]) -> int:
    """Fail with a clear message when an IDX file is truncated or not what it should be; in a
    label file, every label must be a class index in ``[0, NUM_CLASSES)``.

    Returns the number of items the header announces.
    """
    size = path.stat().st_size
    header_size = 4 + 4 * (1 + len(item_shape))
    with path.open("rb") as f:
        header = f.read(header_size)
        fields = [int.from_bytes(header[i : i + 4], "big") for i in range(0, len(header) - 3, 4)]
        if len(header) < header_size or fields[0] != magic or tuple(fields[2:]) != item_shape:
            raise RuntimeError(
                f"MNIST file {path} is corrupted: its header reads {fields}, expected magic "
                f"{magic}, an item count and item shape {item_shape}. Replace it with the "
                f"original file."
            )
        count = fields[1]
        expected = header_size + count * int(torch.Size(item_shape).numel())
        if size != expected:
            raise RuntimeError(
                f"MNIST file {path} is truncated or corrupted: {size:,} bytes, expected "
                f"{expected:,} for the {count:,} items its header announces. Replace it with "
                f"the original file."
            )
        labels = f.read() if not item_shape else b""  # a label file: 60 KB, read whole
        if labels and max(labels) >= NUM_CLASSES:
            bad = next(i for i, label in enumerate(labels) if label >= NUM_CLASSES)
            raise RuntimeError(
                f"MNIST file {path} is corrupted: the label at index {bad} is {labels[bad]}, but "
                f"labels must be class indices 0 to {NUM_CLASSES - 1}. Replace it with the "
                f"original file."
            )
    return count


def missing_error(raw_dir: Path, reason: str) -> FileNotFoundError:
    """The files are not there (the command that reads them adds how to point at them)."""
    return FileNotFoundError(
        f"MNIST not found in {raw_dir} ({reason}). losslab expects the four uncompressed "
        f"IDX files {', '.join(MNIST_FILES)} there."
    )


def check_files(raw_dir: Path, download: bool) -> list[str]:
    """Validate the files of ``raw_dir`` that are there (headers, sizes, label values); return
    the names of those that are missing (an error if ``download`` may not fetch them)."""
    missing, counts = [], {}
    for name, (magic, item_shape) in MNIST_FILES.items():
        path = raw_dir / name
        if path.exists():
            counts[name] = check_idx_file(path, magic, item_shape)
        else:
            missing.append(name)
    for split in ("train", "t10k"):
        images, labels = f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"
        if images in counts and labels in counts and counts[images] != counts[labels]:
            raise RuntimeError(
                f"MNIST files in {raw_dir} disagree: {images} holds {counts[images]:,} "
                f"images but {labels} holds {counts[labels]:,} labels"
            )
    if missing and not download:
        raise missing_error(raw_dir, f"missing {', '.join(missing)}; no download allowed")
    return missing


def _load(data_dir: Path, train: bool, missing: list[str], download: bool) -> MNIST:
    raw_dir = data_dir / "MNIST" / "raw"
    made = [p for p in (raw_dir, raw_dir.parent, data_dir) if not p.exists()]
    try:
        return MNIST(root=str(data_dir), train=train, download=download)
    except (RuntimeError, OSError) as err:  # torchvision's "Error downloading ..." and friends
        for folder in made:  # the empty folders a failed download made go again
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        if missing:
            raise missing_error(raw_dir, f"download failed: {_flat(err)}") from err
        raise


def download(data_dir: Path, missing: list[str]) -> None:
    """torchvision's download of both splits into ``data_dir/MNIST/raw`` (needs internet)."""
    for train in (True, False):
        _load(data_dir, train, missing, download=True)


def read(data_dir: Path, train: bool, missing: list[str], download: bool) -> tuple[Tensor, Tensor]:
    """A split's images ``(n, 1, 28, 28)`` uint8 and labels int64, read once per process: the
    jobs of a sweep worker and the tests of a session share them (the files' size and time are
    part of the key, so a changed file is read again). Never modify them in place."""
    prefix = "train" if train else "t10k"
    raw_dir = data_dir / "MNIST" / "raw"
    files = [
        raw_dir / f"{prefix}-{kind}-idx{n}-ubyte" for kind, n in (("images", 3), ("labels", 1))
    ]
    if not all(f.exists() for f in files):
        _load(data_dir, train, missing, download)  # downloads them, or says why it cannot
    key = tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if key not in _READ:
        dataset = _load(data_dir, train, missing, download)
        _READ[key] = (dataset.data.unsqueeze(1), dataset.targets)
    return _READ[key]
