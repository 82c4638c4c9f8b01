"""A callback that kills a run after the first training step of the epoch after ``epoch``
(for the resume tests; with steps_per_call=K that first step is K optimizer steps).

It crashes only while ``LOSSLAB_TEST_CRASH=1`` is set: it is part of the run's config, so the
resumed start (without the variable) instantiates it too and must then train on.
"""

import os

import lightning as L


class CrashAfterEpoch(L.Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_batch_end(
        self, trainer: L.Trainer, module, outputs, batch, batch_idx: int
    ) -> None:
        # epochs count from 0 here: current_epoch == epoch is the one after `epoch` completed
        crash = os.environ.get("LOSSLAB_TEST_CRASH") == "1"
        if crash and trainer.current_epoch == self.epoch and batch_idx == 0:
            raise RuntimeError(f"simulated crash after epoch {self.epoch}")
