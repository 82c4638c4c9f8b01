"""The one builder of objects from plain specs: ``{"_target_": "module.Class", **kwargs}``.

What ``losslab-train`` builds from its checked config, and what a checkpoint rebuilds its
:class:`~losslab.lit.classifier.Classifier` from (its hyperparameters are the specs of its net,
loss, optimizer and scheduler), go through :func:`make`. Hydra-free, so checkpoints load without
Hydra installed.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from typing import Any

__all__ = ["Spec", "make", "target"]

Spec = Mapping[str, Any]  # {"_target_": "losslab.models.MLP", "hidden": [100], ...}


def make(spec: Any, **extra: Any) -> Any:
    """The object a plain ``spec`` describes, built as Hydra's ``instantiate`` would build it
    (``"_partial_": True`` gives a ``functools.partial``), with ``extra`` keyword arguments
    (objects a spec cannot hold: a Trainer's loggers and callbacks); anything that is not a
    mapping is returned as it is.

    Example:
        >>> make({"_target_": "collections.Counter", "a": 2})
        Counter({'a': 2})
    """
    if not isinstance(spec, Mapping):
        return spec
    kwargs = {**spec, **extra}
    if "_target_" not in kwargs:
        raise ValueError(
            f"a config to build must name what it builds in _target_ ('module.Class'), got the "
            f"keys {sorted(map(str, kwargs))}"
        )
    factory = target(kwargs)
    del kwargs["_target_"]
    partial = kwargs.pop("_partial_", False)
    return functools.partial(factory, **kwargs) if partial else factory(**kwargs)


def target(spec: Spec) -> Any:
    """The class (or function) a spec's ``_target_`` names, not called."""
    module, _, name = str(spec["_target_"]).rpartition(".")
    return getattr(importlib.import_module(module), name)
