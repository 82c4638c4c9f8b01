"""losslab.lit.batches: the sampler's orders (pinned per seed and epoch: resumed runs and reruns
rely on them), its defaults and length, and the loader's chunks and resume state."""

from __future__ import annotations

import itertools

import pytest
import torch

from losslab.lit.batches import BatchIndexSampler, TensorLoader


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# the seed each (seed, epoch) shuffles with: (seed * 0x9E3779B1 + epoch) mod 2**32, by hand
@pytest.mark.parametrize(
    ("seed", "epoch", "generator_seed"),
    [
        (0, 0, 0),
        (0, 1, 1),
        (1, 0, 2654435761),
        (1, 2, 2654435763),
        (2, 0, 1013904226),  # 5308871522 - 2**32
        (10**6, 3, 4238151235),  # 2654435761000003 mod 2**32
    ],
)
def test_each_epoch_is_a_permutation_drawn_from_its_seed_and_epoch(seed, epoch, generator_seed):
    sampler = BatchIndexSampler(23, 5, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    order = torch.cat(list(sampler))
    assert torch.equal(order, torch.randperm(23, generator=seeded(generator_seed)))
    with_replacement = BatchIndexSampler(23, 5, replacement=True, seed=seed)
    with_replacement.set_epoch(epoch)
    draws = torch.cat(list(with_replacement))
    assert torch.equal(draws, torch.randint(23, (25,), generator=seeded(generator_seed)))


def test_draws_with_replacement_ignore_torchs_global_generator():
    sampler = BatchIndexSampler(100, 10, replacement=True, seed=7)
    torch.manual_seed(1)
    first = torch.cat(list(sampler))
    torch.manual_seed(2)
    assert torch.equal(torch.cat(list(sampler)), first)


def test_the_defaults_are_in_order_seed_0_and_rank_0():
    assert [b.tolist() for b in BatchIndexSampler(10, 4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    shuffled = torch.cat(list(BatchIndexSampler(10, 4, shuffle=True)))
    assert torch.equal(shuffled, torch.cat(list(BatchIndexSampler(10, 4, shuffle=True, seed=0))))
    assert [b.tolist() for b in BatchIndexSampler(10, 4, world_size=2)] == [[0, 2], [4, 6], [8]]


@pytest.mark.parametrize(
    ("n", "batch_size", "drop_last", "length"),
    [(9, 4, False, 3), (9, 4, True, 2), (8, 4, False, 2), (10, 4, False, 3), (3, 4, True, 0)],
)
def test_the_length_counts_a_partial_last_batch_unless_dropped(n, batch_size, drop_last, length):
    sampler = BatchIndexSampler(n, batch_size, drop_last=drop_last)
    assert len(sampler) == length
    assert len(list(sampler)) == length


def test_a_loader_that_was_never_told_what_was_consumed_reports_nothing_consumed():
    images, labels = torch.arange(6.0)[:, None], torch.arange(6)
    loader = TensorLoader(images, labels, BatchIndexSampler(6, 2))
    assert loader.state_dict() == {"epoch": 0, "consumed": 0}


@pytest.mark.parametrize(("n", "chunks"), [(10, [2, 2, 1]), (8, [2, 2]), (2, [1])])
def test_steps_per_call_yields_chunks_of_consecutive_batches_and_ends(n, chunks):
    images, labels = torch.arange(float(n))[:, None], torch.arange(n)
    loader = TensorLoader(images, labels, BatchIndexSampler(n, 2), steps_per_call=2)
    items = list(itertools.islice(loader, len(chunks) + 1))  # never more than there are
    assert [len(chunk) for chunk in items] == chunks
    assert len(loader) == len(chunks)
    assert torch.cat([y for chunk in items for _, y in chunk]).tolist() == list(range(n))
