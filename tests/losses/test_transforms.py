"""The losses wherever ``F.cross_entropy`` works: per-sample gradients with ``torch.func``
(``vmap(grad(...))`` and ``jacrev`` against a Python loop), the meta device and FakeTensor
(shapes and dtypes as torch's), ``torch.export`` and ``torch.compile(fullgraph=True)``; the
range check of class indices where values are concrete and skipped where they are not;
``ignore_index`` for SSE and MAE; the package's public names; errors naming the public class."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.func import grad, jacrev, vmap

import losslab
from losslab import CEELoss, MAELoss, SSELoss, cee_loss, mae_loss, sse_loss
from losslab.models import MLP

LOSSES = [cee_loss, sse_loss, mae_loss]
N, C = 6, 5


def inputs(probabilities: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, C, generator=g, dtype=torch.float64)
    if probabilities:
        return x, torch.softmax(torch.randn(N, C, generator=g, dtype=torch.float64), dim=1)
    return x, torch.randint(0, C, (N,), generator=g)


@pytest.mark.parametrize("probabilities", [False, True], ids=["indices", "probabilities"])
@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
def test_per_sample_gradients_by_vmap_of_grad_equal_a_loop_over_samples(loss, probabilities):
    x, t = inputs(probabilities)
    per_sample = vmap(grad(loss))(x, t)  # each sample: an unbatched (C,) input, its own target
    loop = torch.stack(
        [
            torch.autograd.functional.jacobian(lambda row, i=i: loss(row, t[i]), x[i])
            for i in range(N)
        ]
    )
    torch.testing.assert_close(per_sample, loop, rtol=1e-12, atol=1e-12)
    # and each row of the gradient of the summed batch loss, one backward for all
    batch = x.clone().requires_grad_()
    loss(batch, t, reduction="sum").backward()
    torch.testing.assert_close(per_sample, batch.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("probabilities", [False, True], ids=["indices", "probabilities"])
@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
def test_jacrev_of_the_per_sample_losses_is_block_diagonal_and_matches_the_loop(
    loss, probabilities
):
    x, t = inputs(probabilities, seed=1)
    jac = jacrev(lambda inp: loss(inp, t, reduction="none"))(x)  # (N, N, C)
    for i in range(N):
        row = torch.autograd.functional.jacobian(lambda r, i=i: loss(r, t[i]), x[i])
        torch.testing.assert_close(jac[i, i], row, rtol=1e-12, atol=1e-12)
        others = torch.cat([jac[i, :i], jac[i, i + 1 :]])
        assert torch.count_nonzero(others) == 0  # sample i's loss depends on its own row only


def test_per_sample_gradients_of_a_model_through_the_loss_as_torch_func_teaches():
    """The torch.func tutorial's pattern: functional_call, grad over the parameters, vmap over
    the batch; the same gradients as one backward per sample."""
    torch.manual_seed(0)
    model = MLP(in_features=12, hidden=(7,), num_classes=C).double()
    params = {k: v.detach() for k, v in model.named_parameters()}
    x, t = torch.randn(N, 12, dtype=torch.float64), torch.randint(0, C, (N,))

    def sample_loss(p, xi, ti):
        out = torch.func.functional_call(model, p, (xi.unsqueeze(0),))
        return cee_loss(out, ti.unsqueeze(0))

    per_sample = vmap(grad(sample_loss), in_dims=(None, 0, 0))(params, x, t)
    for i in range(N):
        model.zero_grad()
        cee_loss(model(x[i : i + 1]), t[i : i + 1]).backward()
        for name, p in model.named_parameters():
            torch.testing.assert_close(per_sample[name][i], p.grad, rtol=1e-12, atol=1e-12)


def references(probabilities: bool):
    """torch's own functions the losses are built to equal: F.cross_entropy, and SSE/MAE as
    F.mse_loss / F.l1_loss of the softmax against the one-hot target."""

    def onehot(x, t):
        return t if probabilities else F.one_hot(t, C).to(x.dtype)

    def sse(x, t, reduction):
        per = 0.5 * F.mse_loss(x.softmax(1), onehot(x, t), reduction="none").sum(1)
        return per if reduction == "none" else per.sum() if reduction == "sum" else per.mean()

    def mae(x, t, reduction):
        per = F.l1_loss(x.softmax(1), onehot(x, t), reduction="none").sum(1)
        return per if reduction == "none" else per.sum() if reduction == "sum" else per.mean()

    return {
        cee_loss: lambda x, t, r: F.cross_entropy(x, t, reduction=r),
        sse_loss: sse,
        mae_loss: mae,
    }


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("probabilities", [False, True], ids=["indices", "probabilities"])
@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
def test_on_the_meta_device_shape_and_dtype_are_torchs(loss, probabilities, reduction):
    x = torch.empty(N, C, 3, device="meta", dtype=torch.float16)
    t = (
        torch.empty(N, C, 3, device="meta", dtype=torch.float32)
        if probabilities
        else torch.empty(N, 3, device="meta", dtype=torch.long)
    )
    ours = loss(x, t, reduction=reduction)
    theirs = F.cross_entropy(x, t, reduction=reduction)  # what torch gives on meta
    assert (ours.device.type, ours.shape, ours.dtype) == ("meta", theirs.shape, theirs.dtype)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("probabilities", [False, True], ids=["indices", "probabilities"])
@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
def test_under_fake_tensors_shape_and_dtype_are_torchs(loss, probabilities, reduction):
    reference = references(probabilities)[loss]
    with FakeTensorMode():
        x = torch.randn(N, C)
        t = torch.rand(N, C) if probabilities else torch.randint(0, C, (N,))
        ours, theirs = loss(x, t, reduction=reduction), reference(x, t, reduction)
        assert type(ours).__name__ == "FakeTensor"
        assert (ours.shape, ours.dtype) == (theirs.shape, theirs.dtype)


class WithLoss(torch.nn.Module):
    def __init__(self, loss: torch.nn.Module) -> None:
        super().__init__()
        self.net, self.loss = MLP(in_features=20, hidden=(8,), num_classes=C), loss

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss(self.net(x), y)


@pytest.mark.parametrize("loss", [CEELoss(label_smoothing=0.1), SSELoss(), MAELoss()], ids=repr)
def test_torch_export_of_an_mlp_and_the_loss_round_trips_to_the_same_values(loss):
    torch.manual_seed(0)
    model = WithLoss(loss)
    x, y = torch.randn(N, 20), torch.randint(0, C, (N,))
    exported = torch.export.export(model, (x, y))
    x2, y2 = torch.randn(N, 20), torch.randint(0, C, (N,))  # new values, same shapes
    assert torch.equal(exported.module()(x2, y2), model(x2, y2))


@pytest.mark.slow
@pytest.mark.parametrize("loss", [CEELoss(), SSELoss(), MAELoss()], ids=repr)
def test_torch_compile_with_fullgraph_traces_the_loss_in_one_graph(loss):
    torch.manual_seed(0)
    model = WithLoss(loss)
    x, y = torch.randn(N, 20), torch.randint(0, C, (N,))
    compiled = torch.compile(model, fullgraph=True)  # a graph break would raise
    torch.testing.assert_close(compiled(x, y), model(x, y))


@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
def test_an_out_of_range_class_is_an_index_error_in_eager_mode(loss):
    x = torch.randn(3, C)
    with pytest.raises(IndexError, match=rf"class index {C}, out of range"):
        loss(x, torch.tensor([0, C, 1]))


@pytest.mark.parametrize("loss", LOSSES, ids=lambda f: f.__name__)
def test_under_vmap_the_range_check_is_skipped_and_the_gather_refuses_instead(loss):
    x, t = torch.randn(3, C), torch.tensor([0, C + 3, 1])
    with pytest.raises(RuntimeError, match="out of bounds"):
        vmap(loss)(x, t)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("loss", [sse_loss, mae_loss], ids=lambda f: f.__name__)
def test_an_ignored_target_counts_nothing_in_sse_and_mae_as_in_cross_entropy(loss, reduction):
    x, t = torch.randn(N, C, dtype=torch.float64), torch.randint(0, C, (N,))
    ignored = torch.tensor([True, False, True, False, False, False])
    with_ignored = loss(x, t.masked_fill(ignored, -100), reduction=reduction)
    kept = loss(x[~ignored], t[~ignored], reduction=reduction)
    if reduction == "none":
        assert torch.equal(with_ignored[ignored], torch.zeros(2, dtype=torch.float64))
        torch.testing.assert_close(with_ignored[~ignored], kept, rtol=0, atol=0)
    else:
        torch.testing.assert_close(with_ignored, kept, rtol=1e-15, atol=0)
    # the same rule F.cross_entropy follows with its ignore_index
    assert loss(x, t.masked_fill(ignored, 3), ignore_index=3).isfinite()


def test_sse_and_mae_refuse_ignore_index_with_probability_targets_as_cross_entropy_does():
    x, t = inputs(probabilities=True)
    for loss in (sse_loss, mae_loss, cee_loss):
        with pytest.raises(
            ValueError, match=r"^ignore_index=0 is not supported with class-probability"
        ):
            loss(x, t, ignore_index=0)
    with pytest.raises(RuntimeError):  # torch's own refusal, for reference
        F.cross_entropy(x, t, ignore_index=0)


def test_the_modules_hold_ignore_index_and_name_themselves_in_errors():
    assert SSELoss(ignore_index=7).ignore_index == 7
    assert "ignore_index=-100" in repr(MAELoss())
    for cls in (SSELoss, MAELoss):
        with pytest.raises(TypeError, match=rf"^{cls.__name__}\.__init__\(\) takes 1 positional"):
            cls("sum")


def test_dir_of_the_package_lists_the_losses_and_no_helper_names():
    names = dir(losslab)
    assert {"CEELoss", "SSELoss", "MAELoss", "cee_loss", "sse_loss", "mae_loss"} <= set(names)
    assert not {"Any", "annotations", "__getattr__"} & set(names)
    assert losslab.__all__ == ["CEELoss", "MAELoss", "SSELoss", "cee_loss", "mae_loss", "sse_loss"]
