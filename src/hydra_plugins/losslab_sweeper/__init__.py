"""losslab's Hydra sweeper. Hydra instantiates sweepers only from the ``hydra_plugins``
namespace, and its plugin scan re-executes these modules, so the class is defined here, on the
``BasicSweeper`` of that scan; what it does is :func:`losslab.sweep.sweeper.run_sweep` (documented there).
"""

from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from losslab.sweep.sweeper import ComposedOnce, run_sweep


class LosslabSweeper(BasicSweeper):
    """Hydra's ``BasicSweeper``: job folders named by what varies, every job checked before the
    first runs, finished jobs skipped when a sweep folder is run again, jobs whose folder holds a
    run of another config refused (``retrain=True``: trained again), a job whose run finished in
    one of the ``reuse`` folders copied from there, failed jobs recorded."""

    def __init__(
        self,
        max_batch_size: int | None = None,
        params: Any = None,
        retrain: bool = False,
        reuse: Any = None,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.retrain = retrain
        self.reuse = list(reuse or [])

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        once = HydraContext(ComposedOnce(hydra_context.config_loader), hydra_context.callbacks)
        super().setup(hydra_context=once, task_function=task_function, config=config)
        self.task_function = task_function  # losslab-train's carries its outcome

    def sweep(self, arguments: list[str]) -> Any:
        return run_sweep(self, arguments)
