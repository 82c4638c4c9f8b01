"""Tests for losslab.losses against independent references.

References are torch's own functions (``F.cross_entropy``, ``F.nll_loss``, ``F.mse_loss``,
``F.l1_loss``, ``F.softmax``, ``nn.CrossEntropyLoss``) and hand-worked numbers from *Deep
Learning from Scratch*, ch. 4 - never our own functions. Where losslab follows torch's behaviour
(result dtypes under autocast and type promotion, legacy arguments, TypeErrors, zero classes),
the test asks torch what it does rather than hard-coding it. Generated inputs come from
hypothesis (a seed and shape parameters, turned into tensors with a ``torch.Generator``), as
torchmetrics' test harness does.
"""

from __future__ import annotations

import doctest
import inspect
import io
import math
import os
import tokenize
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

import losslab.losses
from losslab import CEELoss, MAELoss, SSELoss, cee_loss, mae_loss, sse_loss

torch.set_num_threads(1)

REDUCTIONS = ("none", "mean", "sum")
# (rtol, atol) per dtype for comparisons with torch's kernels
TOL = {torch.float64: (1e-12, 1e-12), torch.float32: (1e-6, 1e-6)}

# make mutate runs this suite against mutmut's rewritten sources (MUTANT_UNDER_TEST is set)
UNDER_MUTATION = "MUTANT_UNDER_TEST" in os.environ


def _close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype) -> None:
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


def _grad(out: torch.Tensor, x: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    (g,) = torch.autograd.grad(out, x, upstream)
    return g


def _class_dim(x: torch.Tensor) -> int:
    return 0 if x.dim() == 1 else 1


def _onehot(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Index target -> one-hot of the input's shape (classes in the input's class dimension)."""
    return F.one_hot(t, x.shape[_class_dim(x)]).movedim(-1, _class_dim(x)).to(x.dtype)


# --------------------------------------------------------------------------------------------
# 1. The book's worked examples (Deep Learning from Scratch, ch. 4), float64
# --------------------------------------------------------------------------------------------

Y_RIGHT = [0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0]  # 0.6 on the true class 2
Y_WRONG = [0.1, 0.05, 0.1, 0.0, 0.05, 0.1, 0.0, 0.6, 0.0, 0.0]  # 0.6 on class 7
BOOK = {  # row -> (SSE, CEE with eps 1e-7), as printed in the book
    "right": (Y_RIGHT, 0.0975, 0.510825457),
    "wrong": (Y_WRONG, 0.5975, 2.302584093),
}
BOOK_BATCH_SSE, BOOK_BATCH_CEE = 0.3475, 1.406704775


def _book_targets(n: int | None) -> dict[str, torch.Tensor]:
    """Class 2 as index and as one-hot; ``n=None`` gives the unbatched (C,) forms."""
    index = torch.tensor(2) if n is None else torch.full((n,), 2)
    onehot = F.one_hot(index, 10).to(torch.float64)
    return {"index": index, "onehot": onehot}


@pytest.mark.parametrize("row", ["right", "wrong"])
@pytest.mark.parametrize("target_kind", ["index", "onehot"])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
def test_book_single_example_values(row, target_kind, batched):
    y_list, sse_book, cee_book = BOOK[row]
    y = torch.tensor([y_list] if batched else y_list, dtype=torch.float64)
    t = _book_targets(1 if batched else None)[target_kind]
    results = {
        "sse_loss": (sse_loss(y, t, from_logits=False), sse_book),
        "SSELoss": (SSELoss(from_logits=False)(y, t), sse_book),
        "cee_loss": (cee_loss(y, t, from_logits=False), cee_book),
        "CEELoss": (CEELoss(from_logits=False, eps=1e-7)(y, t), cee_book),
    }
    for name, (value, book) in results.items():
        assert value.dtype == torch.float64, name
        assert value.item() == pytest.approx(book, abs=1e-9), name


@pytest.mark.parametrize("target_kind", ["index", "onehot"])
def test_book_batch_of_two_is_mean_over_samples(target_kind):
    y = torch.tensor([Y_RIGHT, Y_WRONG], dtype=torch.float64)
    t = _book_targets(2)[target_kind]
    assert sse_loss(y, t, from_logits=False).item() == pytest.approx(BOOK_BATCH_SSE, abs=1e-12)
    assert SSELoss(from_logits=False)(y, t).item() == pytest.approx(BOOK_BATCH_SSE, abs=1e-12)
    assert cee_loss(y, t, from_logits=False).item() == pytest.approx(BOOK_BATCH_CEE, abs=1e-9)
    assert CEELoss(from_logits=False)(y, t).item() == pytest.approx(BOOK_BATCH_CEE, abs=1e-9)
    # reduction="none" gives the two per-sample book values, "sum" their sum
    per_sample_sse = sse_loss(y, t, reduction="none", from_logits=False)
    per_sample_cee = CEELoss(reduction="none", from_logits=False)(y, t)
    assert per_sample_sse.tolist() == pytest.approx([0.0975, 0.5975], abs=1e-12)
    assert per_sample_cee.tolist() == pytest.approx([0.510825457, 2.302584093], abs=1e-9)
    assert cee_loss(y, t, reduction="sum", from_logits=False).item() == pytest.approx(
        0.510825457 + 2.302584093, abs=1e-9
    )


def test_book_cee_eps_keeps_log_of_zero_finite():
    # the true class has probability 0: the book's eps turns -log(0) = inf into -log(1e-7)
    y = torch.tensor([Y_RIGHT], dtype=torch.float64)
    t = torch.tensor([3])
    assert cee_loss(y, t, from_logits=False).item() == pytest.approx(16.118095651, abs=1e-9)
    assert cee_loss(y, t, from_logits=False, eps=1e-3).item() == pytest.approx(
        6.907755279, abs=1e-9
    )


# MAE by hand, true class 2 (t = one-hot):
#   Y_RIGHT: |0.6 - 1| = 0.4, plus the other nine |y_k - 0|:
#            0.1 + 0.05 + 0 + 0.05 + 0.1 + 0 + 0.1 + 0 + 0 = 0.4   -> E = 0.8 = 2 * (1 - 0.6)
#   Y_WRONG: |0.1 - 1| = 0.9, plus 0.1 + 0.05 + 0 + 0.05 + 0.1 + 0 + 0.6 + 0 + 0 = 0.9
#                                                                  -> E = 1.8 = 2 * (1 - 0.1)
#   batch of both, mean over the 2 samples: (0.8 + 1.8) / 2 = 1.3
BOOK_MAE = {"right": 0.8, "wrong": 1.8}
BOOK_BATCH_MAE = 1.3


@pytest.mark.parametrize("row", ["right", "wrong"])
@pytest.mark.parametrize("target_kind", ["index", "onehot"])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
def test_book_vectors_give_the_hand_worked_mae(row, target_kind, batched):
    y_list = BOOK[row][0]
    y = torch.tensor([y_list] if batched else y_list, dtype=torch.float64)
    t = _book_targets(1 if batched else None)[target_kind]
    for value in (mae_loss(y, t, from_logits=False), MAELoss(from_logits=False)(y, t)):
        assert value.dtype == torch.float64
        assert value.item() == pytest.approx(BOOK_MAE[row], abs=1e-12)


@pytest.mark.parametrize("target_kind", ["index", "onehot"])
def test_book_batch_mae_is_mean_over_samples(target_kind):
    y = torch.tensor([Y_RIGHT, Y_WRONG], dtype=torch.float64)
    t = _book_targets(2)[target_kind]
    assert mae_loss(y, t, from_logits=False).item() == pytest.approx(BOOK_BATCH_MAE, abs=1e-12)
    assert mae_loss(y, t, reduction="none", from_logits=False).tolist() == pytest.approx(
        [0.8, 1.8], abs=1e-12
    )
    assert mae_loss(y, t, reduction="sum", from_logits=False).item() == pytest.approx(
        2.6, abs=1e-12
    )


# --------------------------------------------------------------------------------------------
# 2. CEE with logits == F.cross_entropy, generated inputs, forward and gradient
# --------------------------------------------------------------------------------------------

_C = st.integers(2, 6)
_N = st.integers(1, 4)
_D = st.integers(1, 3)
SHAPES = st.one_of(
    st.tuples(_C), st.tuples(_N, _C), st.tuples(_N, _C, _D), st.tuples(_N, _C, _D, _D)
)
DTYPES = st.sampled_from([torch.float64, torch.float32])


def _make_target(kind, x, gen, ignore_index=-100, ignore_fraction=0.0):
    """An index, soft-probability or one-hot target for ``x``, drawn from ``gen``."""
    cdim = _class_dim(x)
    num_classes = x.shape[cdim]
    index_shape = x.shape[:cdim] + x.shape[cdim + 1 :]
    index = torch.randint(0, num_classes, index_shape, generator=gen)
    if kind == "index":
        ignored = torch.rand(index_shape, generator=gen) < ignore_fraction
        return index.masked_fill(ignored, ignore_index)
    if kind == "onehot":
        return _onehot(index, x)
    return torch.randn(x.shape, generator=gen, dtype=x.dtype).softmax(cdim)


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    shape=SHAPES,
    scale=st.sampled_from([1.0, 10.0]),
    target_kind=st.sampled_from(["index", "soft", "onehot"]),
    use_weight=st.booleans(),
    ignore_index=st.sampled_from([-100, -1, 0, 3]),
    ignore_fraction=st.sampled_from([0.0, 0.3]),
    reduction=st.sampled_from(REDUCTIONS),
    label_smoothing=st.one_of(st.just(0.0), st.floats(0.0, 1.0)),
    dtype=DTYPES,
    as_module=st.booleans(),
)
def test_cee_with_logits_matches_f_cross_entropy(
    seed,
    shape,
    scale,
    target_kind,
    use_weight,
    ignore_index,
    ignore_fraction,
    reduction,
    label_smoothing,
    dtype,
    as_module,
):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=gen, dtype=dtype) * scale).requires_grad_()
    if target_kind != "index" and ignore_index >= 0:
        ignore_index = -100  # torch refuses ignore_index >= 0 with probability targets
    t = _make_target(target_kind, x, gen, ignore_index, ignore_fraction)
    if target_kind == "index" and reduction == "mean":
        assume(bool((t != ignore_index).any()))  # all ignored: 0/0, tested on its own below
    num_classes = x.shape[_class_dim(x)]
    weight = torch.rand(num_classes, generator=gen, dtype=dtype) + 0.1 if use_weight else None
    options = dict(
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
        label_smoothing=label_smoothing,
    )

    expected = F.cross_entropy(x, t, **options)
    if as_module:
        actual = CEELoss(**options)(x, t)
    else:
        actual = cee_loss(x, t, **options)

    assert actual.dtype == dtype
    assert actual.shape == expected.shape
    _close(actual, expected, dtype)
    upstream = torch.randn(expected.shape, generator=gen, dtype=dtype)
    _close(_grad(actual, x, upstream), _grad(expected, x, upstream), dtype)


@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.3}, {"weight": torch.rand(5) + 0.1}])
def test_cee_mean_with_every_target_ignored_is_nan_like_torch(options):
    x = torch.randn(3, 5)
    t = torch.full((3,), -100)
    assert torch.isnan(F.cross_entropy(x, t, **options))
    assert torch.isnan(cee_loss(x, t, **options))
    # sum and none are well defined: zero
    assert cee_loss(x, t, reduction="sum", **options).item() == 0.0
    assert cee_loss(x, t, reduction="none", **options).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("use_weight", [False, True])
def test_cee_from_probabilities_matches_nll_of_log_y_plus_eps(reduction, use_weight):
    # from_logits=False is -sum t log(y + eps): F.nll_loss on log(y + eps) is the reference
    gen = torch.Generator().manual_seed(1)
    y = torch.rand(6, 4, 3, generator=gen, dtype=torch.float64).softmax(1).requires_grad_()
    t = torch.randint(0, 4, (6, 3), generator=gen)
    t[0, 0] = t[3, 2] = -100
    weight = torch.rand(4, generator=gen, dtype=torch.float64) + 0.1 if use_weight else None
    eps = 1e-4
    expected = F.nll_loss(torch.log(y + eps), t, weight=weight, reduction=reduction)
    actual = cee_loss(y, t, weight=weight, reduction=reduction, from_logits=False, eps=eps)
    _close(actual, expected, torch.float64)
    upstream = torch.rand(expected.shape, generator=gen, dtype=torch.float64)
    _close(_grad(actual, y, upstream), _grad(expected, y, upstream), torch.float64)


# --------------------------------------------------------------------------------------------
# 3. Large logits stay finite and equal torch's
# --------------------------------------------------------------------------------------------

LARGE = [[1e4, -1e4, 1e4 - 1], [-1e4, -1e4, 1e4], [1e4, 1e4, 1e4]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "options",
    [{}, {"label_smoothing": 0.1}, {"weight": [1.0, 2.0, 0.5]}, {"reduction": "none"}],
    ids=["plain", "label_smoothing", "weight", "none"],
)
@pytest.mark.parametrize("target_kind", ["index", "probabilities"])
def test_cee_large_logits_are_finite_and_match_torch(dtype, options, target_kind):
    options = dict(options)
    if "weight" in options:
        options["weight"] = torch.tensor(options["weight"], dtype=dtype)
    x = torch.tensor(LARGE, dtype=dtype, requires_grad=True)
    t = torch.tensor([2, 0, 1])
    if target_kind == "probabilities":
        t = torch.tensor([[0.0, 0.2, 0.8], [1.0, 0.0, 0.0], [0.3, 0.3, 0.4]], dtype=dtype)
    expected = F.cross_entropy(x, t, **options)
    actual = cee_loss(x, t, **options)
    assert torch.isfinite(actual).all()
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=0.0)
    upstream = torch.ones_like(expected)
    g_actual, g_expected = _grad(actual, x, upstream), _grad(expected, x, upstream)
    assert torch.isfinite(g_actual).all()
    torch.testing.assert_close(g_actual, g_expected, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cee_large_logit_example_equals_closed_form_and_torch(dtype):
    x = torch.tensor([[1e4, -1e4, 1e4 - 1]], dtype=dtype, requires_grad=True)
    t = torch.tensor([2])
    actual, expected = cee_loss(x, t), F.cross_entropy(x, t)
    # 1 + log(1 + e^-1) = 1.3132616875...
    assert actual.item() == pytest.approx(1.3132616875182228, rel=1e-6)
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=0.0)
    torch.testing.assert_close(
        _grad(actual, x, torch.ones(())), _grad(expected, x, torch.ones(())), rtol=1e-6, atol=0.0
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sse_large_logits_are_finite_and_match_softmax_reference(dtype):
    x = torch.tensor(LARGE, dtype=dtype, requires_grad=True)
    t = torch.tensor([2, 0, 1])
    expected = 0.5 * F.mse_loss(F.softmax(x, 1), _onehot(t, x), reduction="sum") / 3
    actual = sse_loss(x, t)
    assert torch.isfinite(actual).all()
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(
        _grad(actual, x, torch.ones(())), _grad(expected, x, torch.ones(())), rtol=1e-6, atol=1e-7
    )


# --------------------------------------------------------------------------------------------
# 4. SSE == 0.5 * F.mse_loss(softmax(x), onehot, reduction="sum") / N
# --------------------------------------------------------------------------------------------


def _sse_reference(x, t, reduction, from_logits):
    """SSE from torch's softmax and mse_loss: 0.5 * sum over classes, mean over samples."""
    cdim = _class_dim(x)
    y = F.softmax(x, cdim) if from_logits else x
    target = t if t.shape == x.shape else _onehot(t, x)
    per_sample = 0.5 * F.mse_loss(y, target, reduction="none").sum(cdim)
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return 0.5 * F.mse_loss(y, target, reduction="sum")
    return 0.5 * F.mse_loss(y, target, reduction="sum") / per_sample.numel()


def test_sse_mean_is_half_mse_sum_over_batch_not_mse_element_mean():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 10, generator=gen, dtype=torch.float64)
    t = torch.randint(0, 10, (8,), generator=gen)
    y, onehot = F.softmax(x, 1), F.one_hot(t, 10).double()
    expected = 0.5 * F.mse_loss(y, onehot, reduction="sum") / 8
    _close(sse_loss(x, t), expected, torch.float64)
    _close(SSELoss()(x, t), expected, torch.float64)
    # ... which is C/2 times F.mse_loss's element mean
    _close(sse_loss(x, t), 0.5 * 10 * F.mse_loss(y, onehot), torch.float64)


def test_sse_kdim_mean_divides_by_n_times_d():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 10, 7, generator=gen, dtype=torch.float64)
    t = torch.randint(0, 10, (4, 7), generator=gen)
    onehot = F.one_hot(t, 10).movedim(-1, 1).double()
    expected = 0.5 * F.mse_loss(F.softmax(x, 1), onehot, reduction="sum") / (4 * 7)
    _close(sse_loss(x, t), expected, torch.float64)


# --------------------------------------------------------------------------------------------
# 4b. MAE == F.l1_loss(softmax(x), onehot, reduction="sum") / N
# --------------------------------------------------------------------------------------------


def _mae_reference(x, t, reduction, from_logits):
    """MAE from torch's softmax and l1_loss: sum over classes, mean over samples."""
    cdim = _class_dim(x)
    y = F.softmax(x, cdim) if from_logits else x
    target = t if t.shape == x.shape else _onehot(t, x)
    per_sample = F.l1_loss(y, target, reduction="none").sum(cdim)
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return F.l1_loss(y, target, reduction="sum")
    return F.l1_loss(y, target, reduction="sum") / per_sample.numel()


def test_mae_mean_is_l1_sum_over_batch_not_l1_element_mean():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 10, generator=gen, dtype=torch.float64)
    t = torch.randint(0, 10, (8,), generator=gen)
    y, onehot = F.softmax(x, 1), F.one_hot(t, 10).double()
    expected = F.l1_loss(y, onehot, reduction="sum") / 8
    _close(mae_loss(x, t), expected, torch.float64)
    _close(MAELoss()(x, t), expected, torch.float64)
    # ... which is C times F.l1_loss's element mean, and 2 (1 - y_t) per sample
    _close(mae_loss(x, t), 10 * F.l1_loss(y, onehot), torch.float64)
    _close(mae_loss(x, t, reduction="none"), 2 * (1 - y[torch.arange(8), t]), torch.float64)


def test_mae_kdim_mean_divides_by_n_times_d():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 10, 7, generator=gen, dtype=torch.float64)
    t = torch.randint(0, 10, (4, 7), generator=gen)
    onehot = F.one_hot(t, 10).movedim(-1, 1).double()
    expected = F.l1_loss(F.softmax(x, 1), onehot, reduction="sum") / (4 * 7)
    _close(mae_loss(x, t), expected, torch.float64)


# SSE and MAE against their torch references: the Module and the function, every target kind,
# reduction, input kind and dtype
SOFTMAX_LOSSES = {
    "sse": (SSELoss, sse_loss, _sse_reference),
    "mae": (MAELoss, mae_loss, _mae_reference),
}


@pytest.mark.parametrize("name", list(SOFTMAX_LOSSES))
@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    shape=SHAPES,
    target_kind=st.sampled_from(["index", "soft", "onehot"]),
    reduction=st.sampled_from(REDUCTIONS),
    from_logits=st.booleans(),
    dtype=DTYPES,
    as_module=st.booleans(),
)
def test_sse_and_mae_match_their_softmax_reference(
    name, seed, shape, target_kind, reduction, from_logits, dtype, as_module
):
    module, function, reference = SOFTMAX_LOSSES[name]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=dtype)
    if not from_logits:  # probabilities, as the book feeds them
        x = x.softmax(_class_dim(x))
    x.requires_grad_()
    t = _make_target(target_kind, x, gen)
    expected = reference(x, t, reduction, from_logits)
    if as_module:
        actual = module(reduction=reduction, from_logits=from_logits)(x, t)
    else:
        actual = function(x, t, reduction=reduction, from_logits=from_logits)
    assert actual.dtype == dtype
    assert actual.shape == expected.shape
    _close(actual, expected, dtype)
    # MAE's |.| has a kink where y_k == t_k; random softmax outputs never sit on it
    upstream = torch.randn(expected.shape, generator=gen, dtype=dtype)
    _close(_grad(actual, x, upstream), _grad(expected, x, upstream), dtype)


# --------------------------------------------------------------------------------------------
# 5. gradcheck / gradgradcheck in float64
# --------------------------------------------------------------------------------------------

GEN = torch.Generator().manual_seed(5)
W4 = torch.rand(4, generator=GEN, dtype=torch.float64) + 0.1
IDX = torch.tensor([0, 1, 3])
IDX_IGNORED = torch.tensor([0, 1, 2])  # class 1 is ignore_index in one case below
PROBS = torch.rand(3, 4, generator=GEN, dtype=torch.float64).softmax(1)

CEE_GRAD_CASES = {
    "index": (IDX, {}),
    "weight+smoothing+ignore_index": (
        IDX_IGNORED,
        {"weight": W4, "label_smoothing": 0.2, "ignore_index": 1},
    ),
    "probabilities+weight+smoothing": (PROBS, {"weight": W4, "label_smoothing": 0.1}),
    "sum": (IDX, {"reduction": "sum"}),
    "none": (IDX, {"reduction": "none"}),
    "probs_input+index": (IDX, {"from_logits": False}),
    "probs_input+probabilities": (PROBS, {"from_logits": False, "reduction": "sum"}),
}
SSE_GRAD_CASES = {
    "index": (IDX, {}),
    "probabilities": (PROBS, {}),
    "none": (IDX, {"reduction": "none"}),
    "probs_input": (IDX, {"from_logits": False}),
    "probs_input+probabilities": (PROBS, {"from_logits": False, "reduction": "sum"}),
}


# |y_k - t_k| is not differentiable where y_k == t_k: softmax outputs lie strictly inside
# (0, 1) and probability inputs are drawn from [0.1, 0.9] below, so one-hot targets keep every
# y_k at least 0.1 away from t_k; the test asserts the distance for the soft targets too.
MAE_GRAD_CASES = {
    "index": (IDX, {}),
    "one-hot": (F.one_hot(IDX, 4).double(), {}),
    "probabilities": (PROBS, {}),
    "none": (IDX, {"reduction": "none"}),
    "sum": (IDX, {"reduction": "sum"}),
    "probs_input": (IDX, {"from_logits": False}),
    "probs_input+one-hot": (F.one_hot(IDX, 4).double(), {"from_logits": False, "reduction": "sum"}),
}


def _grad_input(options):
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    if options.get("from_logits") is False:
        x = torch.rand(3, 4, generator=gen, dtype=torch.float64) * 0.8 + 0.1  # in [0.1, 0.9]
    return x.requires_grad_()


@pytest.mark.parametrize(("target", "options"), CEE_GRAD_CASES.values(), ids=CEE_GRAD_CASES)
def test_cee_passes_gradcheck_and_gradgradcheck(target, options):
    x = _grad_input(options)
    fn = lambda inp: cee_loss(inp, target, **options)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize(("target", "options"), SSE_GRAD_CASES.values(), ids=SSE_GRAD_CASES)
def test_sse_passes_gradcheck_and_gradgradcheck(target, options):
    x = _grad_input(options)
    fn = lambda inp: sse_loss(inp, target, **options)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize(("target", "options"), MAE_GRAD_CASES.values(), ids=MAE_GRAD_CASES)
def test_mae_passes_gradcheck_and_gradgradcheck(target, options):
    x = _grad_input(options)
    y = x if options.get("from_logits") is False else F.softmax(x, 1)
    t = target if target.shape == x.shape else _onehot(target, x)
    assert (y - t).abs().min() > 1e-3  # far from the kink next to gradcheck's steps of 1e-6
    fn = lambda inp: mae_loss(inp, target, **options)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_mae_kdim_passes_gradcheck():
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[0, 3, 2], [2, 0, 1]])
    fn = lambda inp: mae_loss(inp, t)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_cee_kdim_passes_gradcheck():
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[0, 3, -100], [2, -100, 1]])
    fn = lambda inp: cee_loss(inp, t, weight=W4, label_smoothing=0.3)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


# --------------------------------------------------------------------------------------------
# 6. float16 / bfloat16 inputs
# --------------------------------------------------------------------------------------------

LOW_PRECISION = [torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", LOW_PRECISION)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("weighted_smoothed", [False, True], ids=["plain", "weight+smoothing"])
def test_cee_low_precision_matches_float32_reference(dtype, reduction, weighted_smoothed):
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(16, 10, generator=gen).to(dtype).requires_grad_()
    t = torch.randint(0, 10, (16,), generator=gen)
    weight, smoothing = None, 0.0
    if weighted_smoothed:
        weight, smoothing = (torch.rand(10, generator=gen) + 0.1).to(dtype), 0.1
    # the reference: torch in float32 on the same (upcast) values
    x32 = x.detach().float().requires_grad_()
    weight32 = None if weight is None else weight.float()
    expected = F.cross_entropy(
        x32, t, weight=weight32, reduction=reduction, label_smoothing=smoothing
    )
    actual = cee_loss(x, t, weight=weight, reduction=reduction, label_smoothing=smoothing)
    assert actual.dtype == dtype
    torch.testing.assert_close(actual, expected.to(dtype))  # the dtype's default tolerance
    g_actual = _grad(actual, x, torch.ones((), dtype=dtype))
    assert g_actual.dtype == dtype
    torch.testing.assert_close(g_actual, _grad(expected, x32, torch.ones(())).to(dtype))


@pytest.mark.parametrize("dtype", LOW_PRECISION)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize(
    ("loss_cls", "reference"),
    [(SSELoss, _sse_reference), (MAELoss, _mae_reference)],
    ids=["SSE", "MAE"],
)
def test_sse_and_mae_low_precision_match_float32_reference(dtype, reduction, loss_cls, reference):
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(16, 10, generator=gen).to(dtype).requires_grad_()
    t = torch.randint(0, 10, (16,), generator=gen)
    x32 = x.detach().float().requires_grad_()
    expected = reference(x32, t, reduction, from_logits=True)
    actual = loss_cls(reduction=reduction)(x, t)
    assert actual.dtype == dtype
    torch.testing.assert_close(actual, expected.to(dtype))
    g_actual = _grad(actual, x, torch.ones((), dtype=dtype))
    assert g_actual.dtype == dtype
    torch.testing.assert_close(g_actual, _grad(expected, x32, torch.ones(())).to(dtype))


# --------------------------------------------------------------------------------------------
# 7. torch.compile
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(
    UNDER_MUTATION, reason="make mutate: torch.compile cannot trace mutmut's trampolines"
)
@pytest.mark.parametrize("loss_cls", [CEELoss, SSELoss, MAELoss])
def test_compiled_loss_matches_eager_values_and_gradients(loss_cls):
    gen = torch.Generator().manual_seed(10)
    x = torch.randn(64, 10, generator=gen, requires_grad=True)
    t = torch.randint(0, 10, (64,), generator=gen)
    eager = loss_cls()(x, t)
    compiled = torch.compile(loss_cls(), fullgraph=True)(x, t)
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(_grad(compiled, x, torch.ones(())), _grad(eager, x, torch.ones(())))
    if loss_cls is CEELoss:  # and eager is torch's
        torch.testing.assert_close(eager, F.cross_entropy(x, t))


# --------------------------------------------------------------------------------------------
# 8. Bad input: the right exception, naming the argument and what was seen
# --------------------------------------------------------------------------------------------

X = torch.randn(4, 10)
T = torch.tensor([0, 1, 2, 3])
EVERY_FORM = pytest.mark.parametrize(
    "loss",
    [cee_loss, sse_loss, mae_loss, CEELoss(), SSELoss(), MAELoss()],
    ids=["cee_loss", "sse_loss", "mae_loss", "CEELoss", "SSELoss", "MAELoss"],
)


@EVERY_FORM
def test_target_batch_size_mismatch_is_rejected_naming_both_shapes(loss):
    message = r"target shape \(5,\) does not match input shape \(4, 10\)"
    with pytest.raises(ValueError, match=message):
        loss(X, torch.zeros(5, dtype=torch.long))


@EVERY_FORM
def test_float_index_target_is_rejected_naming_its_dtype(loss):
    with pytest.raises(ValueError, match=r"target of shape \(4,\).*integer dtype.*torch\.float32"):
        loss(X, torch.zeros(4))


@EVERY_FORM
@pytest.mark.parametrize("bad", [-1, 10])
def test_class_index_out_of_range_raises_index_error(loss, bad):
    t = torch.tensor([0, bad, 2, 3])
    with pytest.raises(
        IndexError, match=rf"target holds class index {bad}, out of range.*\[0, 9\]"
    ):
        loss(X, t)


def test_cee_negative_index_other_than_ignore_index_is_out_of_range():
    t = torch.tensor([0, -100, 2, 3])  # -100 is fine by default ...
    cee_loss(X, t)
    with pytest.raises(IndexError, match=r"class index -100.*ignore_index=-1"):
        cee_loss(X, t, ignore_index=-1)  # ... but not when another value is ignored


@pytest.mark.parametrize("loss_cls", [CEELoss, SSELoss, MAELoss])
def test_module_rejects_unknown_reduction(loss_cls):
    with pytest.raises(ValueError, match=r"reduction must be one of .*'none'.*got 'avg'"):
        loss_cls(reduction="avg")


@pytest.mark.parametrize("loss", [cee_loss, sse_loss, mae_loss])
def test_functional_rejects_unknown_reduction(loss):
    with pytest.raises(ValueError, match=r"reduction must be one of .*'mean'.*got 'avg'"):
        loss(X, T, reduction="avg")


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_label_smoothing_outside_unit_interval_is_rejected(value):
    with pytest.raises(ValueError, match=rf"label_smoothing must be in \[0, 1\], got {value}"):
        cee_loss(X, T, label_smoothing=value)
    with pytest.raises(ValueError, match=rf"label_smoothing must be in \[0, 1\], got {value}"):
        CEELoss(label_smoothing=value)


@pytest.mark.parametrize("value", [0, -1])
def test_non_positive_eps_is_rejected(value):
    with pytest.raises(ValueError, match=rf"eps must be > 0, got {value}"):
        cee_loss(X, T, from_logits=False, eps=value)
    with pytest.raises(ValueError, match=rf"eps must be > 0, got {value}"):
        CEELoss(eps=value)


def test_weight_of_wrong_length_is_rejected():
    message = r"weight must have one entry per class: expected length 10.*got 9"
    with pytest.raises(ValueError, match=message):
        cee_loss(X, T, weight=torch.ones(9))
    with pytest.raises(ValueError, match=message):  # the Module learns C on its first call
        CEELoss(weight=torch.ones(9))(X, T)


def test_two_dimensional_weight_is_rejected():
    message = r"weight must be a 1-D floating tensor.*got shape \(2, 5\)"
    with pytest.raises(ValueError, match=message):
        cee_loss(X, T, weight=torch.ones(2, 5))
    with pytest.raises(ValueError, match=message):
        CEELoss(weight=torch.ones(2, 5))


@pytest.mark.parametrize("loss", [cee_loss, sse_loss, mae_loss])
def test_integer_input_is_rejected(loss):
    with pytest.raises(ValueError, match=r"input must have a floating dtype, got torch\.int64"):
        loss(torch.zeros(4, 10, dtype=torch.long), T)


# --------------------------------------------------------------------------------------------
# 9. Written from primitives: torch's loss and softmax functions are never called
# --------------------------------------------------------------------------------------------

FORBIDDEN = ("cross_entropy", "nll_loss", "mse_loss", "l1_loss", "log_softmax", "softmax")


def _every_option_case():
    """(loss, input, target) for every loss with every option, float64."""
    gen = torch.Generator().manual_seed(11)
    logits = torch.randn(5, 4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    probs_in = torch.rand(5, 4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 4, (5, 3), generator=gen)
    index[0, 0] = -100
    soft = torch.rand(5, 4, 3, generator=gen, dtype=torch.float64).softmax(1)
    w = torch.rand(4, generator=gen, dtype=torch.float64) + 0.1
    cases = []
    for reduction in REDUCTIONS:
        for from_logits, x in ((True, logits), (False, probs_in)):
            cee = CEELoss(
                w, None, -100, None, reduction, label_smoothing=0.2, from_logits=from_logits
            )
            cases += [(cee, x, index), (cee, x, soft)]
            for loss_cls in (SSELoss, MAELoss):
                loss = loss_cls(reduction=reduction, from_logits=from_logits)
                cases += [(loss, x, index.clamp(min=0)), (loss, x, soft)]
    return cases


def test_losses_do_not_call_torch_loss_or_softmax_functions(monkeypatch):
    cases = _every_option_case()
    expected = [loss(x, t) for loss, x, t in cases]

    def forbidden(*args, **kwargs):
        raise AssertionError("losslab.losses must not call torch's loss/softmax functions")

    for name in (*FORBIDDEN, "nll_loss_nd", "nll_loss2d", "cross_entropy_loss"):
        for owner in (F, torch, torch.Tensor, torch._C._nn):
            if hasattr(owner, name):
                monkeypatch.setattr(owner, name, forbidden)
    with pytest.raises(AssertionError, match="must not call"):  # the patch is live
        F.cross_entropy(torch.zeros(1, 2), torch.tensor([0]))

    for (loss, x, t), before in zip(cases, expected, strict=True):
        out = loss(x, t)
        torch.testing.assert_close(out, before, rtol=1e-12, atol=1e-12, msg=repr(loss))
        out.sum().backward()


LOSS_FILES = sorted(Path(losslab.losses.__file__).parent.glob("*.py"))


def test_losses_source_code_names_no_torch_loss_function():
    # comments and strings (docstrings) may mention them; code may not
    assert len(LOSS_FILES) == 4, LOSS_FILES
    names = {
        tok.string
        for file in LOSS_FILES
        for tok in tokenize.generate_tokens(io.StringIO(file.read_text()).readline)
        if tok.type == tokenize.NAME
    }
    assert names.isdisjoint({*FORBIDDEN, "CrossEntropyLoss", "MSELoss", "NLLLoss", "L1Loss"})
    # the legacy size_average/reduce mapping is ours too, not torch's private module
    assert names.isdisjoint({"_reduction", "_Reduction", "legacy_get_string"})


# --------------------------------------------------------------------------------------------
# 10. Docstring examples run
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["cee", "outputs"])
def test_docstring_examples_pass(module):
    import importlib

    result = doctest.testmod(importlib.import_module(f"losslab.losses.{module}"))
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.skipif(UNDER_MUTATION, reason="make mutate: mutmut rewrites the sources it imports")
def test_the_losses_import_nothing_but_torch():
    imported = {
        line.split()[1].split(".")[0]
        for file in LOSS_FILES
        for line in file.read_text().splitlines()
        if line.startswith(("import ", "from "))
    }
    assert imported <= {"__future__", "torch", "warnings", "losslab"}, imported


# --------------------------------------------------------------------------------------------
# 11. CEELoss.weight is a buffer, as in nn.CrossEntropyLoss
# --------------------------------------------------------------------------------------------


def test_cee_weight_is_a_buffer_like_cross_entropy_loss():
    w = torch.rand(10) + 0.1
    ours, theirs = CEELoss(weight=w), nn.CrossEntropyLoss(weight=w)
    assert dict(ours.named_buffers()).keys() == dict(theirs.named_buffers()).keys() == {"weight"}
    assert list(ours.parameters()) == []
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    torch.testing.assert_close(ours.state_dict()["weight"], w)
    # a checkpoint of one loads into the other
    w2 = torch.rand(10) + 0.1
    ours.load_state_dict(nn.CrossEntropyLoss(weight=w2).state_dict())
    torch.testing.assert_close(ours.weight, w2)
    # no weight: nothing in the state dict, as in torch
    assert CEELoss().state_dict().keys() == nn.CrossEntropyLoss().state_dict().keys()


def test_cee_weight_moves_with_to():
    w = torch.rand(10) + 0.1
    loss = CEELoss(weight=w).to(torch.float64)
    assert loss.weight.dtype == torch.float64
    assert loss.to("meta").weight.device.type == "meta"
    # and the moved weight is used: value equals torch's in float64
    x = torch.randn(4, 10, dtype=torch.float64)
    loss = CEELoss(weight=w).double()
    _close(loss(x, T), F.cross_entropy(x, T, weight=w.double()), torch.float64)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_losses_on_cuda_match_torch():
    x = torch.randn(32, 10, 3, device="cuda", requires_grad=True)
    t = torch.randint(0, 10, (32, 3), device="cuda")
    t[0, 0] = -100
    w = torch.rand(10, device="cuda") + 0.1
    loss = CEELoss(weight=w, label_smoothing=0.1).to("cuda")
    expected = F.cross_entropy(x, t, weight=w, label_smoothing=0.1)
    actual = loss(x, t)
    assert actual.device.type == "cuda"
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        _grad(actual, x, torch.ones((), device="cuda")),
        _grad(expected, x, torch.ones((), device="cuda")),
        rtol=1e-5,
        atol=1e-6,
    )
    tc = t.clamp(min=0)
    expected_sse = _sse_reference(x, tc, "mean", from_logits=True)
    torch.testing.assert_close(sse_loss(x, tc), expected_sse, rtol=1e-5, atol=1e-6)
    with pytest.raises(IndexError, match="class index 10"):
        cee_loss(x, tc + 10)


def test_ignore_index_with_probability_targets_is_rejected_like_torch():
    x = torch.randn(4, 5)
    p = torch.softmax(torch.randn(4, 5), dim=1)
    with pytest.raises(RuntimeError):
        F.cross_entropy(x, p, ignore_index=0)
    with pytest.raises(ValueError, match=r"ignore_index=0 .*probability"):
        cee_loss(x, p, ignore_index=0)


def test_integer_target_of_the_input_shape_is_rejected_as_non_floating_probabilities():
    x = torch.randn(4, 10)
    onehot = F.one_hot(torch.tensor([1, 2, 3, 4]), 10)  # int64
    with pytest.raises(ValueError, match=r"must be floating, got torch.int64"):
        cee_loss(x, onehot)
    with pytest.raises(ValueError, match=r"must be floating, got torch.int64"):
        sse_loss(x, onehot)
    with pytest.raises(ValueError, match=r"must be floating, got torch.int64"):
        mae_loss(x, onehot)


# --------------------------------------------------------------------------------------------
# 12. Cases mutation testing found untested (make mutate)
# --------------------------------------------------------------------------------------------


def test_bad_types_are_named_in_the_message():
    # a wrong type is a TypeError in torch's words (section 14); a wrong shape a ValueError
    with pytest.raises(
        TypeError, match=r"argument 'input' \(position 1\) must be Tensor, not list"
    ):
        cee_loss([[0.0, 1.0]], T)
    with pytest.raises(
        ValueError,
        match=r"^input must have shape \(C,\), \(N, C\) or \(N, C, d1, \.\.\.\), got a 0-dim tensor$",
    ):
        sse_loss(torch.tensor(1.0), T)
    with pytest.raises(
        TypeError, match=r"argument 'target' \(position 2\) must be Tensor, not list"
    ):
        cee_loss(X, [1, 2])


def test_a_boolean_index_target_is_rejected():
    with pytest.raises(ValueError, match=r"integer dtype .*got torch\.bool"):
        cee_loss(torch.randn(4, 10), torch.tensor([True, False, True, False]))


def test_out_of_range_message_names_the_ignore_index_each_loss_skips():
    for loss in (cee_loss, sse_loss, mae_loss):
        with pytest.raises(IndexError, match=r"must be in \[0, 9\] or equal ignore_index=-100$"):
            loss(torch.randn(2, 10), torch.tensor([0, 10]))
        with pytest.raises(IndexError, match=r"class index -100, .* or equal ignore_index=3$"):
            loss(torch.randn(2, 10), torch.tensor([0, -100]), ignore_index=3)


def test_label_smoothing_of_one_is_allowed_like_torch():
    x = torch.randn(4, 10, dtype=torch.float64)
    _close(
        cee_loss(x, T[:4], label_smoothing=1.0),
        F.cross_entropy(x, T[:4], label_smoothing=1.0),
        torch.float64,
    )


def test_the_module_passes_its_eps_on():
    y = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    t = torch.tensor([0, 1])
    assert CEELoss(from_logits=False, eps=0.1)(y, t).item() == pytest.approx(
        cee_loss(y, t, from_logits=False, eps=0.1).item()
    )
    assert CEELoss(from_logits=False, eps=0.1)(y, t).item() == pytest.approx(
        -(math.log(0.1) + math.log(0.6)) / 2
    )


def test_each_sample_is_shifted_by_its_own_maximum():
    # one row near +1e4, one near -1e4: a shift by the batch's maximum would underflow row 2
    x = torch.tensor([[1e4, 0.0], [-1e4, -1e4 + 1.0]])
    t = torch.tensor([0, 1])
    torch.testing.assert_close(
        cee_loss(x, t, reduction="none"), F.cross_entropy(x, t, reduction="none")
    )


# --------------------------------------------------------------------------------------------
# 13. Signatures: CEE takes torch's arguments in torch's order; SSE/MAE options keyword-only
# --------------------------------------------------------------------------------------------

KEYWORD_ONLY = inspect.Parameter.KEYWORD_ONLY


def _parameters(fn) -> list[tuple]:
    """``(name, kind, default)`` of each parameter, in order."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(CEELoss, nn.CrossEntropyLoss), (cee_loss, F.cross_entropy)],
    ids=["CEELoss", "cee_loss"],
)
def test_cee_takes_torch_parameters_in_torch_order_then_keyword_only_options(ours, theirs):
    our_parameters, torch_parameters = _parameters(ours), _parameters(theirs)
    assert our_parameters[: len(torch_parameters)] == torch_parameters
    assert our_parameters[len(torch_parameters) :] == [
        ("from_logits", KEYWORD_ONLY, True),
        ("eps", KEYWORD_ONLY, 1e-7),
    ]


def test_cee_positional_arguments_mean_what_they_mean_in_torch():
    gen = torch.Generator().manual_seed(13)
    x = torch.randn(6, 10, generator=gen, dtype=torch.float64)
    t = torch.tensor([3, 1, 3, 0, 9, 5])
    w = torch.rand(10, generator=gen, dtype=torch.float64) + 0.1
    loss = CEELoss(w, None, 3)
    assert loss.ignore_index == 3
    _close(loss(x, t), nn.CrossEntropyLoss(w, None, 3)(x, t), torch.float64)
    args = (w, None, 3, None, "sum", 0.1)
    _close(cee_loss(x, t, *args), F.cross_entropy(x, t, *args), torch.float64)
    _close(CEELoss(*args)(x, t), nn.CrossEntropyLoss(*args)(x, t), torch.float64)


@pytest.mark.parametrize("fn", [SSELoss, MAELoss, sse_loss, mae_loss])
def test_sse_and_mae_options_are_keyword_only(fn):
    options = [p for p in _parameters(fn) if p[0] not in ("input", "target")]
    assert options == [
        ("reduction", KEYWORD_ONLY, "mean"),
        ("from_logits", KEYWORD_ONLY, True),
        ("ignore_index", KEYWORD_ONLY, -100),
    ]
    with pytest.raises(TypeError):  # not drop-ins for nn.MSELoss / nn.L1Loss: no positions
        fn("sum") if isinstance(fn, type) else fn(X, T, "sum")


# --------------------------------------------------------------------------------------------
# 14. The deprecated size_average / reduce, as torch reads them (values and warning)
# --------------------------------------------------------------------------------------------

LEGACY = [
    (s, r) for s in (None, True, False) for r in (None, True, False) if (s, r) != (None, None)
]


def _warned(make):
    """``(result, [(category, message)], [warning records])`` of ``make()``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = make()
    return result, [(w.category, str(w.message)) for w in caught], caught


@pytest.mark.parametrize(("size_average", "reduce"), LEGACY)
def test_legacy_size_average_and_reduce_give_torch_reduction_and_warning(size_average, reduce):
    from torch.nn import _reduction  # torch's private mapping: the reference here, not in losslab

    expected = _reduction.legacy_get_string(size_average, reduce, emit_warning=False)
    options = {"size_average": size_average, "reduce": reduce, "reduction": "sum"}
    ours, our_warnings, records = _warned(lambda: CEELoss(**options))
    theirs, their_warnings, _ = _warned(lambda: nn.CrossEntropyLoss(**options))
    # the legacy arguments replace reduction, as in torch
    assert ours.reduction == theirs.reduction == expected
    assert our_warnings == their_warnings
    assert their_warnings[0][1] == (
        f"size_average and reduce args will be deprecated, please use reduction='{expected}' "
        "instead."
    )
    if not UNDER_MUTATION:  # mutmut's trampolines add a frame between the caller and the loss
        assert records[0].filename == __file__  # the warning points at the caller's line

    gen = torch.Generator().manual_seed(14)
    x = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    t = torch.tensor([0, 4, -100, 2, 2, 1])
    _close(ours(x, t), theirs(x, t), torch.float64)
    legacy = {"size_average": size_average, "reduce": reduce}
    value, our_warnings, records = _warned(lambda: cee_loss(x, t, **legacy))
    expected_value, their_warnings, _ = _warned(lambda: F.cross_entropy(x, t, **legacy))
    _close(value, expected_value, torch.float64)
    assert our_warnings == their_warnings
    if not UNDER_MUTATION:
        assert records[0].filename == __file__


def test_no_legacy_argument_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CEELoss(reduction="sum")
        cee_loss(X, T, reduction="none")


# --------------------------------------------------------------------------------------------
# 15. Result dtypes follow torch: autocast, type promotion, plain low precision
# --------------------------------------------------------------------------------------------

W10 = torch.rand(10, generator=torch.Generator().manual_seed(15)) + 0.1


def _w10(x: torch.Tensor) -> torch.Tensor:
    # torch wants the weight in the dtype it computes in: float32 under autocast, else x's
    return W10.to(x.device, torch.promote_types(x.dtype, torch.float32))


# name -> (our loss, torch's reference, target kind); the references are torch's own functions
DTYPE_CASES = {
    "CEE index": (cee_loss, F.cross_entropy, "index"),
    "CEE index+weight+smoothing": (
        lambda x, t: cee_loss(x, t, weight=_w10(x), label_smoothing=0.1),
        lambda x, t: F.cross_entropy(x, t, weight=_w10(x), label_smoothing=0.1),
        "index",
    ),
    "CEE probabilities": (cee_loss, F.cross_entropy, "soft"),
    "SSE index": (sse_loss, lambda x, t: _sse_reference(x, t, "mean", True), "index"),
    "SSE probabilities": (sse_loss, lambda x, t: _sse_reference(x, t, "mean", True), "soft"),
    "MAE index": (mae_loss, lambda x, t: _mae_reference(x, t, "mean", True), "index"),
    "MAE probabilities": (mae_loss, lambda x, t: _mae_reference(x, t, "mean", True), "soft"),
}
FLOATS = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def _default_tolerance(dtype: torch.dtype) -> dict[str, float]:
    """torch.testing's default (rtol, atol) for ``dtype``."""
    return {
        torch.float16: {"rtol": 1e-3, "atol": 1e-5},
        torch.bfloat16: {"rtol": 1.6e-2, "atol": 1e-5},
        torch.float32: {"rtol": 1.3e-6, "atol": 1e-5},
        torch.float64: {"rtol": 1e-7, "atol": 1e-7},
    }[dtype]


def _check_autocast_case(case, dtype, device, autocast_dtype):
    ours, reference, kind = DTYPE_CASES[case]
    gen = torch.Generator().manual_seed(16)
    x = torch.randn(16, 10, generator=gen).to(device, dtype).requires_grad_()
    t = _make_target(kind, x.detach().cpu(), gen).to(device)
    with torch.autocast(device, dtype=autocast_dtype):
        expected = reference(x, t)
        actual = ours(x, t)
    assert actual.dtype == expected.dtype  # float32 for float16/bfloat16 inputs, see below
    if dtype in LOW_PRECISION:
        assert expected.dtype == torch.float32  # autocast's float32 list, whatever its dtype
    # torch's cross_entropy runs in float32 under autocast as ours does; the SSE/MAE references
    # compose softmax, which CPU autocast leaves in low precision: compare at the input's
    # dtype's tolerance there, and against float64 on the same values to about float32's
    tolerance = _default_tolerance(expected.dtype if case.startswith("CEE") else dtype)
    torch.testing.assert_close(actual, expected, **tolerance)
    t64 = t.double() if t.is_floating_point() else t
    exact = reference(x.detach().double(), t64)
    torch.testing.assert_close(actual.double(), exact, rtol=1e-5, atol=1e-6)
    upstream = torch.ones((), device=device)
    g_actual, g_expected = _grad(actual, x, upstream), _grad(expected, x, upstream)
    assert g_actual.dtype == g_expected.dtype == dtype
    torch.testing.assert_close(g_actual, g_expected, **_default_tolerance(dtype))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", DTYPE_CASES)
def test_under_cpu_autocast_bfloat16_dtype_and_value_follow_torch(case, dtype):
    _check_autocast_case(case, dtype, "cpu", torch.bfloat16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA autocast needs a CUDA device")
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", DTYPE_CASES)
def test_under_cuda_autocast_float16_dtype_and_value_follow_torch(case, dtype):
    _check_autocast_case(case, dtype, "cuda", torch.float16)


def test_autocast_off_or_unavailable_leaves_the_dtype_alone():
    x = torch.randn(4, 10).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
        assert cee_loss(x, T).dtype == F.cross_entropy(x, T).dtype == torch.bfloat16
    # meta tensors: no autocast for that device (asking torch.is_autocast_enabled would raise)
    p = torch.rand(4, 10).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = cee_loss(x.to("meta"), p.to("meta"))
    assert out.dtype == F.cross_entropy(x.to("meta"), p.to("meta")).dtype == torch.bfloat16


@pytest.mark.parametrize("target_dtype", [*FLOATS, torch.long], ids=str)
@pytest.mark.parametrize("input_dtype", FLOATS, ids=str)
@pytest.mark.parametrize("case", ["CEE", "SSE", "MAE"])
def test_result_dtype_follows_torch_type_promotion(case, input_dtype, target_dtype):
    gen = torch.Generator().manual_seed(17)
    x = torch.randn(8, 10, generator=gen).to(input_dtype)
    if target_dtype == torch.long:  # index targets: the input's dtype, bfloat16 included
        ours, reference, _ = DTYPE_CASES[f"{case} index"]
        t = torch.randint(0, 10, (8,), generator=gen)
        least_precise = input_dtype
    else:  # probabilities: input and target dtypes promote (float16 + float32 -> float32)
        ours, reference, _ = DTYPE_CASES[f"{case} probabilities"]
        t = torch.randn(8, 10, generator=gen).softmax(1).to(target_dtype)
        least_precise = max(input_dtype, target_dtype, key=lambda d: torch.finfo(d).eps)
    actual, expected = ours(x, t), reference(x, t)
    assert actual.dtype == expected.dtype
    # values: torch's own at the least precise dtype's tolerance (it computes in that dtype) ...
    torch.testing.assert_close(
        actual.double(), expected.double(), **_default_tolerance(least_precise)
    )
    # ... and float64 on the same values at the result dtype's (ours computes in >= float32)
    t64 = t.double() if t.is_floating_point() else t
    exact = reference(x.double(), t64).to(actual.dtype)
    torch.testing.assert_close(actual, exact)


# --------------------------------------------------------------------------------------------
# 16. Wrong argument types: TypeError in torch's words
# --------------------------------------------------------------------------------------------

TYPE_ERROR_CASES = {
    "numpy input": ((X.numpy(), T), {}),
    "list input": ((X.tolist(), T), {}),
    "list target": ((X, T.tolist()), {}),
    "None target": ((X, None), {}),
    "list weight": ((X, T), {"weight": [1.0] * 10}),
}


@pytest.mark.parametrize(("args", "kwargs"), TYPE_ERROR_CASES.values(), ids=TYPE_ERROR_CASES)
def test_cee_wrong_argument_type_raises_torch_type_error_naming_cee_loss(args, kwargs):
    with pytest.raises(Exception) as theirs:  # noqa: PT011 - the class is what we compare
        F.cross_entropy(*args, **kwargs)
    with pytest.raises(Exception) as ours:  # noqa: PT011
        cee_loss(*args, **kwargs)
    assert ours.type is theirs.type is TypeError
    assert str(ours.value) == str(theirs.value).replace("cross_entropy_loss()", "cee_loss()")
    if not kwargs:  # and through the modules
        with pytest.raises(TypeError) as theirs:
            nn.CrossEntropyLoss()(*args)
        with pytest.raises(TypeError) as ours:
            CEELoss()(*args)
        assert str(ours.value) == str(theirs.value).replace("cross_entropy_loss()", "cee_loss()")


def test_cee_module_weight_of_wrong_type_raises_torch_type_error():
    with pytest.raises(TypeError) as theirs:
        nn.CrossEntropyLoss(weight=[1.0] * 5)
    with pytest.raises(TypeError) as ours:
        CEELoss(weight=[1.0] * 5)
    assert str(ours.value) == str(theirs.value)
    assert "cannot assign 'list' object to buffer 'weight'" in str(ours.value)


@pytest.mark.parametrize(("name", "loss"), [("sse_loss", sse_loss), ("mae_loss", mae_loss)])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((X.numpy(), T), "argument 'input' (position 1) must be Tensor, not numpy.ndarray"),
        ((X, T.tolist()), "argument 'target' (position 2) must be Tensor, not list"),
    ],
    ids=["numpy input", "list target"],
)
def test_sse_and_mae_wrong_argument_type_raises_type_error_in_cross_entropy_words(
    name, loss, args, message
):
    # F.mse_loss / F.l1_loss fail by accident here (AttributeError: 'list' object has no
    # attribute 'size'; TypeError: 'int' object is not callable); we say what cross_entropy says
    with pytest.raises(TypeError) as raised:
        loss(*args)
    assert str(raised.value) == f"{name}(): {message}"


# --------------------------------------------------------------------------------------------
# 17. An input with zero classes
# --------------------------------------------------------------------------------------------


def _zero_class_cases():
    """(input shape, probability target, all-ignored index target) with C = 0."""
    return [
        ((3, 0), torch.zeros(3, 0), torch.full((3,), -100)),
        ((0,), torch.zeros(0), torch.tensor(-100)),
        ((0, 0), torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)),
    ]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", _zero_class_cases(), ids=["(3,0)", "(0,)", "(0,0)"])
@pytest.mark.parametrize("target_kind", ["probabilities", "ignored index"])
def test_cee_with_zero_classes_gives_what_cross_entropy_gives(reduction, case, target_kind):
    shape, probabilities, ignored = case
    t = probabilities if target_kind == "probabilities" else ignored
    x = torch.zeros(shape, requires_grad=True)
    expected = F.cross_entropy(x, t, reduction=reduction)
    actual = cee_loss(x, t, reduction=reduction)
    torch.testing.assert_close(actual, expected, equal_nan=True)
    # what torch gives: 0 per sample, so a sum of 0 and a mean of 0 / 0
    assert expected.isnan() if reduction == "mean" else (expected == 0).all()
    upstream = torch.ones_like(expected)
    torch.testing.assert_close(_grad(actual, x, upstream), _grad(expected, x, upstream))


def test_cee_with_zero_classes_refuses_an_index_like_torch():
    x, t = torch.zeros(3, 0), torch.zeros(3, dtype=torch.long)
    with pytest.raises(IndexError, match="out of bounds"):
        F.cross_entropy(x, t)
    with pytest.raises(
        IndexError, match=r"class index 0.*0 classes, so only ignore_index=-100 is allowed$"
    ):
        cee_loss(x, t)
    # torch fails for a K-dim input with C = 0 inside its kernel (RuntimeError "size mismatch",
    # ignored targets or not); ours stays consistent with the 2-D case
    with pytest.raises(IndexError, match="0 classes"):
        cee_loss(torch.zeros(3, 0, 2), torch.zeros(3, 2, dtype=torch.long))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    ("loss", "reference"), [(sse_loss, _sse_reference), (mae_loss, _mae_reference)]
)
def test_sse_and_mae_with_zero_classes_follow_their_references(loss, reference, reduction):
    x, p = torch.zeros(3, 0, requires_grad=True), torch.zeros(3, 0)
    expected = reference(x, p, reduction, from_logits=True)  # 0 per sample: a sum of nothing
    actual = loss(x, p, reduction=reduction)
    torch.testing.assert_close(actual, expected)
    assert _grad(actual, x, torch.ones_like(actual)).shape == (3, 0)
    with pytest.raises(IndexError, match=r"0 classes, so only ignore_index=-100 is allowed$"):
        loss(x, torch.zeros(3, dtype=torch.long))


def test_a_single_class_of_huge_logits_gives_torchs_zero_loss():
    """One class: log-softmax is 0 whatever the logit; unshifted, exp(1000) would overflow."""
    x, t = torch.full((3, 1), 1000.0), torch.zeros(3, dtype=torch.long)
    expected = F.cross_entropy(x, t)
    assert expected.item() == 0.0
    assert torch.equal(cee_loss(x, t), expected)


def test_a_ruled_out_class_and_an_ignored_row_give_torchs_finite_loss():
    """A logit of -inf (a class ruled out), on an ignored row's class 1 too: the ruled-out
    class contributes nothing and the ignored row nothing, as in torch."""
    x = torch.tensor([[2.0, -math.inf, 0.5], [0.1, -math.inf, 0.3], [1.0, 2.0, 3.0]])
    t = torch.tensor([0, -100, 2])
    expected = F.cross_entropy(x, t)
    assert math.isfinite(expected.item())
    torch.testing.assert_close(cee_loss(x, t), expected)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_an_ignored_row_of_minus_inf_logits_counts_nothing_as_in_torch(label_smoothing, reduction):
    """An ignored row adds nothing, whatever its logits: -inf there (on the class the gather
    reads for it, and with label smoothing on every class) is no NaN; a counted row's -inf on
    its own class is inf, as in torch."""
    x = torch.tensor([[2.0, -math.inf, 0.5], [-math.inf, -math.inf, 0.3], [1.0, 2.0, 3.0]])
    t = torch.tensor([0, -100, 2])
    for weight in (None, torch.tensor([1.0, 2.0, 0.5])):
        expected = F.cross_entropy(
            x, t, weight=weight, reduction=reduction, label_smoothing=label_smoothing
        )
        got = cee_loss(x, t, weight=weight, reduction=reduction, label_smoothing=label_smoothing)
        assert not got.isnan().any()
        torch.testing.assert_close(got, expected)
