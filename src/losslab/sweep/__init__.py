"""Sweeps (``losslab-train -m``, orchestration half): losslab's Hydra sweeper and what it prints."""
