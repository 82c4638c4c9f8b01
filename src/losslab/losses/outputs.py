"""Losses on the softmax outputs: sum of squares (:func:`sse_loss`, :class:`SSELoss`) and mean
absolute error (:func:`mae_loss`, :class:`MAELoss`), with one-hot or probability targets (torch
only)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from losslab.losses._common import (
    _autocast_float32,
    _check_indices,
    _check_options,
    _check_tensor,
    _class_dim,
    _compute_dtype,
    _is_probability_target,
    _reduce,
    _result_dtype,
    _shifted_scores,
)

__all__ = ["MAELoss", "SSELoss", "mae_loss", "sse_loss"]


def _outputs_and_targets(
    function: str,
    input: Tensor,
    target: Tensor,
    reduction: str,
    from_logits: bool,
    ignore_index: int,
) -> tuple[Tensor, Tensor, int, torch.dtype, Tensor | None]:
    """The checked arguments of SSE and MAE as ``(y, t, class_dim, result_dtype, counted)``.

    ``y`` is ``softmax(input)`` (``from_logits=True``) or ``input``, ``t`` the probability or
    one-hot target; both in the compute dtype and of the input's shape. ``counted``: for index
    targets, the samples whose target is not ``ignore_index`` (None for probability targets).
    """
    _check_tensor(input, function, "input", 1)
    _check_tensor(target, function, "target", 2)
    _check_options(reduction)
    dim = _class_dim(input)
    is_prob = _is_probability_target(input, target, dim)
    counted = None
    if not is_prob:
        _check_indices(target, input.shape[dim], ignore_index)
        counted = target != ignore_index
        target = target.masked_fill(~counted, 0)  # any class: the row counts nothing
    elif ignore_index >= 0:  # as F.cross_entropy: only index targets can be ignored
        raise ValueError(
            f"ignore_index={ignore_index} is not supported with class-probability targets "
            f"(target of the input's shape {tuple(input.shape)}); leave it at -100"
        )

    input, target = _autocast_float32(input), _autocast_float32(target)
    out_dtype = _result_dtype(input, target, is_prob)
    x = input.to(_compute_dtype(out_dtype))
    if from_logits:
        z, log_norm = _shifted_scores(x, dim)
        y = (z - log_norm).exp()
    else:
        y = x
    if is_prob:
        t = target.to(x.dtype)
    else:  # out of place: torch.func's vmap batches it
        t = torch.zeros_like(y).scatter(dim, target.long().unsqueeze(dim), 1.0)
    return y, t, dim, out_dtype, counted


def _reduce_counted(loss: Tensor, reduction: str, counted: Tensor | None) -> Tensor:
    """An ignored sample adds 0, and the mean is over the counted samples (as torch's losses
    with ``ignore_index``)."""
    if counted is None:
        return _reduce(loss, reduction)
    loss = loss.masked_fill(~counted, 0.0)
    return _reduce(loss, reduction, counted.sum().to(loss.dtype))


def sse_loss(
    input: Tensor,
    target: Tensor,
    *,
    reduction: str = "mean",
    from_logits: bool = True,
    ignore_index: int = -100,
) -> Tensor:
    r"""Sum of squares for error :math:`E = \frac{1}{2} \sum_k (y_k - t_k)^2`, per sample.

    With ``from_logits=True`` (default) ``y = softmax(input)`` over the class dimension; with
    ``from_logits=False`` ``input`` is ``y`` itself. Index targets are turned into one-hot.

    Not a drop-in for ``F.mse_loss``: ``reduction="mean"`` divides the summed loss by the number
    of samples ``N`` (the book's ``/ batch_size``), **not** by the number of elements as
    ``F.mse_loss`` does::

        sse_loss(x, t) == 0.5 * F.mse_loss(softmax(x), onehot(t), reduction="sum") / N
                       == 0.5 * C * F.mse_loss(softmax(x), onehot(t))

    Args:
        input: scores or probabilities, ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dk)``.
        target: class indices (integer, input's shape without the class dimension, values in
            ``[0, C)``) or class probabilities / one-hot (floating, input's shape).
        reduction: ``"none"`` (per-sample loss), ``"mean"`` (per-sample mean, over the samples
            not ignored) or ``"sum"``.
        from_logits: whether ``input`` is scores (True) or probabilities (False).
        ignore_index: index target value that contributes nothing (index targets only), as in
            ``F.cross_entropy``.

    Returns:
        A scalar, or the per-sample losses (input's shape without the class dimension) with
        ``reduction="none"``; dtype as described in the module docstring.

    Example:
        >>> y = torch.tensor([[0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0]])
        >>> round(sse_loss(y, torch.tensor([2]), from_logits=False).item(), 4)
        0.0975
    """
    y, t, dim, out_dtype, counted = _outputs_and_targets(
        "sse_loss", input, target, reduction, from_logits, ignore_index
    )
    loss = 0.5 * (y - t).square().sum(dim)
    return _reduce_counted(loss, reduction, counted).to(out_dtype)


def mae_loss(
    input: Tensor,
    target: Tensor,
    *,
    reduction: str = "mean",
    from_logits: bool = True,
    ignore_index: int = -100,
) -> Tensor:
    r"""Mean absolute error :math:`E = \sum_k |y_k - t_k|`, per sample.

    The label-noise-robust loss of Ghosh, Kumar & Sastry (AAAI 2017): with a one-hot target and
    ``y`` summing to 1 it is :math:`2 (1 - y_c)`, bounded, so a wrong label costs at most 2.
    With ``from_logits=True`` (default) ``y = softmax(input)`` over the class dimension; with
    ``from_logits=False`` ``input`` is ``y`` itself. Index targets are turned into one-hot.

    Not a drop-in for ``F.l1_loss``: the absolute errors are summed over classes and
    ``reduction="mean"`` divides by the number of samples ``N``, not by the number of elements::

        mae_loss(x, t) == F.l1_loss(softmax(x), onehot(t), reduction="sum") / N
                       == C * F.l1_loss(softmax(x), onehot(t))

    Args:
        input: scores or probabilities, ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dk)``.
        target: class indices (integer, input's shape without the class dimension, values in
            ``[0, C)``) or class probabilities / one-hot (floating, input's shape).
        reduction: ``"none"`` (per-sample loss), ``"mean"`` (per-sample mean, over the samples
            not ignored) or ``"sum"``.
        from_logits: whether ``input`` is scores (True) or probabilities (False).
        ignore_index: index target value that contributes nothing (index targets only), as in
            ``F.cross_entropy``.

    Returns:
        A scalar, or the per-sample losses (input's shape without the class dimension) with
        ``reduction="none"``; dtype as described in the module docstring.

    Example:
        >>> y = torch.tensor([[0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0]])
        >>> round(mae_loss(y, torch.tensor([2]), from_logits=False).item(), 4)  # 2 * (1 - 0.6)
        0.8
    """
    y, t, dim, out_dtype, counted = _outputs_and_targets(
        "mae_loss", input, target, reduction, from_logits, ignore_index
    )
    loss = (y - t).abs().sum(dim)
    return _reduce_counted(loss, reduction, counted).to(out_dtype)


class _OutputLoss(nn.Module):
    """The options SSE and MAE share; a subclass's ``forward`` calls its functional form."""

    def _options(self, reduction: str, from_logits: bool, ignore_index: int) -> None:
        _check_options(reduction)
        self.reduction = reduction
        self.from_logits = from_logits
        self.ignore_index = ignore_index

    def _kwargs(self) -> dict[str, object]:
        return {
            "reduction": self.reduction,
            "from_logits": self.from_logits,
            "ignore_index": self.ignore_index,
        }

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}, from_logits={self.from_logits}, ignore_index={self.ignore_index}"


class SSELoss(_OutputLoss):
    r"""Sum of squares for error, :math:`\frac{1}{2} \sum_k (y_k - t_k)^2`; see :func:`sse_loss`.

    Not a drop-in for ``nn.MSELoss``: softmax is applied first (``from_logits=True``), the
    squares are summed over classes and halved, and ``reduction="mean"`` averages over samples
    (``N``), not elements: it equals ``0.5 * F.mse_loss(y, t, reduction="sum") / N``. The
    options are keyword-only: ``SSELoss(reduction="sum", from_logits=False)``.

    Shapes: ``input`` ``(N, C)`` (or ``(C,)``, ``(N, C, d1, ...)``); ``target`` ``(N,)`` class
    indices or ``(N, C)`` probabilities; output scalar, or ``(N,)`` with ``reduction="none"``.

    Example:
        >>> loss = SSELoss()
        >>> logits = torch.zeros(4, 10, requires_grad=True)  # a uniform start: y_k = 0.1
        >>> out = loss(logits, torch.tensor([0, 1, 2, 3]))
        >>> round(out.item(), 4)  # 0.5 * (0.9^2 + 9 * 0.1^2) per sample
        0.45
        >>> out.backward()
        >>> round(logits.grad[0, 0].item(), 4)  # CEE's (0.1 - 1) / 4, divided by C = 10
        -0.0225
    """

    def __init__(
        self, *, reduction: str = "mean", from_logits: bool = True, ignore_index: int = -100
    ) -> None:  # keyword-only, and its own: a wrong call names SSELoss, not a private base
        super().__init__()
        self._options(reduction, from_logits, ignore_index)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return sse_loss(input, target, **self._kwargs())


class MAELoss(_OutputLoss):
    r"""Mean absolute error, :math:`\sum_k |y_k - t_k|`; see :func:`mae_loss`.

    Not a drop-in for ``nn.L1Loss``: softmax is applied first (``from_logits=True``), the
    absolute errors are summed over classes, and ``reduction="mean"`` averages over samples
    (``N``), not elements: it equals ``F.l1_loss(y, t, reduction="sum") / N``. The options are
    keyword-only: ``MAELoss(reduction="sum", from_logits=False)``.

    Shapes: ``input`` ``(N, C)`` (or ``(C,)``, ``(N, C, d1, ...)``); ``target`` ``(N,)`` class
    indices or ``(N, C)`` probabilities; output scalar, or ``(N,)`` with ``reduction="none"``.

    Example:
        >>> loss = MAELoss()
        >>> logits = torch.zeros(4, 10, requires_grad=True)  # a uniform start: y_k = 0.1
        >>> out = loss(logits, torch.tensor([0, 1, 2, 3]))
        >>> round(out.item(), 4)  # 0.9 + 9 * 0.1 = 2 * (1 - 0.1) per sample
        1.8
        >>> out.backward()
        >>> round(logits.grad[0, 0].item(), 4)  # d 2(1 - y_c) / dz_c = -2 y_c (1 - y_c), / 4
        -0.045
    """

    def __init__(
        self, *, reduction: str = "mean", from_logits: bool = True, ignore_index: int = -100
    ) -> None:  # keyword-only, and its own: a wrong call names MAELoss, not a private base
        super().__init__()
        self._options(reduction, from_logits, ignore_index)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return mae_loss(input, target, **self._kwargs())
