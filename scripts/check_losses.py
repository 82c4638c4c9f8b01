"""Print losslab's SSE, CEE and MAE next to torch's (or the book's) values, case by case.

What it proves: for every case below, ``cee_loss`` equals ``F.cross_entropy`` (values and
gradients, every option: weight, ignore_index, label_smoothing, probability targets, K-dim and
unbatched inputs, all reductions, logits of +/-1e4), ``sse_loss`` equals
``0.5 * F.mse_loss(softmax(x), onehot, reduction="sum") / N``, ``mae_loss`` equals
``F.l1_loss(softmax(x), onehot, reduction="sum") / N``, and all three reproduce the worked
examples of *Deep Learning from Scratch*, ch. 4 (probabilities in, eps = 1e-7; for MAE the
same vectors worked by hand), in float64 and float32. A case passes when the largest
difference in value and in gradient is within the dtype's tolerance (float64 1e-10, float32
1e-5; relative to the value when it exceeds 1).
The process exits with status 1 if any case fails.

Run it:

    .venv/bin/python scripts/check_losses.py     # or: make check-losses
    .venv/bin/python scripts/check_losses.py --device cuda   # the same cases on a GPU

For ``reduction="none"`` the value column shows the sum of the per-sample losses; the
differences are still taken element by element.
"""

import argparse
import math
import sys

import torch
import torch.nn.functional as F

from losslab import cee_loss, mae_loss, sse_loss

torch.set_num_threads(1)
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}

# -----------------------------------------------------------------------------
# references: torch's own functions, and the book's formulas in plain Python


def sse_reference(x, t, reduction="mean", from_logits=True):
    """0.5 * sum_k (y_k - t_k)^2 per sample from F.softmax and F.mse_loss; mean = sum / N."""
    cdim = 0 if x.dim() == 1 else 1
    y = F.softmax(x, cdim) if from_logits else x
    if t.shape != x.shape:  # class indices -> one-hot in the class dimension
        t = F.one_hot(t, x.shape[cdim]).movedim(-1, cdim).to(x.dtype)
    per_sample = 0.5 * F.mse_loss(y, t, reduction="none").sum(cdim)
    if reduction == "none":
        return per_sample
    total = 0.5 * F.mse_loss(y, t, reduction="sum")
    return total if reduction == "sum" else total / per_sample.numel()


def mae_reference(x, t, reduction="mean", from_logits=True):
    """sum_k |y_k - t_k| per sample from F.softmax and F.l1_loss; mean = sum / N."""
    cdim = 0 if x.dim() == 1 else 1
    y = F.softmax(x, cdim) if from_logits else x
    if t.shape != x.shape:  # class indices -> one-hot in the class dimension
        t = F.one_hot(t, x.shape[cdim]).movedim(-1, cdim).to(x.dtype)
    per_sample = F.l1_loss(y, t, reduction="none").sum(cdim)
    if reduction == "none":
        return per_sample
    total = F.l1_loss(y, t, reduction="sum")
    return total if reduction == "sum" else total / per_sample.numel()


def book_sse(y, k):
    return 0.5 * sum((yi - (i == k)) ** 2 for i, yi in enumerate(y))


def book_cee(y, k, eps=1e-7):
    return -sum((i == k) * math.log(yi + eps) for i, yi in enumerate(y))


def book_mae(y, k):
    return sum(abs(yi - (i == k)) for i, yi in enumerate(y))


# -----------------------------------------------------------------------------
# cases: (name, our loss, reference (a function of x, t, options, or a number), x, t, options)

Y_RIGHT = [0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0]  # the book's y, 0.6 on class 2
Y_WRONG = [0.1, 0.05, 0.1, 0.0, 0.05, 0.1, 0.0, 0.6, 0.0, 0.0]  # 0.6 on class 7, true class 2


def cases(dtype):
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    def randint(*shape, high=10):
        return torch.randint(0, high, shape, generator=g)

    y_right, y_wrong = torch.tensor([Y_RIGHT], dtype=dtype), torch.tensor([Y_WRONG], dtype=dtype)
    y_both = torch.cat([y_right, y_wrong])
    two, two_onehot = torch.tensor([2]), F.one_hot(torch.tensor([2]), 10).to(dtype)
    probs_in = {"from_logits": False}
    book_batch_cee = (book_cee(Y_RIGHT, 2) + book_cee(Y_WRONG, 2)) / 2
    book_batch_sse = (book_sse(Y_RIGHT, 2) + book_sse(Y_WRONG, 2)) / 2
    book_batch_mae = (book_mae(Y_RIGHT, 2) + book_mae(Y_WRONG, 2)) / 2

    x, t = randn(8, 10), randint(8)
    t_ignored = randint(8)
    t_ignored[[1, 5]] = -100
    w = torch.rand(10, generator=g, dtype=dtype) + 0.1
    x3, t3 = randn(4, 10, 5), randint(4, 5)
    t3[0, 0] = -100
    x_large = torch.tensor([[1e4, -1e4, 1e4 - 1], [-1e4, -1e4, 1e4]], dtype=dtype)
    t_large = torch.tensor([2, 0])
    soft = randn(8, 10).softmax(1)  # probability targets

    return [
        # the book, ch. 4: probabilities in, CEE = -sum t log(y + 1e-7), SSE = 0.5 sum (y - t)^2
        ("book SSE, 0.6 on true class (index)", sse_loss, book_sse(Y_RIGHT, 2), y_right, two, probs_in),
        ("book SSE, 0.6 on true class (one-hot)", sse_loss, book_sse(Y_RIGHT, 2), y_right, two_onehot, probs_in),
        ("book SSE, 0.6 on class 7", sse_loss, book_sse(Y_WRONG, 2), y_wrong, two, probs_in),
        ("book SSE, batch of both (mean)", sse_loss, book_batch_sse, y_both, two.repeat(2), probs_in),
        ("book CEE, 0.6 on true class (index)", cee_loss, book_cee(Y_RIGHT, 2), y_right, two, probs_in),
        ("book CEE, 0.6 on true class (one-hot)", cee_loss, book_cee(Y_RIGHT, 2), y_right, two_onehot, probs_in),
        ("book CEE, 0.6 on class 7", cee_loss, book_cee(Y_WRONG, 2), y_wrong, two, probs_in),
        ("book CEE, batch of both (mean)", cee_loss, book_batch_cee, y_both, two.repeat(2), probs_in),
        # CEE with logits == F.cross_entropy
        ("CEE logits (8,10)", cee_loss, F.cross_entropy, x, t, {}),
        ("CEE logits (8,10), one-hot target", cee_loss, F.cross_entropy, x, F.one_hot(t, 10).to(dtype), {}),
        ("CEE unbatched (10,)", cee_loss, F.cross_entropy, x[0], t[0], {}),
        ("CEE K-dim (4,10,5) + ignore_index", cee_loss, F.cross_entropy, x3, t3, {}),
        ("CEE weight", cee_loss, F.cross_entropy, x, t, {"weight": w}),
        ("CEE ignore_index=-100", cee_loss, F.cross_entropy, x, t_ignored, {}),
        ("CEE ignore_index=3", cee_loss, F.cross_entropy, x, t, {"ignore_index": 3}),
        ("CEE label_smoothing=0.1", cee_loss, F.cross_entropy, x, t, {"label_smoothing": 0.1}),
        ("CEE weight+ignore+smoothing", cee_loss, F.cross_entropy, x, t_ignored, {"weight": w, "label_smoothing": 0.2}),
        ("CEE probability targets", cee_loss, F.cross_entropy, x, soft, {}),
        ("CEE probability targets + weight", cee_loss, F.cross_entropy, x, soft, {"weight": w}),
        ("CEE prob targets + weight + smoothing", cee_loss, F.cross_entropy, x, soft, {"weight": w, "label_smoothing": 0.3}),
        ("CEE reduction=none", cee_loss, F.cross_entropy, x, t_ignored, {"reduction": "none", "weight": w}),
        ("CEE reduction=sum", cee_loss, F.cross_entropy, x, t_ignored, {"reduction": "sum", "weight": w}),
        ("CEE large logits +/-1e4", cee_loss, F.cross_entropy, x_large, t_large, {}),
        ("CEE large logits +/-1e4, smoothing", cee_loss, F.cross_entropy, x_large, t_large, {"label_smoothing": 0.1}),
        # SSE == 0.5 * F.mse_loss(softmax(x), onehot, reduction="sum") / N
        ("SSE logits (8,10)", sse_loss, sse_reference, x, t, {}),
        ("SSE probability targets", sse_loss, sse_reference, x, soft, {}),
        ("SSE probabilities in (from_logits=False)", sse_loss, sse_reference, soft, t, probs_in),
        ("SSE unbatched (10,)", sse_loss, sse_reference, x[0], t[0], {}),
        ("SSE K-dim (4,10,5), mean over N*d", sse_loss, sse_reference, x3, t3.clamp(min=0), {}),
        ("SSE reduction=none", sse_loss, sse_reference, x, t, {"reduction": "none"}),
        ("SSE reduction=sum", sse_loss, sse_reference, x, t, {"reduction": "sum"}),
        ("SSE large logits +/-1e4", sse_loss, sse_reference, x_large, t_large, {}),
        # MAE: the book's vectors (0.8, 1.8), and == F.l1_loss(softmax(x), onehot, reduction="sum") / N
        ("book MAE, 0.6 on true class (index)", mae_loss, book_mae(Y_RIGHT, 2), y_right, two, probs_in),
        ("book MAE, 0.6 on true class (one-hot)", mae_loss, book_mae(Y_RIGHT, 2), y_right, two_onehot, probs_in),
        ("book MAE, 0.6 on class 7", mae_loss, book_mae(Y_WRONG, 2), y_wrong, two, probs_in),
        ("book MAE, batch of both (mean)", mae_loss, book_batch_mae, y_both, two.repeat(2), probs_in),
        ("MAE logits (8,10)", mae_loss, mae_reference, x, t, {}),
        ("MAE probability targets", mae_loss, mae_reference, x, soft, {}),
        ("MAE probabilities in (from_logits=False)", mae_loss, mae_reference, soft, t, probs_in),
        ("MAE unbatched (10,)", mae_loss, mae_reference, x[0], t[0], {}),
        ("MAE K-dim (4,10,5), mean over N*d", mae_loss, mae_reference, x3, t3.clamp(min=0), {}),
        ("MAE reduction=none", mae_loss, mae_reference, x, t, {"reduction": "none"}),
        ("MAE reduction=sum", mae_loss, mae_reference, x, t, {"reduction": "sum"}),
        ("MAE large logits +/-1e4", mae_loss, mae_reference, x_large, t_large, {}),
    ]  # fmt: skip


# -----------------------------------------------------------------------------
# run every case in float64 and float32 and print one row per case

parser = argparse.ArgumentParser(description="Our losses next to torch's, case by case.")
parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
device = torch.device(parser.parse_args().device)

rows = []
for dtype in (torch.float64, torch.float32):
    for name, loss, reference, x, t, options in cases(dtype):
        x, t = x.detach().to(device).requires_grad_(), t.to(device)
        options = {k: v.to(device) if torch.is_tensor(v) else v for k, v in options.items()}
        ours = loss(x, t, **options)
        (our_grad,) = torch.autograd.grad(ours.sum(), x)
        if callable(reference):
            x_ref = x.detach().requires_grad_()
            theirs = reference(x_ref, t, **options)
            (their_grad,) = torch.autograd.grad(theirs.sum(), x_ref)
            grad_diff = (our_grad - their_grad).abs().max().item()
        else:  # a book number: no gradient to compare with
            theirs, grad_diff = torch.tensor(reference, dtype=torch.float64), None
        diff = (ours.double() - theirs.double()).abs().max().item()
        scale = max(1.0, theirs.double().abs().max().item())
        tol = TOLERANCE[dtype]
        ok = (
            torch.isfinite(ours).all().item()
            and ours.dtype == dtype
            and diff <= tol * scale
            and (grad_diff is None or grad_diff <= tol * scale)
        )
        rows.append((name, dtype, ours.sum().item(), theirs.sum().item(), diff, grad_diff, ok))

print(
    f"{'case':<42} {'dtype':<8} {'ours':>16} {'reference':>16} {'|diff|':>9} {'|grad diff|':>11}  result"
)
for name, dtype, ours, theirs, diff, grad_diff, ok in rows:
    grad_text = "-" if grad_diff is None else f"{grad_diff:.2e}"
    dtype_text = str(dtype).removeprefix("torch.")
    result = "PASS" if ok else "FAIL"
    print(
        f"{name:<42} {dtype_text:<8} {ours:>16.10f} {theirs:>16.10f} {diff:>9.2e} {grad_text:>11}  {result}"
    )

passed = sum(ok for *_, ok in rows)
failed = len(rows) - passed
max_diff = max(diff for *_, diff, _, _ in rows)
max_grad_diff = max(g for *_, g, _ in rows if g is not None)
print(
    f"\n{len(rows)} cases, {passed} passed, {failed} failed "
    f"(max |diff| value {max_diff:.2e}, max |grad diff| {max_grad_diff:.2e})"
)
sys.exit(1 if failed else 0)
