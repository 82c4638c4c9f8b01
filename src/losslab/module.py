"""``losslab.module.Classifier``, the path earlier code and checkpoints' notebooks import: the
class lives in :mod:`losslab.lit.classifier`."""

from losslab.lit.classifier import Classifier

__all__ = ["Classifier"]
