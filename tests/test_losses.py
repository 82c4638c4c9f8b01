"""Tests for losslab.losses against independent references.

References are torch's own functions (``F.cross_entropy``, ``F.nll_loss``, ``F.mse_loss``,
``F.softmax``) and hand-worked numbers from *Deep Learning from Scratch*, ch. 4 - never our own
functions. Generated inputs come from hypothesis (a seed and shape parameters, turned into
tensors with a ``torch.Generator``), as torchmetrics' test harness does.
"""

from __future__ import annotations

import doctest
import io
import math
import tokenize
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

import losslab.losses
from losslab import CEELoss, SSELoss, cee_loss, sse_loss

torch.set_num_threads(1)

REDUCTIONS = ("none", "mean", "sum")
# (rtol, atol) per dtype for comparisons with torch's kernels
TOL = {torch.float64: (1e-12, 1e-12), torch.float32: (1e-6, 1e-6)}


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
def test_sse_matches_softmax_mse_reference(
    seed, shape, target_kind, reduction, from_logits, dtype, as_module
):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=dtype)
    if not from_logits:  # probabilities, as the book feeds them
        x = x.softmax(_class_dim(x))
    x.requires_grad_()
    t = _make_target(target_kind, x, gen)
    expected = _sse_reference(x, t, reduction, from_logits)
    if as_module:
        actual = SSELoss(reduction=reduction, from_logits=from_logits)(x, t)
    else:
        actual = sse_loss(x, t, reduction=reduction, from_logits=from_logits)
    assert actual.dtype == dtype
    assert actual.shape == expected.shape
    _close(actual, expected, dtype)
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


def _grad_input(options):
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    if options.get("from_logits") is False:
        x = torch.rand(3, 4, generator=gen, dtype=torch.float64) + 0.1  # positive
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
def test_sse_low_precision_matches_float32_reference(dtype, reduction):
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(16, 10, generator=gen).to(dtype).requires_grad_()
    t = torch.randint(0, 10, (16,), generator=gen)
    x32 = x.detach().float().requires_grad_()
    expected = _sse_reference(x32, t, reduction, from_logits=True)
    actual = SSELoss(reduction=reduction)(x, t)
    assert actual.dtype == dtype
    torch.testing.assert_close(actual, expected.to(dtype))
    g_actual = _grad(actual, x, torch.ones((), dtype=dtype))
    assert g_actual.dtype == dtype
    torch.testing.assert_close(g_actual, _grad(expected, x32, torch.ones(())).to(dtype))


# --------------------------------------------------------------------------------------------
# 7. torch.compile
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("loss_cls", [CEELoss, SSELoss])
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
    [cee_loss, sse_loss, CEELoss(), SSELoss()],
    ids=["cee_loss", "sse_loss", "CEELoss", "SSELoss"],
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


@pytest.mark.parametrize(
    "make", [lambda: CEELoss(reduction="avg"), lambda: SSELoss(reduction="avg")], ids=["CEE", "SSE"]
)
def test_module_rejects_unknown_reduction(make):
    with pytest.raises(ValueError, match=r"reduction must be one of .*'none'.*got 'avg'"):
        make()


@pytest.mark.parametrize("loss", [cee_loss, sse_loss])
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


@pytest.mark.parametrize("loss", [cee_loss, sse_loss])
def test_integer_input_is_rejected(loss):
    with pytest.raises(ValueError, match=r"input must have a floating dtype, got torch\.int64"):
        loss(torch.zeros(4, 10, dtype=torch.long), T)


# --------------------------------------------------------------------------------------------
# 9. Written from primitives: torch's loss and softmax functions are never called
# --------------------------------------------------------------------------------------------

FORBIDDEN = ("cross_entropy", "nll_loss", "mse_loss", "log_softmax", "softmax")


def _every_option_case():
    """(loss, input, target) for both losses with every option, float64."""
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
            cee = CEELoss(w, -100, reduction, label_smoothing=0.2, from_logits=from_logits)
            sse = SSELoss(reduction, from_logits=from_logits)
            cases += [(cee, x, index), (cee, x, soft), (sse, x, index.clamp(min=0)), (sse, x, soft)]
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


def test_losses_source_code_names_no_torch_loss_function():
    # comments and strings (docstrings) may mention them; code may not
    source = Path(losslab.losses.__file__).read_text()
    names = {
        tok.string
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.NAME
    }
    assert names.isdisjoint({*FORBIDDEN, "CrossEntropyLoss", "MSELoss", "NLLLoss"})


# --------------------------------------------------------------------------------------------
# 10. Docstring examples run
# --------------------------------------------------------------------------------------------


def test_docstring_examples_pass():
    result = doctest.testmod(losslab.losses)
    assert result.attempted > 0
    assert result.failed == 0


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


# --------------------------------------------------------------------------------------------
# 12. Cases mutation testing found untested (make mutate)
# --------------------------------------------------------------------------------------------


def test_bad_types_are_named_in_the_message():
    with pytest.raises(ValueError, match=r"input must be a torch\.Tensor, got list"):
        cee_loss([[0.0, 1.0]], T)
    with pytest.raises(ValueError, match=r"got a 0-dim tensor"):
        sse_loss(torch.tensor(1.0), T)
    with pytest.raises(ValueError, match=r"target must be a torch\.Tensor, got list"):
        cee_loss(X, [1, 2])


def test_a_boolean_index_target_is_rejected():
    with pytest.raises(ValueError, match=r"integer dtype .*got torch\.bool"):
        cee_loss(torch.randn(4, 10), torch.tensor([True, False, True, False]))


def test_out_of_range_message_names_ignore_index_only_where_there_is_one():
    with pytest.raises(IndexError, match=r"must be in \[0, 9\] or equal ignore_index=-100$"):
        cee_loss(torch.randn(2, 10), torch.tensor([0, 10]))
    with pytest.raises(IndexError, match=r"must be in \[0, 9\]$"):
        sse_loss(torch.randn(2, 10), torch.tensor([0, 10]))


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
