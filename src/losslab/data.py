"""MNIST as a LightningDataModule: the real torchvision files, batches at memory speed.

Each split lives in memory as one uint8 tensor ``(n, 1, 28, 28)`` plus int64 labels (47 MB for
the 60k training images), on the device the model trains on. A batch is one indexing of those
tensors; scaling to [0, 1] and normalising happen per batch, after transfer, on that device.
There is no per-sample ``__getitem__``, no PIL, no collate: the canonical torchvision pipeline
spends most of a CPU epoch on those (see ``scripts/bench.py``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torchvision.datasets import MNIST

__all__ = ["MNIST_FILES", "MNIST_MEAN", "MNIST_STD", "BatchIndexSampler", "MNISTDataModule"]

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # of the 60k training pixels scaled to [0, 1]
NUM_CLASSES = 10
# name -> (IDX magic number, shape of one item). The item count is read from the header, so a
# smaller file in the same format (a test fixture) loads too; the official files hold 60000/10000.
MNIST_FILES = {
    "train-images-idx3-ubyte": (2051, (28, 28)),
    "train-labels-idx1-ubyte": (2049, ()),
    "t10k-images-idx3-ubyte": (2051, (28, 28)),
    "t10k-labels-idx1-ubyte": (2049, ()),
}
SPLITS = ("train", "val", "test")


class BatchIndexSampler:
    """Yields one index tensor per batch over ``num_samples`` items.

    Shuffled per epoch by a generator seeded with ``(seed, epoch)``, so an epoch's order does not
    depend on what ran before (reproducible, resumable: Lightning calls ``set_epoch``). With
    ``replacement=True`` each batch is drawn independently with replacement, as the book's
    ``np.random.choice(train_size, batch_size)``. Under DDP (``world_size > 1``) each global batch
    is split across ranks (``batch[rank::world_size]``), so the ranks together see exactly the
    batches a single process would.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool = False,
        replacement: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        self.num_samples, self.batch_size = num_samples, batch_size
        self.shuffle, self.drop_last, self.replacement = shuffle, drop_last, replacement
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.device = torch.device(device)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + int(rest > 0 and not self.drop_last)

    def _order(self) -> Tensor:
        if not (self.shuffle or self.replacement):
            return torch.arange(self.num_samples, device=self.device)
        # torch's CPU generator keeps only the low 32 bits of a seed (so `seed << 32` would be
        # lost): mix seed and epoch into those bits
        g = torch.Generator().manual_seed((self.seed * 0x9E3779B1 + self.epoch) % 2**32)
        if self.replacement:
            order = torch.randint(self.num_samples, (len(self) * self.batch_size,), generator=g)
        else:
            order = torch.randperm(self.num_samples, generator=g)
        return order.to(self.device)  # once per epoch: batches below are views, no copy per step

    def __iter__(self) -> Iterator[Tensor]:
        order = self._order()
        for k in range(len(self)):
            batch = order[k * self.batch_size : (k + 1) * self.batch_size]
            yield batch[self.rank :: self.world_size] if self.world_size > 1 else batch


class TensorLoader:
    """An iterable of ``(images, labels)`` batches cut from in-memory tensors by a sampler.

    With ``steps_per_call=K > 1`` it yields lists of K consecutive batches (the last list of
    an epoch may be shorter), one item per training step of a module that runs K optimizer
    steps per call. It has the ``sampler`` / ``batch_sampler`` attributes Lightning looks for
    on a DataLoader, so ``set_epoch`` is called each epoch.

    Resumable mid-epoch: ``state_dict()`` holds the epoch and how many items training has
    consumed (``consumed()``, which the data module reads off the trainer: Lightning fetches
    one item ahead, so the count of items yielded would be one too many); after
    ``load_state_dict()`` the next pass over that epoch skips them, and the epoch's order, a
    function of (seed, epoch), goes on exactly where it stopped.
    """

    batch_sampler = None

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        sampler: BatchIndexSampler,
        steps_per_call: int = 1,
        consumed: Callable[[], int] | None = None,
    ) -> None:
        self.images, self.labels, self.sampler = images, labels, sampler
        self.steps_per_call = steps_per_call
        self.consumed = consumed or (lambda: 0)
        self._skip: tuple[int, int] | None = None  # (epoch, items) to skip, from a checkpoint

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.steps_per_call)

    def _batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        for idx in self.sampler:
            if idx.numel():  # index_select: ~5x faster than images[idx] for a uint8 4-D tensor
                yield self.images.index_select(0, idx), self.labels.index_select(0, idx)

    def __iter__(self) -> Iterator[Any]:
        if self.steps_per_call == 1:
            items: Iterator[Any] = self._batches()
        else:
            batches = self._batches()
            items = iter(lambda: list(itertools.islice(batches, self.steps_per_call)), [])
        if self._skip is not None and self._skip[0] == self.sampler.epoch:
            items = itertools.islice(items, self._skip[1], None)
        self._skip = None
        yield from items

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "consumed": self.consumed()}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._skip = (state["epoch"], state["consumed"])


def _check_idx_file(path: Path, magic: int, item_shape: tuple[int, ...]) -> int:
    """Fail with a clear message when an IDX file is truncated or not what it should be.

    Returns the number of items the header announces.
    """
    size = path.stat().st_size
    header_size = 4 + 4 * (1 + len(item_shape))
    with path.open("rb") as f:
        header = f.read(header_size)
    fields = [int.from_bytes(header[i : i + 4], "big") for i in range(0, len(header) - 3, 4)]
    if len(header) < header_size or fields[0] != magic or tuple(fields[2:]) != item_shape:
        raise RuntimeError(
            f"MNIST file {path} is corrupted: its header reads {fields}, expected magic {magic}, "
            f"an item count and item shape {item_shape}. Replace it with the original file."
        )
    count = fields[1]
    expected = header_size + count * int(torch.Size(item_shape).numel())
    if size != expected:
        raise RuntimeError(
            f"MNIST file {path} is truncated or corrupted: {size:,} bytes, expected {expected:,} "
            f"for the {count:,} items its header announces. Replace it with the original file."
        )
    return count


class MNISTDataModule(L.LightningDataModule):
    """MNIST's official 60k/10k split, read by ``torchvision.datasets.MNIST``, batched in memory.

    Args:
        data_dir: folder that holds ``MNIST/raw/`` (torchvision's layout). The configs default to
            ``$LOSSLAB_DATA_DIR``, else ``data`` in the working folder.
        batch_size: training batch size (global: split across DDP ranks).
        val_size: images held out of the training split (seeded) for ``loss/val``; 0 = none.
        train_size: train on a seeded, class-balanced subset of this many images (None = all).
        download: let torchvision download missing files (needs internet).
        normalize: scale to [0, 1] then standardise with MNIST's mean/std; else only scale.
        seed: seeds the val hold-out, the subset and each epoch's shuffle.
        eval_batch_size: batch size of the per-epoch evaluation passes (no gradients).
        drop_last: drop the last incomplete training batch.
        replacement: draw each training batch with replacement (the book's ch. 4 sampling).
        steps_per_call: the train loader yields lists of this many consecutive batches, for a
            module that runs several optimizer steps per training step (1 = single batches).

    Loaders: ``train_dataloader`` (shuffled), ``val_dataloader`` (a dict ``{"train", ["val"],
    "test"}`` of fixed-order evaluation loaders: the module measures its epoch curves on all of
    them), ``test_dataloader`` (official 10k), and ``eval_dataloader(split)``.

    Example:
        >>> dm = MNISTDataModule("data", batch_size=100)  # doctest: +SKIP
        >>> dm.prepare_data(); dm.setup()  # doctest: +SKIP
        >>> x, y = next(iter(dm.train_dataloader()))  # uint8 (100, 1, 28, 28), int64 (100,)  # doctest: +SKIP
    """

    def __init__(
        self,
        data_dir: str | os.PathLike = "data",
        batch_size: int = 100,
        val_size: int = 0,
        train_size: int | None = None,
        download: bool = True,
        normalize: bool = True,
        seed: int = 0,
        eval_batch_size: int = 2000,
        drop_last: bool = False,
        replacement: bool = False,
        steps_per_call: int = 1,
    ) -> None:
        super().__init__()
        for key, value in (
            ("batch_size", batch_size),
            ("eval_batch_size", eval_batch_size),
            ("steps_per_call", steps_per_call),
        ):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"data.{key} must be a positive integer, got {value!r}")
        if not isinstance(val_size, int) or not 0 <= val_size < 60000:
            raise ValueError(f"data.val_size must be an integer in [0, 60000), got {val_size!r}")
        if train_size is not None and (not isinstance(train_size, int) or train_size <= 0):
            raise ValueError(
                f"data.train_size must be a positive integer or null, got {train_size!r}"
            )
        if train_size is not None and train_size > 60000 - val_size:
            raise ValueError(
                f"data.train_size={train_size} exceeds the {60000 - val_size} training images "
                f"available (60000 minus data.val_size={val_size})"
            )
        self.data_dir = Path(data_dir)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.train_size = val_size, train_size
        self.download, self.normalize, self.seed = download, normalize, seed
        self.drop_last, self.replacement = drop_last, replacement
        self.steps_per_call = steps_per_call
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}

    # -- files --------------------------------------------------------------------------------

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "MNIST" / "raw"

    def _check_files(self) -> list[str]:
        """Validate the files that are there; return the names of those that are missing."""
        missing, counts = [], {}
        for name, (magic, item_shape) in MNIST_FILES.items():
            path = self.raw_dir / name
            if path.exists():
                counts[name] = _check_idx_file(path, magic, item_shape)
            else:
                missing.append(name)
        for split in ("train", "t10k"):
            images, labels = f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"
            if images in counts and labels in counts and counts[images] != counts[labels]:
                raise RuntimeError(
                    f"MNIST files in {self.raw_dir} disagree: {images} holds {counts[images]:,} "
                    f"images but {labels} holds {counts[labels]:,} labels"
                )
        if missing and not self.download:
            raise self._missing_error(f"missing {', '.join(missing)}; data.download=false")
        return missing

    def _missing_error(self, reason: str) -> FileNotFoundError:
        return FileNotFoundError(
            f"MNIST not found in {self.raw_dir} ({reason}). losslab expects the four uncompressed "
            f"IDX files {', '.join(MNIST_FILES)} there. Point LOSSLAB_DATA_DIR (or data.data_dir) "
            f"at the folder that holds MNIST/raw/, or set data.download=true on a machine with "
            f"internet."
        )

    def _load(self, train: bool, missing: list[str]) -> MNIST:
        made = [p for p in (self.raw_dir, self.raw_dir.parent, self.data_dir) if not p.exists()]
        try:
            return MNIST(root=str(self.data_dir), train=train, download=self.download)
        except (RuntimeError, OSError) as err:  # torchvision's "Error downloading ..." and friends
            for folder in made:  # the empty folders a failed download made go again
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            if missing:
                raise self._missing_error(f"download failed: {_flat(err)}") from err
            raise

    def prepare_data(self) -> None:
        """Download if allowed and needed (rank 0 only, once per node)."""
        missing = self._check_files()
        if missing:  # only a download needs torchvision here; setup() reads the files
            for train in (True, False):
                self._load(train, missing)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        missing = self._check_files()
        device = self.trainer.strategy.root_device if self.trainer is not None else "cpu"
        train, test = self._load(True, missing), self._load(False, missing)
        images, labels = train.data.unsqueeze(1), train.targets
        n = len(labels)
        if self.val_size >= n or (self.train_size or 0) > n - self.val_size:
            raise ValueError(
                f"data.train_size={self.train_size} and data.val_size={self.val_size} do not fit "
                f"the {n} training images in {self.raw_dir}: need val_size < {n} and "
                f"train_size <= {n} - val_size"
            )
        pool = torch.arange(n)
        g = torch.Generator().manual_seed(self.seed)
        if self.val_size:
            perm = torch.randperm(len(labels), generator=g)
            val_idx, pool = perm[: self.val_size].sort().values, perm[self.val_size :].sort().values
            self.splits["val"] = (images[val_idx], labels[val_idx])
        if self.train_size is not None:
            pool = _balanced_subset(pool, labels[pool], self.train_size, g)
        self.splits["train"] = (images[pool], labels[pool])
        self.splits["test"] = (test.data.unsqueeze(1), test.targets)
        self.splits = {k: (x.to(device), y.to(device)) for k, (x, y) in self.splits.items()}

    # -- loaders ------------------------------------------------------------------------------

    def _rank_world(self) -> tuple[int, int]:
        if self.trainer is None:
            return 0, 1
        return self.trainer.global_rank, self.trainer.world_size

    def _loader(self, split: str, batch_size: int, train: bool) -> TensorLoader:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split not in self.splits:
            if split == "val":
                raise ValueError("split 'val' is empty: set data.val_size > 0 to hold one out")
            raise RuntimeError("call setup() before asking for a dataloader")
        images, labels = self.splits[split]
        rank, world = self._rank_world()
        if train and batch_size % world:
            raise ValueError(
                f"data.batch_size={batch_size} must be divisible by the number of DDP processes "
                f"({world}): each process takes an equal share of every global batch"
            )
        n = len(labels)
        # Training: every rank must take a step, so a last batch smaller than the number of
        # ranks is dropped. Evaluation: a rank left without samples just skips that batch.
        drop_last = train and (self.drop_last or 0 < n % batch_size < world)
        sampler = BatchIndexSampler(
            n,
            batch_size if train else batch_size * world,
            shuffle=train,
            drop_last=drop_last,
            replacement=self.replacement and train,
            seed=self.seed,
            rank=rank,
            world_size=world,
            device=labels.device,
        )
        if not train:
            return TensorLoader(images, labels, sampler)
        return TensorLoader(images, labels, sampler, self.steps_per_call, self._consumed)

    def _consumed(self) -> int:
        """Training items of the current epoch the trainer has processed (for resuming)."""
        if self.trainer is None:
            return 0
        return self.trainer.fit_loop.epoch_loop.batch_progress.current.processed

    def train_dataloader(self) -> TensorLoader:
        return self._loader("train", self.batch_size, train=True)

    def eval_dataloader(self, split: str) -> TensorLoader:
        """Fixed-order loader over a whole split (``"train"``, ``"val"`` or ``"test"``)."""
        return self._loader(split, self.eval_batch_size, train=False)

    def val_dataloader(self) -> dict[str, TensorLoader]:
        return {split: self.eval_dataloader(split) for split in SPLITS if split in self.splits}

    def test_dataloader(self) -> TensorLoader:
        return self.eval_dataloader("test")

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        # The splits already live on the training device (setup): nothing to copy per step.
        pairs = batch if isinstance(batch, list) else [batch]
        if all(isinstance(p, tuple) and all(t.device == device for t in p) for p in pairs):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 -> float32 in [0, 1] (and standardised), on the device the batch is on; a
        chunk (list of batches) batch by batch."""
        if isinstance(batch, list):
            return [self._scale(x, y) for x, y in batch]
        return self._scale(*batch)

    def _scale(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        # one new float32 buffer, then in place: out-of-place ops on large batches cost page
        # faults (torch.add(shift, x, alpha=scale) is 3x slower at 10k images)
        x = x.float()
        if self.normalize:
            return x.mul_(1.0 / (255.0 * MNIST_STD)).sub_(MNIST_MEAN / MNIST_STD), y
        return x.mul_(1.0 / 255.0), y


def _flat(err: BaseException) -> str:
    return " ".join(str(err).split())


def _balanced_subset(pool: Tensor, labels: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """``size`` indices of ``pool``, as equal per class as possible, chosen at random (seeded)."""
    per_class = [size // NUM_CLASSES + (c < size % NUM_CLASSES) for c in range(NUM_CLASSES)]
    order = torch.randperm(len(pool), generator=generator)
    chosen = []
    for c, k in enumerate(per_class):
        members = order[labels[order] == c]
        if len(members) < k:
            raise ValueError(
                f"data.train_size={size} needs {k} images of class {c}, only {len(members)} available"
            )
        chosen.append(members[:k])
    return pool[torch.cat(chosen).sort().values]
