"""losslab.lit.metrics: the fused one-pass evaluation against the implementation it replaced
(torchmetrics' ``MeanMetric``, ``MulticlassAccuracy`` and ``MulticlassCalibrationError``, copied
below as the reference) bit for bit, on a fixed checkpoint evaluated on real MNIST, and the
label-noise metrics and reliability bins against values worked out by hand.

Out of scope here: merging the states of several DDP processes (torchmetrics' sum / cat)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric, Metric
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError
from torchmetrics.functional.classification import multiclass_calibration_error

from losslab import CEELoss
from losslab.lit.classifier import scale_pixels
from losslab.lit.data import MNISTDataModule
from losslab.lit.metrics import CALIBRATION_BINS, EpochMetrics, SplitMetrics
from losslab.models import MLP
from losslab.names import KINDS

# -- the reference: losslab.lit.metrics before the fused pass (git show 47af113:src/losslab/metrics.py)


class ReferenceReliabilityBins(Metric):
    """Per confidence bin: the sample count, the summed confidence and the number correct."""

    full_state_update = False

    def __init__(self, n_bins: int = CALIBRATION_BINS) -> None:
        super().__init__()
        self.n_bins = n_bins
        for name in ("count", "confidence", "correct"):
            self.add_state(name, torch.zeros(n_bins, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, probs: Tensor, target: Tensor) -> None:
        confidence, prediction = probs.max(dim=1)
        edges = torch.linspace(0, 1, self.n_bins + 1, device=probs.device, dtype=probs.dtype)
        index = torch.bucketize(confidence, edges[1:-1], right=True)
        self.count.index_add_(0, index, torch.ones_like(confidence, dtype=torch.float64))
        self.confidence.index_add_(0, index, confidence.double())
        self.correct.index_add_(0, index, (prediction == target).double())

    def compute(self) -> dict[str, list[float]]:
        safe = self.count.clamp(min=1)
        return {
            "count": self.count.tolist(),
            "confidence": (self.confidence / safe).tolist(),
            "accuracy": (self.correct / safe).tolist(),
        }


class ReferenceEpochMetrics(nn.Module):
    """One torchmetrics metric per kind and split, each fed the batch separately."""

    def __init__(self, num_classes: int = 10, splits: tuple[str, ...] = ("train", "test")) -> None:
        super().__init__()
        self.metrics = nn.ModuleDict()
        for s in splits:
            for kind in ("loss", "nll", "brier"):
                self.metrics[f"{kind}_{s}"] = MeanMetric(nan_strategy=math.nan)
            self.metrics[f"acc_{s}"] = MulticlassAccuracy(
                num_classes, average="micro", validate_args=False
            )
            self.metrics[f"ece_{s}"] = MulticlassCalibrationError(
                num_classes, n_bins=CALIBRATION_BINS, norm="l1", validate_args=False
            )
            self.metrics[f"bins_{s}"] = ReferenceReliabilityBins()

    def update(self, split: str, logits: Tensor, target: Tensor, loss: Tensor) -> None:
        m, n = self.metrics, len(target)
        log_probs = logits.float().log_softmax(dim=1)
        probs = log_probs.exp()
        p_true = probs.gather(1, target[:, None]).squeeze(1)
        m[f"loss_{split}"].update(loss, weight=n)
        m[f"nll_{split}"].update(-log_probs.gather(1, target[:, None]).mean(), weight=n)
        m[f"brier_{split}"].update((probs.square().sum(1) - 2 * p_true + 1).mean(), weight=n)
        m[f"acc_{split}"].update(logits, target)
        m[f"ece_{split}"].update(probs, target)
        m[f"bins_{split}"].update(probs, target)

    def compute(self, split: str) -> tuple[dict[str, Tensor], dict[str, list[float]]]:
        values = {}
        for kind in KINDS:
            metric = self.metrics[f"{kind}_{split}"]
            values[f"{kind}/{split}"] = metric.compute()
            metric.reset()
        bins = self.metrics[f"bins_{split}"]
        reliability = bins.compute()
        bins.reset()
        return values, reliability


def both(batches, splits=("train", "test")) -> dict[str, tuple]:
    """``split -> ((fused values, bins), (reference values, bins))`` of ``(split, logits, y,
    loss)`` batches fed to both implementations alike."""
    fused, reference = EpochMetrics(splits), ReferenceEpochMetrics(splits=splits)
    for split, logits, y, loss in batches:
        # the reference's MeanMetric writes into a NaN loss in place: give each its own copy
        fused.update(split, logits, y, loss.clone())
        reference.update(split, logits, y, loss.clone())
    return {s: (fused.compute(s), reference.compute(s)) for s in splits}


def assert_bit_equal(fused: tuple, reference: tuple) -> None:
    (values, bins), (ref_values, ref_bins) = fused, reference
    assert set(values) == set(ref_values)
    for key, ref in ref_values.items():
        assert values[key].dtype == ref.dtype, key
        if torch.isnan(ref):
            assert torch.isnan(values[key]), key
        else:
            assert values[key].item() == ref.item(), key  # exact, no tolerance
    assert bins == ref_bins


# -- a fixed checkpoint on real MNIST -----------------------------------------------------------


@pytest.fixture(scope="module")
def mnist(data_dir: Path) -> MNISTDataModule:
    # eval batches of 999: the last batch of each split is smaller (6 and 10 images)
    dm = MNISTDataModule(data_dir, download=False, train_size=6000, eval_batch_size=999, seed=1)
    dm.prepare_data()
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def checkpoint(mnist: MNISTDataModule, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state_dict of an MLP trained 30 SGD steps from seed 0 (confident on most images,
    unsure on some: the calibration bins fill), saved to a file."""
    torch.manual_seed(0)
    net = MLP(hidden=(32,))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    for step, batch in enumerate(mnist.train_dataloader()):
        if step == 30:
            break
        x, y = scale_pixels(batch[0]), batch[1]  # raw pixels, scaled as the Classifier does
        optimizer.zero_grad()
        F.cross_entropy(net(x), y).backward()
        optimizer.step()
    path = tmp_path_factory.mktemp("fixed") / "mlp.pt"
    torch.save(net.state_dict(), path)
    return path


def test_the_fused_pass_equals_the_torchmetrics_implementation_bit_for_bit_on_real_mnist(
    mnist: MNISTDataModule, checkpoint: Path
) -> None:
    net = MLP(hidden=(32,))
    net.load_state_dict(torch.load(checkpoint, weights_only=True))
    net.eval()
    loss = CEELoss()
    batches = []
    with torch.no_grad():
        for split in ("train", "test"):
            for batch in mnist.eval_dataloader(split):
                x, y = scale_pixels(batch[0]), batch[1]
                logits = net(x)
                batches.append((split, logits, y, loss(logits, y)))
    assert {len(b[2]) for b in batches} == {999, 6, 10}  # unequal batch sizes
    results = both(batches)
    for split in ("train", "test"):
        assert_bit_equal(*results[split])
    (values, bins), _ = results["test"]
    # the checkpoint is a real test: a trained model, samples in many confidence bins
    assert 0.5 < values["acc/test"].item() < 0.99
    assert sum(n > 0 for n in bins["count"]) >= 8
    assert sum(bins["count"]) == 10_000


# -- synthetic batches --------------------------------------------------------------------------


def synthetic(sizes: list[int], seed: int = 0, scale: float = 3.0) -> list[tuple]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, n in enumerate(sizes):
        logits = torch.randn(n, 10, generator=g) * scale
        y = torch.randint(0, 10, (n,), generator=g)
        out.append(("train" if i % 2 else "test", logits, y, F.cross_entropy(logits, y)))
    return out


@pytest.mark.parametrize("scale", [0.3, 3.0, 30.0])  # unsure, mixed, overconfident
def test_batches_of_unequal_size_weigh_each_sample_once_as_the_reference_does(scale) -> None:
    results = both(synthetic([70, 1, 256, 33, 70, 2, 5], scale=scale))
    for split in ("train", "test"):
        assert_bit_equal(*results[split])
    # and the weighting is by samples, not batches: equal to one pass over everything
    batches = synthetic([70, 1, 256, 33, 70, 2, 5], scale=scale)
    train = [b for b in batches if b[0] == "train"]
    logits, y = torch.cat([b[1] for b in train]), torch.cat([b[2] for b in train])
    (values, _), _ = results["train"]
    assert values["nll/train"].item() == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert values["acc/train"].item() == pytest.approx(
        (logits.argmax(1) == y).float().mean().item()
    )


def test_a_nan_loss_batch_makes_the_epoch_loss_nan_and_leaves_the_rest_as_the_reference() -> None:
    batches = synthetic([50, 50, 40, 40])
    split, logits, y, _ = batches[2]
    batches[2] = (split, logits, y, torch.tensor(math.nan))  # the loss overflowed, logits fine
    results = both(batches)
    for split in ("train", "test"):
        assert_bit_equal(*results[split])
    (values, _), _ = results[batches[2][0]]
    assert math.isnan(values[f"loss/{batches[2][0]}"].item())
    assert all(math.isfinite(v.item()) for k, v in values.items() if not k.startswith("loss/"))


def test_nan_logits_make_loss_nll_brier_and_ece_nan() -> None:
    """Where the reference is not followed: torchmetrics counts a NaN confidence as 0 (a finite
    ECE for a broken model) and, on the CPU, re-applies the softmax to the whole batch."""
    batches = synthetic([50, 50, 40, 40])
    split, logits, y, _ = batches[1]
    logits = logits.clone()
    logits[3] = math.nan
    batches[1] = (split, logits, y, F.cross_entropy(logits, y))
    results = both(batches)
    assert_bit_equal(*results["test"])  # the other split is untouched
    (values, bins), (reference, _) = results[split]
    for kind in ("loss", "nll", "brier", "ece"):
        assert math.isnan(values[f"{kind}/{split}"].item()), kind
    assert not math.isnan(reference[f"ece/{split}"].item())  # what the fused pass fixes
    assert values[f"acc/{split}"].item() == reference[f"acc/{split}"].item()
    assert sum(bins["count"]) == 90  # the NaN sample is still counted, in a bin


def test_compute_resets_the_split_and_only_that_split() -> None:
    metrics = EpochMetrics(("train", "test"))
    (_, a, b, loss_a), (_, c, d, loss_c) = synthetic([30, 20])
    metrics.update("test", a, b, loss_a)
    metrics.update("train", c, d, loss_c)
    first, _ = metrics.compute("test")
    metrics.update("test", a[:10], b[:10], F.cross_entropy(a[:10], b[:10]))
    again, bins = metrics.compute("test")
    assert again["acc/test"].item() == pytest.approx(
        (a[:10].argmax(1) == b[:10]).float().mean().item()
    )
    assert sum(bins["count"]) == 10
    train, _ = metrics.compute("train")  # untouched by the test split's compute
    assert train["acc/train"].item() == pytest.approx((c.argmax(1) == d).float().mean().item())
    assert first["acc/test"].item() == pytest.approx((a.argmax(1) == b).float().mean().item())


# -- label noise: accuracy against the true labels, memorization --------------------------------


def hand_made() -> tuple[Tensor, Tensor, Tensor]:
    """Six samples, three classes: predictions 0 1 2 0 1 2, noisy labels 0 1 0 0 2 2, true
    labels 0 2 0 1 1 2. Flipped: samples 1, 3, 4; predicted as their wrong label: 1 and 3."""
    prediction = torch.tensor([0, 1, 2, 0, 1, 2])
    logits = F.one_hot(prediction, 3).float() * 4.0
    return logits, torch.tensor([0, 1, 0, 0, 2, 2]), torch.tensor([0, 2, 0, 1, 1, 2])


def test_true_label_accuracy_and_memorization_by_hand() -> None:
    logits, y, true_y = hand_made()
    metrics = EpochMetrics(("train", "val", "test"))
    for part in (slice(0, 4), slice(4, 6)):  # two batches: counts, not batch means
        loss = F.cross_entropy(logits[part], y[part])
        metrics.update("train", logits[part], y[part], loss, true_y[part])
    values, _ = metrics.compute("train")
    assert values["acc/train"].item() == pytest.approx(4 / 6)  # against the noisy labels
    assert values["acc/train_true"].item() == pytest.approx(3 / 6)  # samples 0, 4, 5
    assert values["memo/train"].item() == pytest.approx(2 / 3)  # 2 of the 3 flipped
    # another split gets its own tags
    metrics.update("val", logits, y, F.cross_entropy(logits, y), true_y)
    values, _ = metrics.compute("val")
    assert values["acc/val_true"].item() == pytest.approx(0.5)
    assert values["memo/val"].item() == pytest.approx(2 / 3)
    # without true labels (after the reset): no label-noise tags
    metrics.update("train", logits, y, F.cross_entropy(logits, y))
    values, _ = metrics.compute("train")
    assert set(values) == {f"{kind}/train" for kind in KINDS}


def test_memorization_is_undefined_when_no_label_was_flipped() -> None:
    logits, y, _ = hand_made()
    metrics = EpochMetrics(("train",))
    metrics.update("train", logits, y, F.cross_entropy(logits, y), y)
    values, _ = metrics.compute("train")
    assert values["acc/train_true"].item() == pytest.approx(4 / 6)
    assert math.isnan(values["memo/train"].item())  # 0 of 0: not "memorized nothing"


# -- the reliability bins ----------------------------------------------------------------------


def logits_giving(confidence: Tensor) -> Tensor:
    """Two-class logits ``[z, 0]`` whose float32 softmax is exactly ``[confidence, ...]``."""
    z = torch.log(confidence / (1 - confidence)).float() + torch.arange(-3000, 3001) * 1e-7
    candidates = torch.stack([z, torch.zeros_like(z)], dim=1)
    hits = (candidates.log_softmax(1).exp()[:, 0] == confidence).nonzero()
    assert len(hits), f"no float32 logit gives confidence {confidence.item()}"
    return candidates[hits[0, 0]]


def test_reliability_bins_by_hand() -> None:
    # confidences 0.95 (right), 0.95 (wrong), 1.0 (right: the last bin), 0.5 (right, bin 7 of 15)
    probs = torch.tensor([[0.95, 0.05], [0.95, 0.05], [1.0, 0.0], [0.5, 0.5]])
    target = torch.tensor([0, 1, 0, 0])
    metric = SplitMetrics(n_bins=15)
    metric.update(probs.log(), target, torch.tensor(0.0))
    out = metric.compute()["reliability"]
    assert out["count"][14] == 3
    assert out["accuracy"][14] == pytest.approx(2 / 3)
    assert out["confidence"][14] == pytest.approx((0.95 + 0.95 + 1.0) / 3)
    assert out["count"][7] == 1  # 0.5 * 15 = 7.5: bin [7/15, 8/15)
    assert (out["accuracy"][7], out["confidence"][7]) == (1.0, 0.5)  # a bin of one sample
    assert sum(out["count"]) == 4
    assert out["count"].count(0.0) == 13
    assert out["accuracy"][0] == out["confidence"][0] == 0.0  # an empty bin shows 0, not NaN


def test_a_confidence_on_a_bin_edge_goes_to_the_bin_above_as_in_torchmetrics() -> None:
    edges = torch.linspace(0, 1, 16)
    logits = torch.stack([logits_giving(c) for c in edges[8:15]])  # 8/15 ... 14/15, on edges
    probs = logits.log_softmax(1).exp()
    assert torch.equal(probs[:, 0], edges[8:15])
    target = torch.zeros(len(logits), dtype=torch.long)
    metric = SplitMetrics(n_bins=15)
    metric.update(logits, target, torch.tensor(0.0))
    out = metric.compute()
    assert out["reliability"]["count"] == [0.0] * 8 + [1.0] * 7
    ece = multiclass_calibration_error(probs, target, num_classes=2, n_bins=15, norm="l1")
    assert out["ece"].item() == ece.item()
    bins = out["reliability"]
    gaps = sum(
        n * abs(a - c)
        for n, a, c in zip(bins["count"], bins["accuracy"], bins["confidence"], strict=True)
    )
    assert gaps / len(target) == pytest.approx(ece.item(), abs=1e-6)


def test_the_states_of_two_processes_add_up_to_the_whole_splits_metrics() -> None:
    """What a DDP sync does: each process's sums added, each sample counted once."""
    logits, y, true_y = hand_made()
    whole, first, second = SplitMetrics(), SplitMetrics(), SplitMetrics()
    whole.update(logits, y, F.cross_entropy(logits, y), true_y)
    for metric, part in ((first, slice(0, 4)), (second, slice(4, 6))):
        metric.update(logits[part], y[part], F.cross_entropy(logits[part], y[part]), true_y[part])
    first.merge_state(second)
    merged, expected = first.compute(), whole.compute()
    assert merged.keys() == expected.keys()
    for key, value in expected.items():
        if key == "reliability":
            for name, bins in value.items():
                assert merged[key][name] == pytest.approx(bins), name
        else:
            assert merged[key].shape == ()
            assert merged[key].item() == pytest.approx(value.item()), key


def test_one_sample_with_its_true_label_measures_true_accuracy() -> None:
    logits, y, true_y = hand_made()
    metric = SplitMetrics()
    metric.update(logits[1:2], y[1:2], F.cross_entropy(logits[1:2], y[1:2]), true_y[1:2])
    out = metric.compute()
    assert out["acc_true"].item() == 0.0  # predicted 1, truly 2
    assert out["memorized"].item() == 1.0  # flipped to 1 and predicted as 1


def test_final_metrics_of_a_run_that_measured_val_alone_have_no_test_entries() -> None:
    """A study's tuning stage measures ``val`` only (``data.eval_splits=[val]``)."""
    from losslab.lit.metrics import final_metrics

    history = [{"epoch": 0, "acc/val": 0.5, "loss/val": 2.0},
               {"epoch": 1, "acc/val": 0.75, "loss/val": 1.0}]  # fmt: skip
    assert final_metrics(history) == {
        "hp/val_acc": 0.75,
        "hp/best_val_acc": 0.75,
        "hp/val_loss": 1.0,
    }  # no test split: no test accuracy and no gap, rather than NaN


def test_final_metrics_put_the_deciding_then_the_reported_accuracies_first() -> None:
    from losslab.lit.metrics import final_metrics

    def epoch(e, val, test):
        return {"epoch": e, "acc/val": val, "acc/test": test, "acc/train": 0.9, "loss/val": 1.0,
                **{f"{k}/test": 0.1 * e for k in ("loss", "nll", "brier", "ece")},
                "gap/acc": 0.9 - test}  # fmt: skip

    # validation peaks at epochs 1 and 3 (a tie: the first one stops early), and is NaN at 2
    history = [epoch(0, 0.1, 0.1), epoch(1, 0.8, 0.7), epoch(2, math.nan, 0.2),
               epoch(3, 0.8, 0.75), epoch(4, 0.6, 0.65)]  # fmt: skip
    out = final_metrics(history)
    assert list(out)[:3] == ["hp/val_acc", "hp/test_acc", "hp/test_at_best"]
    assert (out["hp/val_acc"], out["hp/test_acc"], out["hp/test_at_best"]) == (0.6, 0.65, 0.7)
    assert out["hp/best_val_acc"] == 0.8
    assert out["hp/gap_acc"] == pytest.approx(0.25)
    assert not any(math.isnan(v) for v in out.values())
