"""What the losses share: argument checks with torch's messages, target dispatch, reductions,
result dtypes and the stable log-softmax parts (torch only)."""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torch._subclasses.fake_tensor import is_fake

REDUCTIONS = ("none", "mean", "sum")
LOW_PRECISION = (torch.float16, torch.bfloat16)


def _check_tensor(value: object, function: str, name: str, position: int) -> None:
    """TypeError in the words of torch's argument parser, naming our function."""
    if not isinstance(value, Tensor):
        cls = type(value)
        type_name = cls.__qualname__
        if cls.__module__ != "builtins":
            type_name = f"{cls.__module__}.{type_name}"  # numpy.ndarray, as torch prints it
        raise TypeError(
            f"{function}(): argument '{name}' (position {position}) must be Tensor, not {type_name}"
        )


def _legacy_reduction(size_average: bool | None, reduce: bool | None) -> str:
    """torch's ``reduction`` for the deprecated ``size_average``/``reduce``, with its warning.

    None counts as True; both true is "mean", ``reduce`` alone "sum", no ``reduce`` "none".
    """
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if size_average and reduce:
        reduction = "mean"
    elif reduce:
        reduction = "sum"
    else:
        reduction = "none"
    # stacklevel 3: the warning points at the caller of cee_loss / CEELoss, not at this file
    warnings.warn(
        "size_average and reduce args will be deprecated, please use "
        f"reduction='{reduction}' instead.",
        stacklevel=3,
    )
    return reduction


def _check_options(reduction: str, label_smoothing: float = 0.0, eps: float = 1.0) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    if not eps > 0.0:
        raise ValueError(f"eps must be > 0, got {eps!r}")


def _check_weight(weight: Tensor | None, num_classes: int | None = None) -> None:
    if weight is None:
        return
    if weight.dim() != 1 or not weight.is_floating_point():
        raise ValueError(
            f"weight must be a 1-D floating tensor of one weight per class, "
            f"got shape {tuple(weight.shape)} and dtype {weight.dtype}"
        )
    if num_classes is not None and weight.numel() != num_classes:
        raise ValueError(
            f"weight must have one entry per class: expected length {num_classes} "
            f"(input's class dimension), got {weight.numel()}"
        )


def _class_dim(input: Tensor) -> int:
    """Check ``input``'s shape and dtype; return its class dimension (0 for ``(C,)``, else 1)."""
    if input.dim() == 0:
        raise ValueError(
            "input must have shape (C,), (N, C) or (N, C, d1, ...), got a 0-dim tensor"
        )
    if not input.is_floating_point():
        raise ValueError(f"input must have a floating dtype, got {input.dtype}")
    return 0 if input.dim() == 1 else 1


def _is_probability_target(input: Tensor, target: Tensor, class_dim: int) -> bool:
    """Dispatch as ``F.cross_entropy`` does: same shape and floating dtype means probabilities."""
    index_shape = input.shape[:class_dim] + input.shape[class_dim + 1 :]
    if target.shape == input.shape:
        if target.is_floating_point():
            return True
        raise ValueError(
            f"target of the input's shape {tuple(input.shape)} holds class probabilities "
            f"(one-hot included) and must be floating, got {target.dtype}; class indices "
            f"must have shape {tuple(index_shape)}"
        )
    if target.shape == index_shape:
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise ValueError(
                f"target of shape {tuple(target.shape)} holds class indices and must have an "
                f"integer dtype (e.g. torch.long), got {target.dtype}; class probabilities must "
                f"have the input's shape {tuple(input.shape)}"
            )
        return False
    raise ValueError(
        f"target shape {tuple(target.shape)} does not match input shape {tuple(input.shape)}: "
        f"expected class indices of shape {tuple(index_shape)} or class probabilities of shape "
        f"{tuple(input.shape)}"
    )


def _concrete(tensor: Tensor) -> bool:
    """Whether ``tensor`` holds values Python may look at: not while torch.compile or
    torch.export traces, not on the meta device, not a FakeTensor, not wrapped by a
    ``torch.func`` transform (``vmap`` forbids data-dependent control flow)."""
    return not (
        torch.compiler.is_compiling()
        or tensor.is_meta
        or is_fake(tensor)
        or torch._C._functorch.is_functorch_wrapped_tensor(tensor)
    )


def _check_indices(target: Tensor, num_classes: int, ignore_index: int) -> None:
    """IndexError for a class index outside [0, C) (ignore_index excepted).

    A data-dependent check, made where values are concrete (:func:`_concrete`): in eager mode
    an IndexError on the CPU, and on CUDA an asynchronous device-side assert (as torch's own
    losses do there), which never stalls the GPU pipeline with a host sync. Under
    ``torch.compile``, ``torch.export``, ``torch.func`` transforms, the meta device and
    FakeTensor it is skipped: there the values are not known, and an out-of-range index fails in
    the gather or one-hot that reads it (an index error of that op on the CPU).
    """
    if not _concrete(target):
        return
    if not target.is_cuda and target.numel():
        low, high = torch.aminmax(target)  # one pass; the common case ends here
        if low >= 0 and high < num_classes:
            return
    bad = ((target < 0) | (target >= num_classes)) & (target != ignore_index)
    ignored = f"ignore_index={ignore_index}"
    if num_classes == 0:  # "[0, -1]" would read as a typo
        allowed = f"the input has 0 classes, so only {ignored} is allowed"
    else:
        allowed = f"class indices must be in [0, {num_classes - 1}] or equal {ignored}"
    if target.is_cuda:
        torch._assert_async(~bad.any(), f"target holds an out-of-range class index: {allowed}")
    elif bad.any():
        raise IndexError(
            f"target holds class index {int(target[bad].flatten()[0])}, out of range: {allowed}"
        )


def _reduce(loss: Tensor, reduction: str, denominator: Tensor | int | None = None) -> Tensor:
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    return total / (loss.numel() if denominator is None else denominator)


def _autocast_float32(tensor: Tensor) -> Tensor:
    """``tensor`` as autocast hands it to torch's losses: float16/bfloat16 become float32.

    ``cross_entropy``, ``mse_loss`` and ``l1_loss`` are on autocast's float32 list (CPU and
    CUDA): while autocast is on for the tensor's device they take float16/bfloat16 arguments as
    float32, whatever the autocast dtype, and leave float64 alone. Our losses are built from
    primitives autocast does not cast that way, so they apply the rule themselves. Devices
    without autocast (meta) are asked nothing: ``is_autocast_enabled`` raises for them.
    """
    if tensor.dtype in LOW_PRECISION:
        device = tensor.device.type
        if torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device):
            return tensor.float()
    return tensor


def _result_dtype(input: Tensor, target: Tensor, is_prob: bool) -> torch.dtype:
    # as torch: index targets keep the input's dtype, probability targets promote with it
    return torch.promote_types(input.dtype, target.dtype) if is_prob else input.dtype


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # float16/bfloat16 are computed in float32 (as autocast does for cross_entropy) and cast back
    return torch.promote_types(dtype, torch.float32)


def _shifted_scores(input: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """``(z, log_norm)`` with ``log_softmax(input) = z - log_norm``, from primitives.

    ``z`` is the input shifted by its max over classes (so ``exp`` cannot overflow and the
    largest score is exactly 0, as in torch's own kernel); ``log_norm = log(sum(exp(z)))``.
    Keeping the two apart lets index targets gather from ``z`` without writing the whole
    log-softmax, which keeps forward+backward within ~1.3x of ``F.cross_entropy`` at 32k classes.
    The shift is detached: the result does not depend on it, so neither does the gradient.
    """
    z = input
    if input.shape[dim] > 0:  # amax refuses an empty dimension; no classes, nothing to shift
        z = input - input.amax(dim=dim, keepdim=True).detach()
    return z, z.exp().sum(dim=dim, keepdim=True).log()
