"""The MLP (losslab.models): its layers, its initialisations against their formulas, its
defaults (the model config's), and an error naming each bad argument with what is allowed."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest
import torch
from torch import nn

from losslab.models import MLP
from losslab.run.config import ModelConfig


def test_layers_are_flatten_then_linear_and_activation_with_none_after_the_output():
    net = MLP(in_features=6, hidden=(5, 4), num_classes=3, activation="tanh")
    assert [type(m) for m in net.layers] == [nn.Flatten, nn.Linear, nn.Tanh, nn.Linear, nn.Tanh,
                                             nn.Linear]  # fmt: skip
    assert [(m.in_features, m.out_features) for m in net.layers if isinstance(m, nn.Linear)] == [
        (6, 5), (5, 4), (4, 3),
    ]  # fmt: skip
    assert net(torch.zeros(2, 2, 3)).shape == (2, 3)
    linear = MLP(in_features=6, hidden=(), num_classes=2)
    assert [type(m) for m in linear.layers] == [nn.Flatten, nn.Linear]
    for name, kind in (("relu", nn.ReLU), ("sigmoid", nn.Sigmoid), ("gelu", nn.GELU)):
        assert type(MLP(hidden=(3,), activation=name).layers[2]) is kind


@pytest.mark.parametrize(("init", "std"), [("normal", 0.05), ("he", None)])
def test_normal_and_he_draw_weights_with_their_std_and_zero_biases(init, std):
    torch.manual_seed(0)
    net = MLP(in_features=800, hidden=(400,), num_classes=200, init=init, init_std=0.05)
    for layer in (m for m in net.layers if isinstance(m, nn.Linear)):
        expected = std if std is not None else (2.0 / layer.in_features) ** 0.5
        assert layer.weight.std().item() == pytest.approx(expected, rel=0.02)
        assert layer.weight.mean().item() == pytest.approx(0, abs=expected / 50)
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


def test_default_init_is_torchs_own():
    torch.manual_seed(0)
    net = MLP(in_features=5, hidden=(4,), num_classes=3)
    torch.manual_seed(0)
    reference = [nn.Linear(5, 4), nn.Linear(4, 3)]
    mine = [m for m in net.layers if isinstance(m, nn.Linear)]
    for a, b in zip(mine, reference, strict=True):
        assert torch.equal(a.weight, b.weight)
        assert torch.equal(a.bias, b.bias)


def test_the_defaults_are_the_model_configs():
    defaults = {name: p.default for name, p in inspect.signature(MLP).parameters.items()}
    schema = {f.name: f.default for f in dataclasses.fields(ModelConfig) if f.name != "_target_"}
    schema["hidden"] = (100,)
    assert defaults == schema


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"activation": "swish"},
         "activation must be one of ['gelu', 'relu', 'sigmoid', 'tanh'], got 'swish'"),
        ({"init": "xavier"}, "init must be one of ('default', 'normal', 'he'), got 'xavier'"),
        ({"in_features": 0}, "in_features must be a positive integer, got 0"),
        ({"in_features": True}, "in_features must be a positive integer, got True"),
        ({"hidden": (3, 0)}, "hidden must be a list of positive layer sizes, got [3, 0]"),
        ({"num_classes": 1}, "num_classes must be an integer > 1, got 1"),
        ({"num_classes": 0}, "num_classes must be an integer > 1, got 0"),
        ({"init_std": 0.0}, "init_std must be > 0, got 0.0"),
    ],
)  # fmt: skip
def test_each_bad_argument_is_named_with_what_is_allowed(arguments, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        MLP(**arguments)


def test_the_smallest_allowed_values_build():
    net = MLP(in_features=1, hidden=(1,), num_classes=2, init="normal", init_std=1e-9)
    assert net(torch.zeros(4, 1)).shape == (4, 2)


def test_normal_init_defaults_to_std_0_01():
    torch.manual_seed(0)
    net = MLP(in_features=800, hidden=(400,), num_classes=200, init="normal")
    for layer in (m for m in net.layers if isinstance(m, nn.Linear)):
        assert layer.weight.std().item() == pytest.approx(0.01, rel=0.02)
