r"""Cross-entropy error, :math:`-\sum_k t_k \log y_k`: :func:`cee_loss` and :class:`CEELoss`,
drop-ins for ``F.cross_entropy`` and ``nn.CrossEntropyLoss`` (torch only)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from losslab.losses._common import (
    _autocast_float32,
    _check_indices,
    _check_options,
    _check_tensor,
    _check_weight,
    _class_dim,
    _compute_dtype,
    _is_probability_target,
    _legacy_reduction,
    _reduce,
    _result_dtype,
    _shifted_scores,
)

__all__ = ["CEELoss", "cee_loss"]


def cee_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    *,
    from_logits: bool = True,
    eps: float = 1e-7,
) -> Tensor:
    r"""Cross-entropy error :math:`E = -\sum_k t_k \log y_k`, per sample.

    A drop-in for ``F.cross_entropy``: the same arguments in the same order (losslab's own
    options come after them, keyword-only). With ``from_logits=True`` (default) ``input`` holds
    raw scores and :math:`\log y = \operatorname{log\_softmax}(x)`, computed stably (max shift,
    log-sum-exp); the result equals ``F.cross_entropy`` for every option it has. With
    ``from_logits=False`` ``input`` already holds probabilities and
    :math:`\log y = \log(y + \varepsilon)`, the book's ``-np.sum(t * np.log(y + 1e-7))``.

    Args:
        input: scores or probabilities, ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dk)``.
        target: class indices (integer, ``()``, ``(N,)`` or ``(N, d1, ..., dk)``, values in
            ``[0, C)`` or ``ignore_index``) or class probabilities (floating, input's shape).
        weight: optional ``(C,)`` rescaling weight per class.
        size_average, reduce: deprecated, as in torch: either one set (not None) replaces
            ``reduction`` ("mean" if both are true or None, "sum" if only ``reduce`` is,
            "none" if ``reduce`` is false) with torch's deprecation warning.
        ignore_index: index target value that contributes nothing (index targets only).
        reduction: ``"none"`` (per-sample loss), ``"mean"`` (sum over classes, averaged over
            samples; with ``weight`` or ignored samples, divided by the summed weight of the
            counted targets, exactly as torch) or ``"sum"``.
        label_smoothing: in ``[0, 1]``; mixes the target with the uniform distribution.
        from_logits: whether ``input`` is scores (True) or probabilities (False).
        eps: added to probabilities before the log when ``from_logits=False``; must be > 0.

    Returns:
        A scalar, or the per-sample losses (input's shape without the class dimension) with
        ``reduction="none"``; dtype as described in the module docstring. An input with no
        classes (``C = 0``) gives what ``F.cross_entropy`` gives: IndexError for any index
        target that is not ignored, otherwise 0 per sample and a "mean" of NaN (0 / 0).

    Example:
        >>> y = torch.tensor([[0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0]])
        >>> round(cee_loss(y, torch.tensor([2]), from_logits=False).item(), 4)
        0.5108
    """
    _check_tensor(input, "cee_loss", "input", 1)
    _check_tensor(target, "cee_loss", "target", 2)
    if weight is not None:
        _check_tensor(weight, "cee_loss", "weight", 3)
    if size_average is not None or reduce is not None:
        reduction = _legacy_reduction(size_average, reduce)
    _check_options(reduction, label_smoothing, eps)
    dim = _class_dim(input)
    num_classes = input.shape[dim]
    _check_weight(weight, num_classes)
    is_prob = _is_probability_target(input, target, dim)
    if not is_prob:
        _check_indices(target, num_classes, ignore_index)
    elif ignore_index >= 0:  # as F.cross_entropy: only index targets can be ignored
        raise ValueError(
            f"ignore_index={ignore_index} is not supported with class-probability targets "
            f"(target of the input's shape {tuple(input.shape)}); leave it at -100"
        )

    input, target = _autocast_float32(input), _autocast_float32(target)
    out_dtype = _result_dtype(input, target, is_prob)
    x = input.to(_compute_dtype(out_dtype))
    if num_classes == 0:
        # torch's answer: every index target is ignored (any other was refused above) and an
        # empty probability target sums to 0, so each sample adds 0 and the mean is 0 / 0
        return _reduce(x.sum(dim), reduction, 0).to(out_dtype)

    log_norm: Tensor | float  # log y = z - log_norm
    if from_logits:
        z, log_norm = _shifted_scores(x, dim)
    else:
        z, log_norm = torch.log(x + eps), 0.0
    if weight is not None:
        weight = weight.to(x.dtype)
        # view (C, 1, ..., 1) so the weight lines up with the class dimension
        w = weight.view((-1,) + (1,) * (x.dim() - dim - 1))

    if is_prob:
        t = target.to(x.dtype)
        if label_smoothing > 0.0:
            t = t * (1.0 - label_smoothing) + label_smoothing / num_classes
        if weight is not None:
            t = t * w
        loss = -(t * (z - log_norm)).sum(dim)
        # torch divides the probability-target mean by the number of samples, weight or not
        return _reduce(loss, reduction).to(out_dtype)

    counted = target != ignore_index
    safe = target.masked_fill(~counted, 0).long()
    nll = (log_norm - z.gather(dim, safe.unsqueeze(dim))).squeeze(dim)
    if weight is None:
        target_weight = counted.to(x.dtype)
    else:
        target_weight = weight[safe] * counted
    nll = (nll * target_weight).masked_fill(~counted, 0.0)  # an ignored row's -inf is no NaN
    denominator = target_weight.sum()
    loss = _reduce(nll, reduction, denominator)
    if label_smoothing > 0.0:
        log_y = z - log_norm
        smooth = -(log_y * w).sum(dim) if weight is not None else -log_y.sum(dim)
        smooth = smooth.masked_fill(~counted, 0.0)
        loss = (1.0 - label_smoothing) * loss + (label_smoothing / num_classes) * _reduce(
            smooth, reduction, denominator
        )
    return loss.to(out_dtype)


class CEELoss(nn.Module):
    r"""Cross-entropy error, :math:`-\sum_k t_k \log y_k`; see :func:`cee_loss`.

    A drop-in for ``nn.CrossEntropyLoss``: the same arguments in the same order (the deprecated
    ``size_average``/``reduce`` included, with torch's meaning and warning), the same values,
    gradients and result dtypes. losslab's own options come after them, keyword-only:
    ``from_logits=False`` takes probabilities and adds ``eps`` before the log.

    Shapes: ``input`` ``(N, C)`` (or ``(C,)``, ``(N, C, d1, ...)``); ``target`` ``(N,)`` class
    indices or ``(N, C)`` probabilities; output scalar, or ``(N,)`` with ``reduction="none"``.

    Example:
        >>> loss = CEELoss(label_smoothing=0.1)
        >>> logits = torch.zeros(4, 10, requires_grad=True)  # a uniform start: y_k = 0.1
        >>> out = loss(logits, torch.tensor([0, 1, 2, 3]))
        >>> round(out.item(), 4)  # log 10, smoothed or not
        2.3026
        >>> out.backward()
        >>> round(logits.grad[0, 0].item(), 4)  # (y - t) / N, t = 0.9 + 0.1 / 10 for the class
        -0.2025
        >>> CEELoss(None, None, 3).ignore_index  # torch's positional order
        3
    """

    weight: Tensor | None

    def __init__(
        self,
        weight: Tensor | None = None,
        size_average: bool | None = None,
        ignore_index: int = -100,
        reduce: bool | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        *,
        from_logits: bool = True,
        eps: float = 1e-7,
    ) -> None:
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = _legacy_reduction(size_average, reduce)
        # first, as in torch: a weight that is not a tensor gets register_buffer's TypeError
        self.register_buffer("weight", weight)
        _check_options(reduction, label_smoothing, eps)
        _check_weight(weight)
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = label_smoothing
        self.from_logits = from_logits
        self.eps = eps

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return cee_loss(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
            from_logits=self.from_logits,
            eps=self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"reduction={self.reduction!r}, from_logits={self.from_logits}, "
            f"label_smoothing={self.label_smoothing}, ignore_index={self.ignore_index}"
        )
