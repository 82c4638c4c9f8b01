"""losslab: how the loss function drives neural-network learning (SSE vs CEE on MNIST).

The losses are imported on first use, so ``import losslab.cli`` (the console scripts) loads
neither torch nor anything else heavy; ``dir(losslab)`` lists them all the same.
"""

__all__ = ["CEELoss", "MAELoss", "SSELoss", "cee_loss", "mae_loss", "sse_loss"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name in __all__:
        from losslab import losses

        return getattr(losses, name)
    raise AttributeError(f"module 'losslab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__} - {"__getattr__", "__dir__"})
