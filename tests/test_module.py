"""The Classifier's metric code, in process and fast: every epoch metric against an independent
computation (torch's functions, torchmetrics' functional API, values worked out by hand), the
HPARAMS metrics chosen by validation, the divergence stop, and what the loss is fed."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_calibration_error

from losslab import CEELoss, SSELoss
from losslab.metrics import ReliabilityBins, objective
from losslab.models import MLP
from losslab.module import Classifier


def classifier(loss=None, **kwargs) -> Classifier:
    return Classifier(MLP(hidden=(8,)), loss or CEELoss(), optimizer=lambda p: None, **kwargs)


@pytest.fixture
def outputs() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.randn(300, 10) * 3, torch.randint(0, 10, (300,))


def test_epoch_metrics_equal_independent_computations(outputs):
    logits, y = outputs
    module = classifier()
    for part in torch.arange(300).split(70):  # batches of unequal size: weights matter
        module._update_metrics("test", logits[part], y[part])
    values = {k: v.item() for k, v in module._compute("test").items()}
    probs = logits.softmax(1)
    assert values["loss/test"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert values["nll/test"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert values["acc/test"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    brier = (probs - F.one_hot(y, 10)).square().sum(1).mean().item()
    assert values["brier/test"] == pytest.approx(brier, rel=1e-5)
    ece = multiclass_calibration_error(probs, y, num_classes=10, n_bins=15, norm="l1").item()
    assert values["ece/test"] == pytest.approx(ece, abs=1e-6)
    bins = module.reliability["test"]
    assert sum(bins["count"]) == 300
    gaps = sum(
        n * abs(a - c)
        for n, a, c in zip(bins["count"], bins["accuracy"], bins["confidence"], strict=True)
    )
    assert gaps / 300 == pytest.approx(ece, abs=1e-6)
    # reset after compute: the next epoch starts from nothing
    module._update_metrics("test", logits[:10], y[:10])
    assert module._compute("test")["acc/test"].item() == pytest.approx(
        (logits[:10].argmax(1) == y[:10]).float().mean().item()
    )


def test_the_training_loss_is_what_loss_says_and_nll_stays_plain(outputs):
    logits, y = outputs
    module = classifier(CEELoss(label_smoothing=0.2))
    module._update_metrics("val", logits, y)
    values = module._compute("val")
    assert values["loss/val"].item() == pytest.approx(
        F.cross_entropy(logits, y, label_smoothing=0.2).item(), rel=1e-6
    )
    assert values["nll/val"].item() == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)


def test_reliability_bins_by_hand():
    # confidences 0.95 (right), 0.95 (wrong), 1.0 (right: the last bin), 0.5 (right, bin 7 of 15)
    probs = torch.tensor([[0.95, 0.05], [0.95, 0.05], [1.0, 0.0], [0.5, 0.5]])
    target = torch.tensor([0, 1, 0, 0])
    bins = ReliabilityBins(n_bins=15)
    bins.update(probs, target)
    out = bins.compute()
    assert out["count"][14] == 3
    assert out["accuracy"][14] == pytest.approx(2 / 3)
    assert out["confidence"][14] == pytest.approx((0.95 + 0.95 + 1.0) / 3)
    assert out["count"][7] == 1  # 0.5 * 15 = 7.5: bin [7/15, 8/15)
    assert (out["accuracy"][7], out["confidence"][7]) == (1.0, 0.5)  # a bin of one sample
    assert sum(out["count"]) == 4


def test_a_confidence_on_a_bin_edge_goes_to_the_bin_above_as_in_torchmetrics():
    edges = torch.linspace(0, 1, 16)
    confidence = edges[8:15]  # 8/15 ... 14/15, each exactly on an inner edge
    probs = torch.stack([confidence, 1 - confidence], dim=1)
    target = torch.zeros(len(confidence), dtype=torch.long)
    bins = ReliabilityBins(n_bins=15)
    bins.update(probs, target)
    assert bins.compute()["count"] == [0.0] * 8 + [1.0] * 7
    ece = multiclass_calibration_error(probs, target, num_classes=2, n_bins=15, norm="l1")
    out = bins.compute()
    mine = sum(
        n * abs(a - c)
        for n, a, c in zip(out["count"], out["accuracy"], out["confidence"], strict=True)
    )
    assert mine / len(target) == pytest.approx(ece.item(), abs=1e-6)


def history(with_val: bool) -> list[dict]:
    out = []
    for epoch, (val, test) in enumerate([(0.1, 0.1), (0.90, 0.80), (0.85, 0.95)]):
        h = {"epoch": epoch, "acc/test": test, "loss/test": 1 - test, "gap/acc": 0.01}
        h |= {"ece/test": 0.02, "nll/test": 0.3, "brier/test": 0.1}
        if with_val:
            h |= {"acc/val": val, "loss/val": 1 - val}
        out.append(h)
    return out


def test_final_metrics_put_the_selection_metric_first():
    module = classifier()
    module.history = history(with_val=True)
    metrics = module.final_metrics()
    assert metrics == {  # the last epoch's, best by validation (0.90), not test (0.95)
        "hp/val_acc": 0.85,
        "hp/test_acc": 0.95,
        "hp/test_ece": 0.02,
        "hp/test_nll": 0.3,
        "hp/test_brier": 0.1,
        "hp/test_loss": pytest.approx(0.05),
        "hp/gap_acc": 0.01,
        "hp/val_loss": pytest.approx(0.15),
        "hp/best_val_acc": 0.90,
    }
    assert list(metrics)[:2] == ["hp/val_acc", "hp/test_acc"]
    module.history[-1].pop("gap/acc")  # no train split measured: the gap is unknown
    assert math.isnan(module.final_metrics()["hp/gap_acc"])
    assert classifier().final_metrics() == {}
    module.history = history(with_val=False)
    metrics = module.final_metrics()
    assert next(iter(metrics)) == "hp/test_acc"
    assert metrics["hp/best_test_acc"] == 0.95


def attach(module: Classifier, log_every: int = 5) -> SimpleNamespace:
    """A stand-in trainer with just what ``_after_step`` reads."""
    logged = []
    logger = SimpleNamespace(log_metrics=lambda m, step: logged.append((step, m["batch/loss"])))
    trainer = SimpleNamespace(
        global_step=0,
        log_every_n_steps=log_every,
        world_size=1,
        should_stop=False,
        loggers=[logger],
    )
    module._trainer = trainer
    return SimpleNamespace(trainer=trainer, logged=logged)


def test_the_first_non_finite_loss_stops_training_on_any_step():
    module = classifier()
    fake = attach(module)
    for step, value in enumerate([2.0, 1.5, 1.2, math.inf, 1.0], start=1):
        fake.trainer.global_step = step
        stop = module._after_step(torch.tensor(value))
        if stop:
            break
    assert step == 4  # not a logged step (1, 6, ...): checked anyway
    assert module.status == "diverged"
    assert fake.trainer.should_stop is True
    assert fake.logged == [(1, 2.0)]


@pytest.mark.parametrize(
    ("loss", "loss_input", "fed"),
    [
        (CEELoss(), "auto", "logits"),
        (CEELoss(from_logits=False), "auto", "probabilities"),
        (SSELoss(from_logits=False), "logits", "logits"),
        (SSELoss(), "auto", "logits"),
    ],
)
def test_what_the_loss_is_fed(loss, loss_input, fed, outputs):
    logits, y = outputs
    module = classifier(loss, loss_input=loss_input)
    expected = loss(logits.softmax(1) if fed == "probabilities" else logits, y)
    assert module._loss(logits, y).item() == pytest.approx(expected.item(), rel=1e-6)


def test_bad_module_arguments_are_refused_by_name():
    with pytest.raises(ValueError, match=r"loss\.input"):
        classifier(loss_input="raw")
    with pytest.raises(ValueError, match="steps_per_call"):
        classifier(steps_per_call=0)
    with pytest.raises(ValueError, match="scheduler_interval"):
        classifier(scheduler_interval="batch")


def test_a_sweeper_is_given_validation_accuracy_and_never_test_accuracy():
    assert objective(history(with_val=True)) == 0.85
    assert math.isnan(objective(history(with_val=False)))  # test (0.95) is not offered instead
    assert math.isnan(objective([]))
