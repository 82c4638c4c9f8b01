"""A callback that writes ``torch.get_num_threads()`` as seen inside a run (threads test)."""

from pathlib import Path

import lightning as L
import torch


class ThreadsProbe(L.Callback):
    def __init__(self, file: str) -> None:
        self.file = Path(file)

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.file.write_text(str(torch.get_num_threads()))
