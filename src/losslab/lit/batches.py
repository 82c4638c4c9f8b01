"""Batches cut from in-memory tensors: a seeded, resumable batch sampler and the loader that
indexes the tensors with it (what :class:`losslab.lit.data.MNISTDataModule` hands to Lightning)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

__all__ = ["BatchIndexSampler", "TensorLoader"]


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
    """An iterable of ``(images, labels)`` batches cut from in-memory tensors by a sampler
    (``(images, labels, true labels)`` when ``true_labels`` is given: label noise).

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
        true_labels: Tensor | None = None,
    ) -> None:
        self.tensors = (images, labels) if true_labels is None else (images, labels, true_labels)
        self.sampler = sampler
        self.steps_per_call = steps_per_call
        self.consumed = consumed or (lambda: 0)
        self._skip: tuple[int, int] | None = None  # (epoch, items) to skip, from a checkpoint

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.steps_per_call)

    def _batches(self) -> Iterator[tuple[Tensor, ...]]:
        for idx in self.sampler:
            if idx.numel():  # index_select: ~5x faster than images[idx] for a uint8 4-D tensor
                yield tuple(t.index_select(0, idx) for t in self.tensors)

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
