"""Plain ``nn.Module`` networks (torch only)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "INITS", "MLP"]

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU}
INITS = ("default", "normal", "he")


def _positive(size: object) -> bool:
    return isinstance(size, int) and not isinstance(size, bool) and size > 0


class MLP(nn.Module):
    """Multi-layer perceptron ``in_features -> hidden... -> num_classes`` that returns logits.

    Inputs of any shape ``(N, ...)`` are flattened to ``(N, in_features)``.

    Args:
        in_features: input size (784 for MNIST).
        hidden: sizes of the hidden layers, e.g. ``(100,)`` or ``(50,)``; ``()`` = linear model.
        num_classes: output size.
        activation: one of ``relu``, ``sigmoid``, ``tanh``, ``gelu``.
        init: ``default`` (torch's Kaiming-uniform), ``normal`` (weights ~ N(0, init_std^2),
            biases 0: the book's ``weight_init_std * np.random.randn``, ch. 4) or ``he``
            (weights ~ N(0, 2 / fan_in), biases 0: the book's ``weight_init_std="relu"``, ch. 6,
            which deep ReLU nets need to learn with plain SGD).
        init_std: standard deviation for ``init="normal"``.

    Example:
        >>> import torch
        >>> MLP(hidden=(50,), activation="sigmoid", init="normal")(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_features: int = 784,
        hidden: Sequence[int] = (100,),
        num_classes: int = 10,
        activation: str = "relu",
        init: str = "default",
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        for name, ok, allowed, value in (
            ("in_features", _positive(in_features), "a positive integer", in_features),
            ("hidden", all(map(_positive, hidden)), "a list of positive layer sizes", list(hidden)),
            (
                "num_classes",
                _positive(num_classes) and num_classes > 1,
                "an integer > 1",
                num_classes,
            ),
            ("init_std", init_std > 0, "> 0", init_std),
        ):
            if not ok:
                raise ValueError(f"{name} must be {allowed}, got {value!r}")
        sizes = [in_features, *hidden, num_classes]
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
        self.layers = nn.Sequential(*layers)
        if init != "default":
            for m in self.layers:
                if isinstance(m, nn.Linear):
                    std = init_std if init == "normal" else (2.0 / m.in_features) ** 0.5
                    nn.init.normal_(m.weight, std=std)
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
