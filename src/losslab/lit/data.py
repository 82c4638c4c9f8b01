"""MNIST as a LightningDataModule: the real torchvision files, batches at memory speed.

Each split lives in memory as one uint8 tensor ``(n, 1, 28, 28)`` plus int64 labels (47 MB for
the 60k training images), on the device the model trains on. A batch is one indexing of those
tensors, raw pixels: the model scales them (:class:`~losslab.lit.classifier.Classifier` owns its
input preprocessing, so its checkpoints classify raw images). There is no per-sample
``__getitem__``, no PIL, no collate: the canonical torchvision pipeline spends most of a CPU
epoch on those (see ``scripts/bench.py``).

Label noise (``label_noise=p``): each training label flips with probability ``p`` to one of the
other ``C - 1`` classes, uniformly (:func:`corrupt_labels`). The flips are drawn once for the
whole official training split from ``noise_seed`` alone, before the validation split and the
subset are carved, so every run seed and every loss sees the same wrong labels on the same
images, and the validation split is as noisy as the training split. The subset
(``train_size``) is balanced over the true classes, so a seed trains on the same images at every
noise rate. The test split is never corrupted. Training and the ``acc/train`` curve use the noisy labels; the evaluation of the
training split also measures the true labels (``acc/train_true``) and memorization.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from losslab.lit import mnist
from losslab.lit.batches import BatchIndexSampler, TensorLoader
from losslab.lit.mnist import MNIST_FILES
from losslab.names import NUM_CLASSES, SPLITS, TRAIN_IMAGES

__all__ = ["MNIST_FILES", "BatchIndexSampler", "MNISTDataModule", "corrupt_labels"]


def corrupt_labels(labels: Tensor, p: float, seed: int, num_classes: int = NUM_CLASSES) -> Tensor:
    """Symmetric label noise: each label flips with probability ``p`` to one of the other
    ``num_classes - 1`` classes, chosen uniformly; a flip never gives the label itself back.
    Drawn from a generator seeded with ``seed`` alone, two draws per label whatever ``p``: so
    the labels flipped at a lower ``p`` are flipped, to the same wrong class, at a higher one.

    Example:
        >>> y = torch.arange(10).repeat(1000)
        >>> noisy = corrupt_labels(y, 0.2, seed=0)
        >>> round((noisy != y).float().mean().item(), 2)
        0.2
    """
    g = torch.Generator().manual_seed(seed)
    flip = torch.rand(len(labels), generator=g) < p
    shift = torch.randint(1, num_classes, (len(labels),), generator=g)
    return torch.where(flip, (labels + shift) % num_classes, labels)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(name: str, value: Any) -> None:
    if not _is_int(value) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class MNISTDataModule(L.LightningDataModule):
    """MNIST's official 60k/10k split, read by ``torchvision.datasets.MNIST``, batched in memory.

    Args:
        data_dir: folder that holds ``MNIST/raw/`` (torchvision's layout). The configs default to
            ``$LOSSLAB_DATA_DIR``, else ``data`` in the working folder.
        batch_size: training batch size (global: split across DDP ranks).
        val_size: images held out of the training split (seeded) for ``loss/val``; 0 = none.
        train_size: train on a seeded, class-balanced subset of this many images (None = all;
            at least one per class; the classes that get one image more are drawn at random).
        label_noise: probability ``p`` in [0, 1) that a training (and validation) label flips to
            another class, uniformly (:func:`corrupt_labels`); the test split stays clean.
        noise_seed: seeds the label flips, independently of ``seed``.
        download: let torchvision download missing files (needs internet).
        seed: seeds the val hold-out, the subset and each epoch's shuffle.
        eval_batch_size: batch size of the per-epoch evaluation passes (no gradients).
        drop_last: drop the last incomplete training batch.
        replacement: draw each training batch with replacement (the book's ch. 4 sampling).
        eval_splits: the splits each epoch's evaluation measures (``val_dataloader``): all of
            ``train``, ``val`` (when held out) and ``test`` by default; a study's tuning stage
            measures ``val`` alone, what it chooses on.

    Loaders: ``train_dataloader`` (shuffled; chunks of K batches for a trainer that runs
    ``steps_per_call=K`` optimizer steps per training step, :mod:`losslab.lit.trainer`),
    ``val_dataloader`` (a dict ``{"train", ["val"], "test"}`` of fixed-order evaluation loaders,
    those of ``eval_splits``: the module measures its epoch curves on all of them),
    ``test_dataloader`` and ``predict_dataloader`` (official 10k), and ``eval_dataloader(split)``.
    Batches hold raw uint8 images. With label noise the ``train`` evaluation loader yields
    ``(images, labels, true labels)``.

    Its arguments are saved in checkpoints (``MNISTDataModule.load_from_checkpoint(path)``).

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
        label_noise: float = 0.0,
        noise_seed: int = 0,
        download: bool = True,
        seed: int = 0,
        eval_batch_size: int = 2000,
        drop_last: bool = False,
        replacement: bool = False,
        eval_splits: Sequence[str] = SPLITS,
    ) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            _positive_int(name, value)
        if not _is_int(val_size) or not 0 <= val_size < TRAIN_IMAGES:
            raise ValueError(
                f"val_size must be an integer in [0, {TRAIN_IMAGES}), got {val_size!r}"
            )
        if train_size is not None:
            if not _is_int(train_size) or train_size < NUM_CLASSES:
                raise ValueError(
                    f"train_size must be an integer of at least {NUM_CLASSES} (the subset is "
                    f"class-balanced: one image per class or more), got {train_size!r}"
                )
            if train_size > TRAIN_IMAGES - val_size:
                raise ValueError(
                    f"train_size must be at most the {TRAIN_IMAGES - val_size} training images "
                    f"left ({TRAIN_IMAGES} minus val_size={val_size}), got {train_size}"
                )
        if not isinstance(label_noise, int | float) or not 0 <= label_noise < 1:
            raise ValueError(
                f"label_noise must be a probability in [0, 1) (the chance that a training label "
                f"flips), got {label_noise!r}"
            )
        if not _is_int(noise_seed) or not 0 <= noise_seed < 2**63:
            raise ValueError(f"noise_seed must be an integer in [0, 2**63), got {noise_seed!r}")
        if isinstance(eval_splits, str) or not eval_splits or not set(eval_splits) <= set(SPLITS):
            raise ValueError(
                f"eval_splits must be a non-empty list of splits among {list(SPLITS)}, got "
                f"{eval_splits!r}"
            )
        if "val" in eval_splits and list(eval_splits) != list(SPLITS) and not val_size:
            raise ValueError(f"eval_splits={list(eval_splits)} measures val, but val_size is 0")
        self.data_dir = Path(data_dir)
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.train_size = val_size, train_size
        self.label_noise, self.noise_seed = float(label_noise), noise_seed
        self.download, self.seed = download, seed
        self.drop_last, self.replacement = drop_last, replacement
        self.eval_splits = tuple(s for s in SPLITS if s in eval_splits)  # in the usual order
        self.splits: dict[str, tuple[Tensor, Tensor]] = {}
        # the true labels of the noisy splits (train, val), when label_noise > 0
        self.true_labels: dict[str, Tensor] = {}
        self.save_hyperparameters(
            {
                "data_dir": str(data_dir),
                "batch_size": batch_size,
                "val_size": val_size,
                "train_size": train_size,
                "label_noise": self.label_noise,
                "noise_seed": noise_seed,
                "download": download,
                "seed": seed,
                "eval_batch_size": eval_batch_size,
                "drop_last": drop_last,
                "replacement": replacement,
                "eval_splits": list(self.eval_splits),
            },
            logger=False,
        )

    # -- files --------------------------------------------------------------------------------

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "MNIST" / "raw"

    def check_files(self) -> list[str]:
        """Validate the files that are there (headers, sizes, label values); return the names of
        those that are missing (an error if they cannot be downloaded)."""
        return mnist.check_files(self.raw_dir, self.download)

    def prepare_data(self) -> None:
        """Check the files; download them if allowed and needed (rank 0 only, once per node)."""
        missing = self.check_files()
        if missing:  # only a download needs torchvision here; setup() reads the files
            mnist.download(self.data_dir, missing)
            self.check_files()  # what was downloaded

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        missing = self.check_files()
        device = self.trainer.strategy.root_device if self.trainer is not None else "cpu"
        (images, true_labels) = mnist.read(self.data_dir, True, missing, self.download)
        test = mnist.read(self.data_dir, False, missing, self.download)
        n = len(true_labels)
        if self.val_size >= n or (self.train_size or 0) > n - self.val_size:
            raise ValueError(
                f"data.train_size={self.train_size} and data.val_size={self.val_size} do not fit "
                f"the {n} training images in {self.raw_dir}: need val_size < {n} and "
                f"train_size <= {n} - val_size"
            )
        labels = true_labels
        if self.label_noise > 0:
            labels = corrupt_labels(true_labels, self.label_noise, self.noise_seed)
        pool = torch.arange(n)
        g = torch.Generator().manual_seed(self.seed)
        if self.val_size:
            perm = torch.randperm(n, generator=g)
            val_idx, pool = perm[: self.val_size].sort().values, perm[self.val_size :].sort().values
            self.splits["val"] = (images.index_select(0, val_idx), labels[val_idx])
            self.true_labels["val"] = true_labels[val_idx]
        if self.train_size is not None:  # balanced over the true classes: whatever the noise
            pool = _balanced_subset(pool, true_labels[pool], self.train_size, g)  # same images
        # index_select: ~5x faster than images[pool] on uint8 images; all of them: no copy at all
        train = images if len(pool) == n else images.index_select(0, pool)
        self.splits["train"] = (train, labels[pool])
        self.true_labels["train"] = true_labels[pool]
        self.splits["test"] = test
        self.splits = {k: (x.to(device), y.to(device)) for k, (x, y) in self.splits.items()}
        if self.label_noise > 0:
            self.true_labels = {k: y.to(device) for k, y in self.true_labels.items()}
        else:
            self.true_labels = {}

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
        if not train:  # the training split's evaluation also measures the true labels
            true = self.true_labels.get(split) if split == "train" else None
            return TensorLoader(images, labels, sampler, true_labels=true)
        steps = getattr(self.trainer, "steps_per_call", 1)  # losslab.lit.trainer.Trainer's K
        return TensorLoader(images, labels, sampler, steps, self._consumed)

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
        return {s: self.eval_dataloader(s) for s in self.eval_splits if s in self.splits}

    def test_dataloader(self) -> TensorLoader:
        return self.eval_dataloader("test")

    def predict_dataloader(self) -> TensorLoader:
        """The test split's ``(images, labels)``: ``trainer.predict`` gives their class
        probabilities."""
        return self.eval_dataloader("test")

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        # The splits already live on the training device (setup): nothing to copy per step.
        items = batch if isinstance(batch, list) else [batch]
        if all(isinstance(p, tuple) and all(t.device == device for t in p) for p in items):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)


def _balanced_subset(pool: Tensor, labels: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """``size`` indices of ``pool``, as equal per class as possible, chosen at random (seeded):
    ``size // C`` a class, and one more for ``size % C`` classes drawn at random (none drawn,
    and so the same draws as before, when ``size`` divides)."""
    per_class = [size // NUM_CLASSES] * NUM_CLASSES
    if size % NUM_CLASSES:
        for c in torch.randperm(NUM_CLASSES, generator=generator)[: size % NUM_CLASSES].tolist():
            per_class[c] += 1
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
