"""The three demonstrations in scripts/ run end to end on tiny settings and show what they claim:
accuracy is a staircase while the loss is smooth (loss_vs_accuracy.py), g_SSE = g_CEE / C at a
uniform start and SSE's gradient vanishes on a saturated mistake (gradients.py), and
screenshot.py serves a run to a browser, stops the server, and says what it needs."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import child_env, write_run

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = REPO_ROOT / "scripts"
VENV_BIN = Path(sys.executable).parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BROWSER = next(
    (b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
)

pytestmark = pytest.mark.process


def run_script(name: str, *args: str, cwd: Path = REPO_ROOT, env: dict | None = None):
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / name), *map(str, args)],
        cwd=cwd,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result


def assert_ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG file, after checking its header."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# -- loss_vs_accuracy.py ------------------------------------------------------------------------


@pytest.mark.slow
def test_accuracy_is_a_staircase_and_the_loss_is_smooth(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "loss_vs_accuracy.png"
    stdout = assert_ok(
        run_script(
            "loss_vs_accuracy.py",
            *("--data-dir", data_dir, "--train-images", 1000, "--images", 200),
            *("--points", 401, "--out", out),  # points are cheap: one matmul each
        )
    )
    zero_acc = float(re.search(r"^  accuracy ([\d.]+)$", stdout, re.M).group(1))
    zero_loss = float(re.search(r"^  loss +([\d.]+)$", stdout, re.M).group(1))
    steps = int(re.search(r"(\d+) steps", stdout).group(1))
    assert zero_acc > 0.5, stdout  # flat almost everywhere...
    assert steps >= 3, stdout  # ...yet it does move over the range
    assert zero_loss < 0.1, stdout
    assert png_size(out) == (800, 900)
    assert out.stat().st_size > 20_000


@pytest.mark.slow
def test_a_checkpoint_brings_its_runs_own_network_and_image_scaling(
    shared_run, data_dir: Path, tmp_path: Path
) -> None:
    """The book's setting (sigmoid, pixels in [0, 1] only): the loss the script reports is the
    checkpoint's CEE on images scaled as its run scaled them, and the figure goes to the
    current folder, never over docs/."""
    import torch.nn.functional as F

    from losslab.lit.classifier import Classifier, scale_pixels
    from losslab.lit.data import MNISTDataModule

    run = shared_run(
        "book_like", "model.hidden=[20]", "model.activation=sigmoid", "loss.from_logits=false",
        "classifier.normalize=false", "data.train_size=500", "trainer.max_epochs=1", "~hydra.callbacks.report",
    )  # fmt: skip
    ckpt = run / "checkpoints" / "last.ckpt"
    docs = (REPO_ROOT / "docs" / "loss_vs_accuracy.png").read_bytes()
    stdout = assert_ok(
        run_script(
            "loss_vs_accuracy.py",
            *("--data-dir", data_dir, "--ckpt", ckpt, "--train-images", 100),
            *("--images", 100, "--points", 21),
            cwd=tmp_path,
        )
    )
    net = Classifier.load_from_checkpoint(ckpt).net.eval()
    dm = MNISTDataModule(data_dir, download=False)
    dm.setup()
    x, y = dm.splits["test"]
    x = scale_pixels(x, normalize=False)  # the run's scaling: pixels in [0, 1] only
    with torch.no_grad():
        expected = F.cross_entropy(net(x[:100]), y[:100]).item()
    reported = float(re.search(r"CEE loss ([\d.]+)", stdout).group(1))
    assert reported == pytest.approx(expected, abs=1e-4), stdout
    assert isinstance(net.layers[2], torch.nn.Sigmoid)
    assert png_size(tmp_path / "loss_vs_accuracy.png") == (800, 900)
    assert (REPO_ROOT / "docs" / "loss_vs_accuracy.png").read_bytes() == docs


# -- gradients.py -------------------------------------------------------------------------------


@pytest.mark.slow
def test_sse_gradient_is_cee_over_c_at_uniform_start_and_vanishes_when_saturated(
    data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "gradients.png"
    stdout = assert_ok(
        run_script(
            "gradients.py",
            *("--data-dir", data_dir, "--train-images", 1000, "--images", 200, "--out", out),
        )
    )
    diff = float(re.search(r"max \|g_SSE - g_CEE / C\| = (\S+)", stdout).group(1))
    assert diff < 1e-6, stdout
    uniform = re.search(r"^uniform start, z = 0 +(\S+) +(\S+) +(\S+)$", stdout, re.M)
    assert float(uniform.group(3)) == pytest.approx(0.1), stdout  # 1/C
    saturated = re.findall(r"^saturated, s = +([\d.]+) +(\S+) +(\S+) +(\S+)$", stdout, re.M)
    s, _, cee, ratio = (list(map(float, col)) for col in zip(*saturated, strict=True))
    assert len(s) >= 5, stdout
    assert s[0] == 0, stdout
    # 1/C at s = 0, a small bump (the softmax is steepest near s = 2.7), then it only falls
    assert ratio[0] == pytest.approx(0.1), stdout
    assert max(ratio) < 0.2, stdout
    past_peak = [r for x, r in zip(s, ratio, strict=True) if x >= 5]
    assert len(past_peak) >= 3, stdout
    assert all(a > b for a, b in itertools.pairwise(past_peak)), stdout
    assert ratio[-1] < 1e-3, stdout
    assert cee[-1] == pytest.approx(2**0.5, rel=1e-3), stdout
    for model in ("untrained", "trained"):
        row = re.search(rf"^{model} model \(acc [\d.]+\) +(\S+) +(\S+) +(\S+)$", stdout, re.M)
        assert float(row.group(1)) < float(row.group(2)), stdout  # SSE pushes less than CEE
    assert png_size(out) == (1300, 500)
    assert out.stat().st_size > 20_000


# -- screenshot.py ------------------------------------------------------------------------------


def test_screenshot_without_chromium_exits_2_and_says_what_to_install(tmp_path: Path) -> None:
    result = run_script(
        "screenshot.py", tmp_path, "--out", tmp_path / "x.png", env={"PATH": str(VENV_BIN)}
    )
    assert result.returncode == 2, result.stderr
    assert "chromium" in result.stderr
    assert "apt-get install chromium" in result.stderr
    assert not (tmp_path / "x.png").exists()


def write_tiny_run(folder: Path, epochs: int = 5) -> None:
    """A small run's event files as losslab-train writes them (epoch curves + the layout)."""
    curves = {
        "acc/train": [0.5 + 0.1 * e for e in range(epochs + 1)],
        "acc/test": [0.5 + 0.05 * e for e in range(epochs + 1)],
        "loss/train": [1.0 / (1 + e) for e in range(epochs + 1)],
        "loss/test": [1.2 / (1 + e) for e in range(epochs + 1)],
    }
    curves["gap/acc"] = [
        a - b for a, b in zip(curves["acc/train"], curves["acc/test"], strict=True)
    ]
    write_run(folder, curves)


FAKE_BROWSER = """#!{python}
# Stands in for chromium: answers the DevTools protocol on fds 3 (commands) and 4 (replies and
# events), records its arguments, the commands, and the runs the server lists; its screenshot
# is a fixed PNG.
import base64, json, os, sys, urllib.request
record = {{"args": sys.argv[1:], "calls": []}}
buffer = b""
while True:
    while b"\\0" not in buffer:
        chunk = os.read(3, 65536)
        if not chunk:
            sys.exit(0)
        buffer += chunk
    message, buffer = buffer.split(b"\\0", 1)
    call = json.loads(message)
    record["calls"].append([call["method"], call["params"]])
    result, events = {{}}, []
    if call["method"] == "Target.createTarget":
        result = {{"targetId": "t1"}}
    elif call["method"] == "Target.attachToTarget":
        result = {{"sessionId": "s1"}}
    elif call["method"] == "Page.navigate":
        if "#" in call["params"]["url"]:
            with urllib.request.urlopen(call["params"]["url"].split("?")[0].split("#")[0]
                                        + "data/runs", timeout=10) as response:
                record["runs"] = json.load(response)
        events = [{{"method": "Page.loadEventFired", "params": {{}}}}]
    elif call["method"] == "Page.captureScreenshot":
        result = {{"data": base64.b64encode({png!r}).decode()}}
    for reply in [{{"id": call["id"], "result": result}}, *events]:
        os.write(4, json.dumps(reply).encode() + b"\\0")
    json.dump(record, open({record_file!r}, "w"))
    if call["method"] == "Browser.close":
        sys.exit(0)
"""


@pytest.mark.slow
def test_screenshot_serves_the_newest_run_to_the_browser_then_stops(tmp_path: Path) -> None:
    old, new = (tmp_path / "logs" / "train" / "runs" / name for name in ("old", "new"))
    write_tiny_run(old)
    write_tiny_run(new)
    os.utime(next(old.glob("events.*")), (1e9, 1e9))  # old's events: year 2001
    bin_dir, record = tmp_path / "bin", tmp_path / "browser.json"
    bin_dir.mkdir()
    browser = bin_dir / "chromium"
    browser.write_text(
        FAKE_BROWSER.format(python=sys.executable, record_file=str(record), png=PNG_MAGIC + b"fake")
    )
    browser.chmod(0o755)

    result = run_script(
        "screenshot.py",
        *("--out", tmp_path / "docs" / "shot.png"),
        cwd=tmp_path,  # default folder: the newest under ./logs
        env={"PATH": f"{bin_dir}{os.pathsep}{VENV_BIN}"},
    )
    assert_ok(result)
    assert f"tensorboard on {Path('logs/train/runs/new')}" in result.stdout
    seen = json.loads(record.read_text())
    assert seen["runs"] == ["train"]  # a single run is named by its task, not "."
    assert "--headless" in seen["args"]
    assert "--remote-debugging-pipe" in seen["args"]
    assert "--window-size=1400,1000" in seen["args"]
    methods = [m for m, _ in seen["calls"]]
    assert methods[-2:] == ["Page.captureScreenshot", "Browser.close"]
    # TensorBoard's settings are set on its own page before the view opens
    navigations = [p["url"] for m, p in seen["calls"] if m == "Page.navigate"]
    settings = {}
    for expression in (p["expression"] for m, p in seen["calls"] if m == "Runtime.evaluate"):
        key, value = re.fullmatch(r"localStorage\.setItem\((.+?), (.+)\)", expression).groups()
        settings[json.loads(key)] = json.loads(value)
    assert methods.index("Runtime.evaluate") < len(methods) - 1 - methods[::-1].index(
        "Page.navigate"
    )  # set on TensorBoard's own page, before the view opens
    # no chart cuts its highest runs, in the time series dashboard and in the older ones
    assert json.loads(settings["_tb_global_settings"])["ignoreOutliers"] is False
    assert settings["_ignoreYOutliers"] == "false"
    origin, url = navigations
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/data/runs", origin)
    assert url == origin.removesuffix("data/runs") + "#custom_scalars&_smoothingWeight=0"
    assert (tmp_path / "docs" / "shot.png").read_bytes() == PNG_MAGIC + b"fake"
    port = int(url.split(":")[2].split("/")[0])
    with pytest.raises(ConnectionRefusedError):  # the server is gone
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.slow
@pytest.mark.skipif(BROWSER is None, reason="needs chromium (apt-get install chromium)")
def test_screenshot_renders_a_run_with_chromium(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_tiny_run(run)
    out = tmp_path / "tensorboard.png"
    assert_ok(run_script("screenshot.py", run, "--out", out, "--wait-ms", 8000))
    assert png_size(out) == (1400, 1000)
    assert out.stat().st_size > 20_000
