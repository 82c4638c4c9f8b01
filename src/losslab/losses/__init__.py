"""Sum of squares (SSE), cross-entropy (CEE) and mean absolute (MAE) error, from primitives.

This package depends on torch only: copy the folder ``losses/`` into any project.

Like ``torch.nn.functional`` / ``torch.nn.modules.loss``, the functions :func:`sse_loss`,
:func:`cee_loss` and :func:`mae_loss` do the work and the modules :class:`SSELoss`,
:class:`CEELoss` and :class:`MAELoss` hold the options. Shapes follow ``F.cross_entropy``:
``input`` is ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dk)`` with the classes in dimension 1
(dimension 0 for an unbatched ``(C,)`` input); ``target`` holds either integer class indices,
shaped like ``input`` without the class dimension, or class probabilities (one-hot included) of
the input's own shape and a floating dtype. A "sample" is one position of the non-class
dimensions, so ``N * d1 * ... * dk`` of them.

Result dtypes follow torch's losses: the input's dtype with index targets, the promoted dtype of
input and target with probability targets (float16 input, float32 target: float32), and float32
for float16/bfloat16 arguments while autocast is on for their device (``cross_entropy``,
``mse_loss`` and ``l1_loss`` are on autocast's float32 list). float16/bfloat16 are computed in
float32 in any case.
"""

from losslab.losses.cee import CEELoss, cee_loss
from losslab.losses.outputs import MAELoss, SSELoss, mae_loss, sse_loss

__all__ = ["CEELoss", "MAELoss", "SSELoss", "cee_loss", "mae_loss", "sse_loss"]
