"""losslab's Hydra sweeper. Hydra instantiates sweepers only from the ``hydra_plugins``
namespace, and its plugin scan re-executes these modules, so the class is defined here, on the
``BasicSweeper`` of that scan; what it does is :func:`losslab.sweep.run_sweep` (documented there).
"""

from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

from losslab.sweep import run_sweep


class LosslabSweeper(BasicSweeper):
    """Hydra's ``BasicSweeper``: job folders named by what varies, finished jobs skipped when
    a sweep folder is run again, failed jobs recorded instead of ending the sweep."""

    def sweep(self, arguments: list[str]) -> Any:
        return run_sweep(self, arguments)
