"""losslab: how the loss function drives neural-network learning (SSE vs CEE on MNIST)."""

from losslab.losses import CEELoss, SSELoss, cee_loss, sse_loss

__all__ = ["CEELoss", "SSELoss", "cee_loss", "sse_loss"]
__version__ = "0.1.0"
