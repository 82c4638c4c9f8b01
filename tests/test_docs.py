"""The examples in the docstrings run and give what they state (the losses' own are in
tests/test_losses.py)."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["losslab.models", "losslab.lit.data", "losslab.read.stats"])
def test_docstring_examples_pass(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0
    assert result.failed == 0
