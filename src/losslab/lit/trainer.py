"""Lightning's ``Trainer`` with one more setting: ``steps_per_call``, the optimizer steps each
Lightning training step runs (K).

Lightning pays about 0.4 ms of machinery per training step, more than a whole step of a small MLP
at batch 32. With K > 1 the train loader yields chunks of K consecutive batches and
:class:`~losslab.lit.classifier.Classifier` runs their K optimizer steps itself (manual
optimization): the same batches, order and ops, so the same numbers bit for bit on the CPU. What
only Lightning's own step does — mixed precision, gradient clipping, accumulation, several
processes, ``overfit_batches``, ``fast_dev_run`` — needs K = 1. ``"auto"`` (the default) is
:data:`DEFAULT_STEPS` where it is exact and 1, with one line saying why, where it is not; an
explicit K > 1 with such a setting is refused. The module and the data module read K off their
trainer (``trainer.steps_per_call``; 1 under a plain ``lightning.Trainer``).
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.strategies import SingleDeviceStrategy

__all__ = ["DEFAULT_STEPS", "Trainer", "lightning_step_needs", "resolve_steps_per_call"]

DEFAULT_STEPS = 10


def lightning_step_needs(
    *,
    precision: Any = "32-true",
    gradient_clip_val: float | None = None,
    accumulate_grad_batches: int = 1,
    processes: int = 1,
    overfit_batches: Any = 0,
    fast_dev_run: Any = False,
) -> list[str]:
    """The settings (``trainer.<key>=<value>``) that need Lightning's own optimizer step, so one
    optimizer step per training step: ``[]`` when several are exact."""
    needs = [
        (str(precision) not in ("32", "32-true"), "precision", precision),
        (gradient_clip_val not in (None, 0), "gradient_clip_val", gradient_clip_val),
        (accumulate_grad_batches != 1, "accumulate_grad_batches", accumulate_grad_batches),
        (processes > 1, "devices", f"{processes} processes"),
        (bool(overfit_batches), "overfit_batches", overfit_batches),
        (bool(fast_dev_run), "fast_dev_run", fast_dev_run),
    ]
    return [f"trainer.{key}={value}" for needed, key, value in needs if needed]


def resolve_steps_per_call(value: int | str, needs: list[str]) -> int:
    """K for ``value`` (``"auto"`` or a positive integer) given :func:`lightning_step_needs`.

    Raises:
        ValueError: not ``"auto"`` or a positive integer; K > 1 with a setting that needs
            Lightning's own step (naming both).
    """
    if value == "auto":
        return 1 if needs else DEFAULT_STEPS
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"steps_per_call must be 'auto' or a positive integer, got {value!r}")
    if value > 1 and needs:
        raise ValueError(
            f"steps_per_call={value} cannot be combined with {needs[0]}: several optimizer "
            f"steps per call need one process, 32-bit precision, no gradient clipping, "
            f"accumulation, overfit_batches or fast_dev_run; leave steps_per_call at auto (it is "
            f"then 1) or set it to 1"
        )
    return value


class Trainer(L.Trainer):
    """``lightning.Trainer(*args, **kwargs)`` plus ``steps_per_call`` (``"auto"`` or K >= 1;
    see the module docstring), kept as :attr:`steps_per_call` (an int); :attr:`steps_note` says
    why ``auto`` came to 1 (None when it did not).

    Example:
        >>> Trainer(accelerator="cpu", logger=False).steps_per_call  # doctest: +SKIP
        10
        >>> Trainer(accelerator="cpu", precision="bf16-mixed").steps_per_call  # doctest: +SKIP
        1
    """

    def __init__(self, *args: Any, steps_per_call: int | str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        needs = lightning_step_needs(
            precision=self.precision,
            gradient_clip_val=self.gradient_clip_val,
            accumulate_grad_batches=self.accumulate_grad_batches,
            processes=1 if isinstance(self.strategy, SingleDeviceStrategy) else self.world_size,
            overfit_batches=self.overfit_batches,
            fast_dev_run=self.fast_dev_run,
        )
        self.steps_per_call = resolve_steps_per_call(steps_per_call, needs)
        self.steps_note = (
            f"trainer.steps_per_call=auto is 1 here: {needs[0]} needs Lightning's own optimizer step"
            if steps_per_call == "auto" and needs
            else None
        )
