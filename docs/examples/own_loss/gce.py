"""Generalized cross-entropy (Zhang & Sabuncu, NeurIPS 2018), a loss of the user's own for
losslab's studies: (1 - p_y ** q) / q per sample, between CEE (q -> 0) and MAE (q = 1, up to a
factor 2). Nothing in losslab knows it: the study reads it through conf/loss/gce.yaml."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class GCELoss(nn.Module):
    """``mean((1 - softmax(logits)[target] ** q) / q)``; ``logits`` (N, C), ``target`` (N,)."""

    def __init__(self, q: float = 0.7) -> None:
        super().__init__()
        if not 0 < q <= 1:
            raise ValueError(f"q must be in (0, 1], got {q!r}")
        self.q = q

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        p = torch.softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
        return ((1 - p.clamp_min(1e-12) ** self.q) / self.q).mean()
