"""The Lightning pieces (library half: torch and Lightning, no Hydra): the :class:`Classifier`
LightningModule, the MNIST data module, the epoch metrics, and the one builder of ``_target_``
specs. Nothing here knows about configs, run folders or sweeps."""
