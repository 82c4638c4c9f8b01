"""MNISTDataModule and BatchIndexSampler against known MNIST facts and hand-built IDX files.

The facts (sizes, first labels, class counts, pixel mean) come from /work/shared/data/README.md;
image contents are checked against an independent numpy reader of the raw IDX files.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch

from losslab.lit.batches import BatchIndexSampler
from losslab.lit.classifier import scale_pixels
from losslab.lit.data import BatchIndexSampler as ReexportedSampler
from losslab.lit.data import MNISTDataModule, corrupt_labels

FIRST_TRAIN_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
FIRST_TEST_LABELS = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
RAW_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


# -- helpers and fixtures ---------------------------------------------------------------------


def make_dm(data_dir: Path, **kwargs) -> MNISTDataModule:
    dm = MNISTDataModule(data_dir, download=False, **kwargs)
    dm.prepare_data()
    dm.setup()
    return dm


def collect(loader) -> tuple[torch.Tensor, torch.Tensor]:
    """All (uint8 images, labels) a loader yields, concatenated in order."""
    xs, ys = zip(*loader, strict=True)
    return torch.cat(xs), torch.cat(ys)


@pytest.fixture(scope="module")
def raw(data_dir: Path) -> dict[str, np.ndarray]:
    """The real files read with numpy, independently of torchvision and losslab."""
    folder = data_dir / "MNIST" / "raw"

    def read(name: str, offset: int) -> np.ndarray:
        return np.fromfile(folder / name, dtype=np.uint8, offset=offset)

    return {
        "train_images": read("train-images-idx3-ubyte", 16).reshape(-1, 28, 28),
        "train_labels": read("train-labels-idx1-ubyte", 8).astype(np.int64),
        "test_images": read("t10k-images-idx3-ubyte", 16).reshape(-1, 28, 28),
        "test_labels": read("t10k-labels-idx1-ubyte", 8).astype(np.int64),
    }


@pytest.fixture(scope="module")
def raw_train_index(raw) -> dict[bytes, int]:
    """Image bytes -> position in the raw training file (MNIST's 60k images are all distinct)."""
    index = {img.tobytes(): i for i, img in enumerate(raw["train_images"])}
    assert len(index) == 60000
    return index


def train_positions(images: torch.Tensor, raw_train_index: dict[bytes, int]) -> np.ndarray:
    """Where each image of a split sits in the raw training file (KeyError if nowhere)."""
    return np.array([raw_train_index[img.tobytes()] for img in images.squeeze(1).numpy()])


@pytest.fixture(scope="module")
def real_dm(data_dir: Path) -> MNISTDataModule:
    """Default settings on the real files; tests must not modify it."""
    return make_dm(data_dir, batch_size=100, eval_batch_size=10_000)


# -- real data: known facts ---------------------------------------------------------------------


def test_real_splits_hold_60000_train_and_10000_test_images(real_dm):
    x_train, y_train = collect(real_dm.eval_dataloader("train"))
    x_test, y_test = collect(real_dm.test_dataloader())
    assert x_train.shape == (60000, 1, 28, 28)
    assert y_train.shape == (60000,)
    assert x_test.shape == (10000, 1, 28, 28)
    assert y_test.shape == (10000,)


def test_real_first_ten_labels_match_the_published_ones(real_dm):
    _, y_train = collect(real_dm.eval_dataloader("train"))
    _, y_test = collect(real_dm.eval_dataloader("test"))
    assert y_train[:10].tolist() == FIRST_TRAIN_LABELS
    assert y_test[:10].tolist() == FIRST_TEST_LABELS


def test_real_label_counts_per_class_match_the_published_ones(real_dm):
    _, y_train = collect(real_dm.eval_dataloader("train"))
    _, y_test = collect(real_dm.eval_dataloader("test"))
    assert torch.bincount(y_train, minlength=10).tolist() == TRAIN_COUNTS
    assert torch.bincount(y_test, minlength=10).tolist() == TEST_COUNTS


def test_real_eval_loaders_yield_the_raw_file_bytes_in_file_order(real_dm, raw):
    for split in ("train", "test"):
        x, y = collect(real_dm.eval_dataloader(split))
        assert x.dtype == torch.uint8
        assert np.array_equal(x.squeeze(1).numpy(), raw[f"{split}_images"])
        assert np.array_equal(y.numpy(), raw[f"{split}_labels"])


def test_normalized_train_pixels_have_mean_0_and_std_1(real_dm):
    """The batches hold raw pixels; the model's scaling (scale_pixels, what Classifier applies)
    standardises the training split."""
    total, total_sq, n = 0.0, 0.0, 0
    for batch in real_dm.eval_dataloader("train"):
        x = scale_pixels(batch[0], normalize=True)
        assert x.dtype == torch.float32
        x = x.double()
        total, total_sq, n = (
            total + x.sum().item(),
            total_sq + x.square().sum().item(),
            n + x.numel(),
        )
    assert n == 60000 * 28 * 28
    mean = total / n
    std = math.sqrt(total_sq / n - mean**2)
    assert abs(mean) < 1e-3
    assert abs(std - 1.0) < 1e-3


def test_unnormalized_pixels_lie_in_0_1_with_mean_0_1307(real_dm):
    total, n = 0.0, 0
    lo, hi = math.inf, -math.inf
    for batch in real_dm.eval_dataloader("train"):
        x = scale_pixels(batch[0], normalize=False)
        assert x.dtype == torch.float32
        lo, hi = min(lo, x.min().item()), max(hi, x.max().item())
        total, n = total + x.double().sum().item(), n + x.numel()
    assert lo == 0.0  # MNIST has both black (0) and white (255) pixels
    assert hi == 1.0
    assert abs(total / n - 0.1307) < 1e-4


# -- training batches ---------------------------------------------------------------------------


def test_train_batches_are_raw_uint8_images_and_int64_labels(real_dm):
    """Raw pixels: the model scales them (Classifier owns its preprocessing), and the data
    module has no hook that changes a batch after transfer."""
    x, y = next(iter(real_dm.train_dataloader()))
    assert x.shape == (100, 1, 28, 28)
    assert x.dtype == torch.uint8
    assert y.shape == (100,)
    assert y.dtype == torch.int64
    assert not hasattr(real_dm, "scale")
    assert MNISTDataModule.on_after_batch_transfer is L.LightningDataModule.on_after_batch_transfer


@pytest.mark.parametrize(("k", "chunks"), [(1, None), (3, [3, 3, 1]), (10, [7])])
def test_the_train_loader_yields_chunks_of_the_trainers_steps_per_call(tiny_mnist, k, chunks):
    """A trainer with ``steps_per_call=K`` (losslab.lit.trainer.Trainer) gets lists of K
    consecutive batches, the same batches in the same order; no trainer, or a plain Lightning
    one: single batches."""
    dm = make_dm(tiny_mnist["root"], batch_size=8)
    single = list(dm.train_dataloader())
    dm.trainer = SimpleNamespace(global_rank=0, world_size=1, steps_per_call=k)
    items = list(dm.train_dataloader())
    dm.trainer = None
    if chunks is None:
        assert all(isinstance(item, tuple) for item in items)
        flat = items
    else:
        assert [len(chunk) for chunk in items] == chunks
        assert len(dm.train_dataloader()) == 7  # no trainer: 7 single batches
        flat = [batch for chunk in items for batch in chunk]
    assert len(flat) == len(single) == 7
    for (x, y), (sx, sy) in zip(flat, single, strict=True):
        assert torch.equal(x, sx)
        assert torch.equal(y, sy)


def test_the_predict_loader_is_the_test_split_in_file_order(tiny_mnist):
    dm = make_dm(tiny_mnist["root"], eval_batch_size=16)
    x, y = collect(dm.predict_dataloader())
    assert x.dtype == torch.uint8
    assert np.array_equal(x.squeeze(1).numpy(), tiny_mnist["test_images"])
    assert y.tolist() == tiny_mnist["test_labels"].tolist()


def test_last_partial_batch_is_kept_by_default(data_dir):
    loader = make_dm(data_dir, batch_size=7000).train_dataloader()
    sizes = [len(y) for _, y in loader]
    assert sizes == [7000] * 8 + [4000]
    assert len(loader) == 9


def test_drop_last_drops_the_partial_batch(data_dir):
    loader = make_dm(data_dir, batch_size=7000, drop_last=True).train_dataloader()
    sizes = [len(y) for _, y in loader]
    assert sizes == [7000] * 8
    assert len(loader) == 8


def test_one_epoch_covers_every_training_index_exactly_once(real_dm, raw):
    loader = real_dm.train_dataloader()
    indices = list(loader.sampler)
    batches = list(loader)
    assert len(indices) == len(batches) == 600
    ref = torch.from_numpy(raw["train_images"]).unsqueeze(1)
    for idx, (x, y) in zip(indices, batches, strict=True):
        assert torch.equal(x, ref[idx])
        assert torch.equal(y, torch.from_numpy(raw["train_labels"])[idx])
    order = torch.cat(indices)
    assert not torch.equal(order, torch.arange(60000))  # shuffled
    assert torch.equal(order.sort().values, torch.arange(60000))


def test_same_seed_gives_identical_batches(data_dir):
    a = make_dm(data_dir, batch_size=10_000, seed=3).train_dataloader()
    b = make_dm(data_dir, batch_size=10_000, seed=3).train_dataloader()
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb)
        assert torch.equal(ya, yb)


def test_different_seeds_give_different_orders(real_dm, data_dir):
    seed0 = real_dm.train_dataloader()  # seed 0
    seed1 = make_dm(data_dir, batch_size=100, seed=1).train_dataloader()
    x0, _ = next(iter(seed0))
    x1, _ = next(iter(seed1))
    assert not torch.equal(x0, x1)
    assert not torch.equal(torch.cat(list(seed0.sampler)), torch.cat(list(seed1.sampler)))


def test_set_epoch_reshuffles_reproducibly(real_dm):
    loader = real_dm.train_dataloader()
    epoch0 = torch.cat(list(loader.sampler))
    loader.sampler.set_epoch(1)
    epoch1 = torch.cat(list(loader.sampler))
    assert not torch.equal(epoch0, epoch1)
    assert torch.equal(epoch1.sort().values, torch.arange(60000))
    resumed = real_dm.train_dataloader()  # a fresh loader, as after a restart
    resumed.sampler.set_epoch(1)
    assert torch.equal(torch.cat(list(resumed.sampler)), epoch1)
    loader.sampler.set_epoch(0)
    assert torch.equal(torch.cat(list(loader.sampler)), epoch0)


def test_the_sampler_lives_in_batches_and_data_re_exports_it():
    assert ReexportedSampler is BatchIndexSampler


def test_every_seed_and_epoch_gets_its_own_shuffle():
    orders = set()
    for seed in (0, 1, 2, 12345):
        for epoch in (0, 1, 2):
            sampler = BatchIndexSampler(1000, 100, shuffle=True, seed=seed)
            sampler.set_epoch(epoch)
            order = torch.cat(list(sampler))
            assert sorted(order.tolist()) == list(range(1000))
            orders.add(tuple(order.tolist()))
    assert len(orders) == 12


# -- subsets and hold-outs ----------------------------------------------------------------------


def test_train_size_300_takes_30_distinct_images_per_class(data_dir, raw_train_index, raw):
    x, y = collect(make_dm(data_dir, train_size=300).eval_dataloader("train"))
    assert len(y) == 300
    assert torch.bincount(y, minlength=10).tolist() == [30] * 10
    pos = train_positions(x, raw_train_index)
    assert len(set(pos.tolist())) == 300
    assert np.array_equal(raw["train_labels"][pos], y.numpy())  # image and label stay paired


def test_val_size_5000_holds_out_images_disjoint_from_train(data_dir, raw_train_index, raw):
    dm = make_dm(data_dir, val_size=5000)
    x_train, y_train = collect(dm.eval_dataloader("train"))
    x_val, y_val = collect(dm.eval_dataloader("val"))
    assert len(y_train) == 55000
    assert len(y_val) == 5000
    train_pos = train_positions(x_train, raw_train_index)
    val_pos = train_positions(x_val, raw_train_index)
    assert not set(train_pos.tolist()) & set(val_pos.tolist())
    assert sorted(train_pos.tolist() + val_pos.tolist()) == list(range(60000))
    assert np.array_equal(raw["train_labels"][val_pos], y_val.numpy())
    assert sum(len(y) for _, y in dm.train_dataloader()) == 55000


def test_train_size_and_val_size_together_are_disjoint(data_dir, raw_train_index):
    dm = make_dm(data_dir, train_size=300, val_size=5000)
    x_train, y_train = collect(dm.eval_dataloader("train"))
    x_val, _ = collect(dm.eval_dataloader("val"))
    assert torch.bincount(y_train, minlength=10).tolist() == [30] * 10
    assert len(x_val) == 5000
    train_pos = set(train_positions(x_train, raw_train_index).tolist())
    val_pos = set(train_positions(x_val, raw_train_index).tolist())
    assert len(train_pos) == 300
    assert len(val_pos) == 5000
    assert not train_pos & val_pos


def test_test_split_is_the_official_10k_whatever_the_subsets(data_dir, raw):
    dm = make_dm(data_dir, train_size=300, val_size=5000, seed=5)
    x, y = collect(dm.test_dataloader())
    assert np.array_equal(x.squeeze(1).numpy(), raw["test_images"])
    assert np.array_equal(y.numpy(), raw["test_labels"])


# -- sampling with replacement ------------------------------------------------------------------


def test_replacement_draws_full_batches_ceil_n_over_b_times(data_dir):
    loader = make_dm(data_dir, train_size=1000, batch_size=300, replacement=True).train_dataloader()
    sizes = [len(y) for _, y in loader]
    assert sizes == [300] * 4  # ceil(1000 / 300) independent draws of a full batch
    assert len(loader) == 4


def test_replacement_indices_stay_in_range_and_may_repeat():
    sampler = BatchIndexSampler(1000, 300, replacement=True, seed=0)
    drawn = torch.cat(list(sampler))
    assert len(drawn) == 1200
    assert int(drawn.min()) >= 0
    assert int(drawn.max()) < 1000
    assert len(drawn.unique()) < len(drawn)  # 1200 draws from 1000: repeats are certain


# -- DDP sharding, without processes ------------------------------------------------------------


@pytest.mark.parametrize("drop_last", [False, True])
def test_ddp_ranks_split_every_global_batch_into_disjoint_halves(drop_last):
    common = dict(num_samples=1003, batch_size=100, shuffle=True, seed=7, drop_last=drop_last)
    single = BatchIndexSampler(**common)
    ranks = [BatchIndexSampler(**common, rank=r, world_size=2) for r in (0, 1)]
    for s in (single, *ranks):
        s.set_epoch(3)
    steps = list(zip(single, *ranks, strict=True))
    assert len(steps) == (10 if drop_last else 11)
    for full, r0, r1 in steps:
        assert abs(len(r0) - len(r1)) <= 1
        assert not set(r0.tolist()) & set(r1.tolist())
        assert torch.cat([r0, r1]).sort().values.tolist() == full.sort().values.tolist()


def test_ddp_eval_loader_covers_each_test_index_once(data_dir):
    dm = make_dm(data_dir, eval_batch_size=3000)
    indices, labels = [], []
    for rank in (0, 1):
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=2)  # what Lightning sets
        loader = dm.eval_dataloader("test")
        indices += list(loader.sampler)
        labels += [y for _, y in loader]
    dm.trainer = None
    assert sorted(torch.cat(indices).tolist()) == list(range(10000))
    assert torch.bincount(torch.cat(labels), minlength=10).tolist() == TEST_COUNTS


def test_ddp_train_batch_size_must_divide_among_ranks(tiny_mnist):
    dm = make_dm(tiny_mnist["root"], batch_size=7)
    dm.trainer = SimpleNamespace(global_rank=0, world_size=2)
    with pytest.raises(ValueError, match=r"data\.batch_size=7"):
        dm.train_dataloader()


# -- configuration errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"batch_size": -1}, "batch_size must be a positive integer, got -1"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer, got 2.5"),
        ({"batch_size": True}, "batch_size must be a positive integer, got True"),
        ({"eval_batch_size": 0}, "eval_batch_size must be a positive integer, got 0"),
        ({"val_size": -1}, "val_size must be an integer in [0, 60000), got -1"),
        ({"val_size": 60000}, "val_size must be an integer in [0, 60000), got 60000"),
        ({"val_size": True}, "val_size must be an integer in [0, 60000), got True"),
        (
            {"train_size": 0},
            "train_size must be an integer of at least 10 (the subset is class-balanced: one "
            "image per class or more), got 0",
        ),
        ({"train_size": 9}, "train_size must be an integer of at least 10 (the subset is "),
        ({"train_size": 25.0}, "train_size must be an integer of at least 10 (the subset is "),
        ({"train_size": True}, "train_size must be an integer of at least 10 (the subset is "),
        (
            {"train_size": 60001},
            "train_size must be at most the 60000 training images left (60000 minus val_size=0), "
            "got 60001",
        ),
        (
            {"train_size": 59000, "val_size": 5000},
            "train_size must be at most the 55000 training images left (60000 minus "
            "val_size=5000), got 59000",
        ),
        ({"label_noise": 1.0}, "label_noise must be a probability in [0, 1)"),
        ({"label_noise": -0.1}, "label_noise must be a probability in [0, 1)"),
        ({"label_noise": math.nan}, "label_noise must be a probability in [0, 1)"),
        ({"noise_seed": -1}, "noise_seed must be an integer in [0, 2**63), got -1"),
        ({"noise_seed": 1.5}, "noise_seed must be an integer in [0, 2**63), got 1.5"),
        (
            {"noise_seed": 2**63},
            "noise_seed must be an integer in [0, 2**63), got 9223372036854775808",
        ),
        ({"eval_splits": []}, "eval_splits must be a non-empty list of splits among ['train', "),
        ({"eval_splits": "val"}, "eval_splits must be a non-empty list of splits among ['train', "),
        ({"eval_splits": ["dev"]}, "eval_splits must be a non-empty list of splits among ['tr"),
        ({"eval_splits": ["val"]}, "eval_splits=['val'] measures val, but val_size is 0"),
    ],
)
def test_constructor_errors_name_the_argument_first(arguments, message, tmp_path):
    """The library names its own argument (as torch does); losslab-train prefixes the config
    group (``data.batch_size must be ...``)."""
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        MNISTDataModule(tmp_path, **arguments)


def test_the_edges_of_the_allowed_values_are_accepted(tmp_path):
    """Each range's edge: the largest validation split, the smallest subset (one image per
    class), every training image left after the validation split, the largest noise seed; the
    constructor takes them as given."""
    dm = MNISTDataModule(tmp_path, val_size=59999, noise_seed=2**63 - 1)
    assert (dm.val_size, dm.train_size, dm.noise_seed) == (59999, None, 2**63 - 1)
    dm = MNISTDataModule(tmp_path, val_size=59990, train_size=10)
    assert (dm.val_size, dm.train_size) == (59990, 10)
    assert MNISTDataModule(tmp_path, val_size=5000, train_size=55000).train_size == 55000


def test_the_defaults_are_the_data_configs_and_every_argument_is_a_hyperparameter(tmp_path):
    """Built in plain torch code, MNISTDataModule() has the defaults of losslab's data schema
    (nothing more: the input scaling is the model's, the steps per call the trainer's), and
    saves each argument it was given as a hyperparameter (what a checkpoint's
    datamodule_hyper_parameters hold)."""
    import dataclasses
    import inspect

    from losslab.run.config import DataConfig

    splits = ("train", "val", "test")

    defaults = {
        name: p.default for name, p in inspect.signature(MNISTDataModule).parameters.items()
    }
    schema = {f.name: f.default for f in dataclasses.fields(DataConfig) if f.name != "_target_"}
    schema["eval_splits"] = splits
    assert defaults == schema
    built = MNISTDataModule()  # the defaults the constructor itself applies (what mutmut mutates)
    assert dict(built.hparams) == {**schema, "eval_splits": list(splits)}
    given = {
        "data_dir": str(tmp_path),
        "batch_size": 7,
        "val_size": 11,
        "train_size": 13,
        "label_noise": 0.25,
        "noise_seed": 17,
        "download": False,
        "seed": 19,
        "eval_batch_size": 23,
        "drop_last": True,
        "replacement": True,
        "eval_splits": ["test", "val"],
    }
    dm = MNISTDataModule(**given)
    assert dict(dm.hparams) == {**given, "eval_splits": ["val", "test"]}
    assert dm.eval_splits == ("val", "test")


@pytest.mark.parametrize(
    ("train_size", "val_size", "key"), [(None, 50, "val_size"), (46, 5, "train_size")]
)
def test_sizes_beyond_a_small_dataset_are_rejected_at_setup(tiny_mnist, train_size, val_size, key):
    dm = MNISTDataModule(
        tiny_mnist["root"], download=False, train_size=train_size, val_size=val_size
    )
    with pytest.raises(ValueError, match=rf"data\.{key}={'50' if key == 'val_size' else '46'}"):
        dm.setup()


def test_unknown_split_is_rejected_with_the_allowed_ones(real_dm):
    with pytest.raises(ValueError, match="split") as info:
        real_dm.eval_dataloader("foo")
    for word in ("'foo'", "'train'", "'val'", "'test'"):
        assert word in str(info.value)


def test_eval_splits_choose_the_evaluation_loaders_in_the_usual_order(tiny_mnist):
    root = tiny_mnist["root"]
    dm = MNISTDataModule(root, download=False, val_size=10, eval_splits=["test", "val"])
    dm.setup()
    assert list(dm.val_dataloader()) == ["val", "test"]
    assert dm.hparams["eval_splits"] == ["val", "test"]  # saved in checkpoints
    every = MNISTDataModule(root, download=False)  # the default: all, val only when held out
    every.setup()
    assert list(every.val_dataloader()) == ["train", "test"]


def test_val_split_without_val_size_is_rejected(real_dm):
    with pytest.raises(ValueError, match=r"data\.val_size"):
        real_dm.eval_dataloader("val")


# -- missing and damaged files ------------------------------------------------------------------


@pytest.mark.parametrize("step", ["prepare_data", "setup"])
def test_missing_files_without_download_name_the_folder_and_the_files(tmp_path, step):
    """The library names what is missing and where; the command adds how to point at the files
    (losslab-train: LOSSLAB_DATA_DIR / data.data_dir, tests/run/test_build.py; losslab-eval:
    --data-dir)."""
    dm = MNISTDataModule(tmp_path, download=False)
    with pytest.raises(FileNotFoundError) as info:
        getattr(dm, step)()
    message = str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    for name in RAW_NAMES:
        assert name in message
    assert "no download allowed" in message


@pytest.mark.parametrize("name", RAW_NAMES)
def test_truncated_file_is_reported_with_its_path_and_sizes(tiny_mnist, name):
    path = tiny_mnist["raw"] / name
    data = path.read_bytes()
    path.write_bytes(data[:-5])  # past the header in every file
    dm = MNISTDataModule(tiny_mnist["root"], download=False)
    with pytest.raises(RuntimeError, match="truncated") as info:
        dm.prepare_data()
    message = str(info.value)
    assert str(path) in message
    assert f"{len(data) - 5:,} bytes" in message
    assert f"expected {len(data):,}" in message


def test_file_cut_inside_its_header_is_reported_with_its_path(tiny_mnist):
    path = tiny_mnist["raw"] / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:6])
    with pytest.raises(RuntimeError, match="corrupted") as info:
        MNISTDataModule(tiny_mnist["root"], download=False).setup()
    assert str(path) in str(info.value)


def test_wrong_magic_number_is_reported_with_its_path(tiny_mnist):
    path = tiny_mnist["raw"] / "t10k-images-idx3-ubyte"
    data = path.read_bytes()
    path.write_bytes((2049).to_bytes(4, "big") + data[4:])  # a labels file's magic
    with pytest.raises(RuntimeError, match="magic 2051") as info:
        MNISTDataModule(tiny_mnist["root"], download=False).prepare_data()
    assert str(path) in str(info.value)


def test_images_and_labels_of_different_counts_are_rejected(tiny_mnist):
    path = tiny_mnist["raw"] / "train-labels-idx1-ubyte"
    path.write_bytes((2049).to_bytes(4, "big") + (49).to_bytes(4, "big") + bytes(49))
    with pytest.raises(RuntimeError, match="49 labels") as info:
        MNISTDataModule(tiny_mnist["root"], download=False).prepare_data()
    assert "train-images-idx3-ubyte" in str(info.value)


@pytest.mark.parametrize("step", ["check_files", "prepare_data", "setup"])
@pytest.mark.parametrize("name", ["train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"])
def test_a_label_outside_the_ten_classes_is_refused_naming_the_file_and_the_label(
    tiny_mnist, name, step
):
    """A right-sized label file with a label 200: torchvision would load it, and the loss would
    fail later (an IndexError on the CPU, a device-side assert on a GPU), far from the cause."""
    path = tiny_mnist["raw"] / name
    data = bytearray(path.read_bytes())
    data[8 + 7] = 200  # the label at index 7, after the 8-byte header
    path.write_bytes(bytes(data))
    dm = MNISTDataModule(tiny_mnist["root"], download=False)
    with pytest.raises(RuntimeError) as info:
        getattr(dm, step)()
    message = str(info.value)
    assert "\n" not in message  # one message, on one line
    assert str(path) in message
    assert "the label at index 7 is 200" in message
    assert "class indices 0 to 9" in message
    assert not dm.splits


def test_labels_0_to_9_pass_the_label_check(tiny_mnist):
    path = tiny_mnist["raw"] / "train-labels-idx1-ubyte"
    data = bytearray(path.read_bytes())
    data[8:18] = bytes(range(10))[::-1]  # 9 ... 0: both ends of the allowed range
    path.write_bytes(bytes(data))
    assert MNISTDataModule(tiny_mnist["root"], download=False).check_files() == []


def test_check_files_lists_the_missing_files_it_may_download(tiny_mnist):
    (tiny_mnist["raw"] / "t10k-images-idx3-ubyte").unlink()
    assert MNISTDataModule(tiny_mnist["root"], download=True).check_files() == [
        "t10k-images-idx3-ubyte"
    ]


# -- label noise --------------------------------------------------------------------------------


def test_corrupt_labels_flips_about_p_to_another_class_and_the_flips_nest():
    y = torch.arange(10).repeat(3000)
    low, high = corrupt_labels(y, 0.1, seed=4), corrupt_labels(y, 0.3, seed=4)
    for p, noisy in ((0.1, low), (0.3, high)):
        flipped = noisy != y
        assert abs(flipped.float().mean().item() - p) < 4 * math.sqrt(p * (1 - p) / len(y))
        # each of the 9 other classes about equally often (a flip never gives the label back)
        shifts = torch.bincount((noisy[flipped] - y[flipped]) % 10, minlength=10).tolist()
        assert shifts[0] == 0
        assert all(abs(n / sum(shifts) - 1 / 9) < 0.03 for n in shifts[1:])
    # the labels flipped at p = 0.1 are flipped at p = 0.3, to the same wrong class
    assert torch.equal(high[low != y], low[low != y])
    assert torch.equal(corrupt_labels(y, 0.0, seed=4), y)
    assert not torch.equal(corrupt_labels(y, 0.3, seed=5), high)  # the noise seed matters


def noisy_dm(root: Path, **kwargs) -> MNISTDataModule:
    return make_dm(root, batch_size=8, eval_batch_size=16, label_noise=0.5, **kwargs)


def file_positions(images: torch.Tensor, tiny: dict) -> list[int]:
    where = {img.tobytes(): i for i, img in enumerate(tiny["train_images"])}
    return [where[img.tobytes()] for img in images.squeeze(1).numpy()]


def test_label_noise_corrupts_train_and_val_and_the_train_evaluation_yields_the_true_labels(
    tiny_mnist,
):
    dm = noisy_dm(tiny_mnist["root"], val_size=10)
    true_of = tiny_mnist["train_labels"]
    batches = list(dm.eval_dataloader("train"))
    assert {len(b) for b in batches} == {3}  # (images, noisy labels, true labels)
    x, y, true_y = (torch.cat(parts) for parts in zip(*batches, strict=True))
    assert true_y.tolist() == true_of[file_positions(x, tiny_mnist)].tolist()
    assert 0 < (y != true_y).sum() < len(y)
    # training batches carry the noisy labels only
    train = {
        file_positions(bx, tiny_mnist)[i]: int(by[i])
        for bx, by in dm.train_dataloader()
        for i in range(len(by))
    }
    assert [train[p] for p in file_positions(x, tiny_mnist)] == y.tolist()
    # the validation split is as noisy, without its true labels; the test split is clean
    vx, vy = collect(dm.eval_dataloader("val"))
    assert (vy != torch.from_numpy(true_of[file_positions(vx, tiny_mnist)])).any()
    _, ty = collect(dm.test_dataloader())
    assert ty.tolist() == tiny_mnist["test_labels"].tolist()
    # the batch reaches the module as it is: raw images, both label tensors untouched
    moved = dm.transfer_batch_to_device(batches[0], torch.device("cpu"), 0)
    assert len(moved) == 3
    assert moved[0].dtype == torch.uint8
    assert all(a is b for a, b in zip(moved, batches[0], strict=True))


def test_the_flips_depend_on_the_noise_seed_alone_and_the_subset_on_the_seed_alone(tiny_mnist):
    def labels_by_image(dm: MNISTDataModule) -> dict[int, int]:
        x, y, _ = (torch.cat(p) for p in zip(*dm.eval_dataloader("train"), strict=True))
        return dict(zip(file_positions(x, tiny_mnist), y.tolist(), strict=True))

    a = labels_by_image(noisy_dm(tiny_mnist["root"], seed=0))
    b = labels_by_image(noisy_dm(tiny_mnist["root"], seed=1))
    assert a == b  # same wrong labels on the same images, whatever the run's seed
    c = labels_by_image(noisy_dm(tiny_mnist["root"], seed=0, noise_seed=1))
    assert a != c
    # a subset holds the same images at every noise rate (balanced over the true classes)
    clean = make_dm(tiny_mnist["root"], train_size=20)
    noisy = noisy_dm(tiny_mnist["root"], train_size=20)
    clean_x, clean_y = collect(clean.eval_dataloader("train"))
    noisy_x = torch.cat([b[0] for b in noisy.eval_dataloader("train")])
    assert torch.equal(clean_x, noisy_x)
    assert torch.bincount(clean_y, minlength=10).tolist() == [2] * 10


def test_without_label_noise_batches_hold_no_true_labels(tiny_mnist):
    dm = make_dm(tiny_mnist["root"], batch_size=8, eval_batch_size=16)
    assert dm.true_labels == {}
    assert {len(b) for b in dm.eval_dataloader("train")} == {2}


# -- a tiny hand-built dataset through torchvision -----------------------------------------------


def test_tiny_idx_files_round_trip_through_torchvision(tiny_mnist):
    dm = make_dm(tiny_mnist["root"], batch_size=8, eval_batch_size=16)
    for split in ("train", "test"):
        x, y = collect(dm.eval_dataloader(split))
        assert x.shape == (len(tiny_mnist[f"{split}_labels"]), 1, 28, 28)
        assert np.array_equal(x.squeeze(1).numpy(), tiny_mnist[f"{split}_images"])
        assert y.dtype == torch.int64
        assert y.tolist() == tiny_mnist[f"{split}_labels"].tolist()
        scaled = scale_pixels(x, normalize=False)
        expected = torch.from_numpy(tiny_mnist[f"{split}_images"]).unsqueeze(1).double() / 255
        torch.testing.assert_close(scaled.double(), expected, rtol=0, atol=1e-7)


def test_tiny_train_loader_yields_every_image_once_with_its_label(tiny_mnist):
    dm = make_dm(tiny_mnist["root"], batch_size=8)
    x, y = collect(dm.train_dataloader())
    assert [len(b) for _, b in dm.train_dataloader()] == [8] * 6 + [2]
    pos = {img.tobytes(): i for i, img in enumerate(tiny_mnist["train_images"])}
    order = [pos[img.tobytes()] for img in x.squeeze(1).numpy()]
    assert sorted(order) == list(range(50))
    assert y.tolist() == [i % 10 for i in order]


def test_a_failed_download_names_the_folder_and_leaves_no_empty_folders(tmp_path, monkeypatch):
    """torchvision's download fails (no internet): the error names MNIST/raw and why, and the
    empty folders it made are removed; a folder that was there before stays."""
    from losslab.lit import mnist

    class Offline:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            assert download is True
            (Path(root) / "MNIST" / "raw").mkdir(parents=True, exist_ok=True)
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\n  no network")

    monkeypatch.setattr(mnist, "MNIST", Offline)
    (tmp_path / "kept").mkdir()
    for root in (tmp_path / "new", tmp_path / "kept"):
        with pytest.raises(FileNotFoundError) as failed:
            mnist.download(root, ["train-images-idx3-ubyte"])
        assert str(failed.value).startswith(
            f"MNIST not found in {root / 'MNIST' / 'raw'} (download failed: Error downloading "
            f"train-images-idx3-ubyte.gz: no network). losslab expects the four uncompressed"
        )
        assert [p.name for p in tmp_path.iterdir()] == ["kept"]
        assert list((tmp_path / "kept").iterdir()) == []
    with pytest.raises(RuntimeError, match="no network"):  # nothing was missing: the error as is
        mnist.download(tmp_path / "kept", [])


# -- what Lightning is told, loaders before setup, DDP shares, downloads -------------------------


def test_the_data_module_hands_no_hyperparameters_to_the_loggers(tmp_path):
    """losslab writes its own HPARAMS summary; Lightning's fit-start hook must log nothing of
    the data module (its hyperparameters still go in checkpoints)."""
    from lightning.pytorch.loggers.utilities import _log_hyperparams

    logged = []
    logger = SimpleNamespace(
        log_hyperparams=logged.append, log_graph=lambda module: None, save=lambda: None
    )
    module = SimpleNamespace(_log_hyperparams=False)
    dm = MNISTDataModule(tmp_path, batch_size=7)
    _log_hyperparams(SimpleNamespace(loggers=[logger], lightning_module=module, datamodule=dm))
    assert logged == []
    assert dm.hparams["batch_size"] == 7


def test_a_loader_before_setup_says_to_call_setup_and_an_empty_val_split_how_to_fill_it(
    tiny_mnist,
):
    dm = MNISTDataModule(tiny_mnist["root"], download=False)
    with pytest.raises(RuntimeError, match=r"^call setup\(\) before asking for a dataloader$"):
        dm.train_dataloader()
    dm.setup()
    with pytest.raises(
        ValueError, match=r"^split 'val' is empty: set data\.val_size > 0 to hold one out$"
    ):
        dm.eval_dataloader("val")


@pytest.mark.parametrize(
    ("train_size", "batch_size", "shares"),
    [
        (49, 8, [4] * 6),  # 49 % 8 = 1: one image cannot be split between 2 ranks: dropped
        (50, 8, [4] * 6 + [1]),  # 50 % 8 = 2: one each
        (48, 8, [4] * 6),
    ],
)
def test_ddp_train_batches_are_shared_and_a_last_batch_smaller_than_the_ranks_is_dropped(
    tiny_mnist, train_size, batch_size, shares
):
    dm = make_dm(tiny_mnist["root"], batch_size=batch_size, train_size=train_size)
    for rank in (0, 1):
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        assert [len(y) for _, y in dm.train_dataloader()] == shares


def test_ddp_eval_batches_are_eval_batch_size_per_rank(tiny_mnist):
    dm = make_dm(tiny_mnist["root"], eval_batch_size=16)
    dm.trainer = SimpleNamespace(global_rank=1, world_size=2)
    assert [len(y) for _, y in dm.eval_dataloader("train")] == [16, 9]  # of global 32, 18


def test_a_training_loader_that_no_trainer_ran_has_consumed_nothing(tiny_mnist):
    dm = make_dm(tiny_mnist["root"], batch_size=8)
    loader = dm.train_dataloader()
    assert loader.state_dict() == {"epoch": 0, "consumed": 0}
    again = dm.train_dataloader()
    again.load_state_dict(loader.state_dict())
    assert len(list(again)) == 7


class Offline:
    """torchvision's MNIST on a machine without internet: the download fails."""

    def __init__(self, root: str, train: bool, download: bool) -> None:
        assert download is True
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: no network")


@pytest.mark.parametrize("step", ["prepare_data", "setup"])
def test_a_failed_download_at_either_step_says_mnist_was_not_found_and_why(
    tmp_path, monkeypatch, step
):
    from losslab.lit import mnist

    monkeypatch.setattr(mnist, "MNIST", Offline)
    dm = MNISTDataModule(tmp_path / "data", download=True)
    with pytest.raises(FileNotFoundError) as info:
        getattr(dm, step)()
    assert str(info.value).startswith(
        f"MNIST not found in {tmp_path / 'data' / 'MNIST' / 'raw'} (download failed: Error "
        f"downloading train-images-idx3-ubyte.gz: no network)."
    )
    assert list(tmp_path.iterdir()) == []


def test_sizes_that_do_not_fit_the_files_name_both_keys_and_the_count(tiny_mnist):
    dm = MNISTDataModule(tiny_mnist["root"], download=False, train_size=46, val_size=5)
    message = (
        f"data.train_size=46 and data.val_size=5 do not fit the 50 training images in "
        f"{tiny_mnist['raw']}: need val_size < 50 and train_size <= 50 - val_size"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        dm.setup()


@pytest.mark.parametrize(
    ("train_size", "counts"),
    [(50, [5] * 10), (25, [2] * 5 + [3] * 5), (40, [4] * 10), (10, [1] * 10)],
)
def test_a_subset_is_as_balanced_as_its_size_allows_up_to_every_image(
    tiny_mnist, train_size, counts
):
    """5 images per class: 50 takes them all; 25 gives an extra image to 5 of the classes."""
    dm = make_dm(tiny_mnist["root"], train_size=train_size)
    x, y = collect(dm.eval_dataloader("train"))
    assert sorted(torch.bincount(y, minlength=10).tolist()) == counts
    assert len(set(file_positions(x, tiny_mnist))) == train_size


def reference_subset(
    labels: np.ndarray, size: int, val_size: int, seed: int, divides: bool
) -> tuple[list[int], list[int]]:
    """The file positions of a balanced subset and the classes with one image more, drawn as
    documented (independently of losslab): the seeded generator draws the val hold-out, then,
    only when ``size % 10``, which classes get one more, then the order the images are taken in."""
    g = torch.Generator().manual_seed(seed)
    pool = torch.arange(len(labels))
    if val_size:
        pool = torch.randperm(len(labels), generator=g)[val_size:].sort().values
    extra = [] if divides else torch.randperm(10, generator=g)[: size % 10].tolist()
    per_class = [size // 10 + (c in extra) for c in range(10)]
    order = torch.randperm(len(pool), generator=g)
    pool_labels = torch.from_numpy(labels.astype(np.int64))[pool]
    chosen = [order[pool_labels[order] == c][:k] for c, k in enumerate(per_class)]
    return sorted(pool[torch.cat(chosen)].tolist()), sorted(extra)


@pytest.mark.parametrize(("size", "val_size", "seed"), [(20, 0, 0), (30, 10, 3), (40, 5, 11)])
def test_a_subset_that_divides_among_the_classes_draws_no_extra_classes(
    tiny_mnist, size, val_size, seed
):
    """No draw for the extra images when the size divides: the same subsets as before classes
    were drawn for the extra image (runs with train_size=300 keep their images)."""
    dm = make_dm(tiny_mnist["root"], train_size=size, val_size=val_size, seed=seed)
    x, _ = collect(dm.eval_dataloader("train"))
    expected, _ = reference_subset(tiny_mnist["train_labels"], size, val_size, seed, divides=True)
    assert sorted(file_positions(x, tiny_mnist)) == expected


@pytest.mark.parametrize(("size", "val_size", "seed"), [(25, 0, 0), (13, 10, 3), (37, 5, 11)])
def test_the_classes_that_get_one_image_more_are_drawn_with_the_seed(
    tiny_mnist, size, val_size, seed
):
    dm = make_dm(tiny_mnist["root"], train_size=size, val_size=val_size, seed=seed)
    x, y = collect(dm.eval_dataloader("train"))
    expected, extra = reference_subset(
        tiny_mnist["train_labels"], size, val_size, seed, divides=False
    )
    assert sorted(file_positions(x, tiny_mnist)) == expected
    counts = torch.bincount(y, minlength=10).tolist()
    assert [c for c in range(10) if counts[c] > size // 10] == extra


def test_the_classes_with_an_extra_image_are_not_always_the_first(tiny_mnist):
    """Not classes 0 to k-1 every time (a bias toward the low digits in every small subset):
    across seeds the extra images go to other classes too."""
    favoured = set()
    for seed in range(4):
        _, y = collect(
            make_dm(tiny_mnist["root"], train_size=25, seed=seed).eval_dataloader("train")
        )
        counts = torch.bincount(y, minlength=10).tolist()
        favoured.add(tuple(c for c in range(10) if counts[c] == 3))
    assert len(favoured) > 1
    assert favoured != {(0, 1, 2, 3, 4)}


def test_a_subset_needing_more_of_a_class_than_there_are_names_the_class(tiny_mnist):
    from conftest import write_idx

    labels = (np.arange(50) % 9).astype(np.uint8)  # no image of class 9
    write_idx(tiny_mnist["raw"] / "train-labels-idx1-ubyte", labels, 2049)
    dm = MNISTDataModule(tiny_mnist["root"], download=False, train_size=10)
    message = "data.train_size=10 needs 1 images of class 9, only 0 available"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        dm.setup()


def test_the_full_training_split_shares_the_images_read_once_per_process(tiny_mnist):
    first, second = make_dm(tiny_mnist["root"]), make_dm(tiny_mnist["root"], seed=3)
    assert first.splits["train"][0].data_ptr() == second.splits["train"][0].data_ptr()
