"""The real ``tensorboard`` server over a real sweep serves what docs/guide.md promises: runs named
by their job folders, the epoch curves, the "Overfitting" custom-scalars layout, and an HPARAMS
table whose first columns are the swept keys and the selection metric, with real types."""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

pytestmark = [pytest.mark.slow, pytest.mark.process]
STARTUP_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job_names(sweep: Path) -> list[str]:
    return sorted(p.name for p in sweep.iterdir() if list(p.glob("events.out.tfevents.*")))


class Server:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, route: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{route}{query}", timeout=30) as response:
            return json.load(response)

    def post(self, route: str, body: dict) -> Any:
        request = urllib.request.Request(
            f"{self.url}{route}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)


@pytest.fixture(scope="module")
def server(sweep_2x2: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``tensorboard --logdir <sweep>`` on a free local port, up and with every run loaded;
    stopped at the end whatever happens."""
    port = free_port()
    log = (tmp_path_factory.mktemp("tensorboard") / "server.log").open("w+")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "tensorboard"),
            f"--logdir={sweep_2x2}",
            "--host=127.0.0.1",
            f"--port={port}",
            "--load_fast=false",  # the pure-Python reader: no data-server binary to start
            "--reload_interval=1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Server(f"http://127.0.0.1:{port}")
    expected = job_names(sweep_2x2)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                log.seek(0)
                pytest.fail(f"tensorboard exited with {process.returncode}:\n{log.read()}")
            try:
                if sorted(server.get("/data/runs")) == expected:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass  # not listening yet
            if time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(
                    f"tensorboard not serving all runs in {STARTUP_TIMEOUT_S} s:\n{log.read()}"
                )
            time.sleep(0.5)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_runs_are_named_by_the_job_folders_with_nothing_appended(
    server: Server, sweep_2x2: Path
) -> None:
    runs = server.get("/data/runs")
    assert sorted(runs) == job_names(sweep_2x2)
    assert sorted(runs) == sorted(
        f"loss={loss},data.batch_size={bs}" for loss in ("sse", "cee") for bs in (50, 500)
    )


def test_scalars_give_test_accuracy_per_epoch(server: Server, sweep_2x2: Path) -> None:
    for job in job_names(sweep_2x2):
        points = server.get("/data/plugin/scalars/scalars", tag="acc/test", run=job)
        events = EventAccumulator(str(sweep_2x2 / job))
        events.Reload()
        assert [step for _, step, _ in points] == [0, 1]  # x = epoch, 0 = untrained
        assert [value for *_, value in points] == [e.value for e in events.Scalars("acc/test")]


def test_custom_scalars_layout_has_the_overfitting_charts(server: Server) -> None:
    layout = server.get("/data/plugin/custom_scalars/layout")
    (category,) = layout["category"]
    assert category["title"] == "Overfitting"
    titles = [chart["title"] for chart in category["chart"]]
    assert "accuracy: train vs test" in titles
    assert "loss: train vs test" in titles


def test_hparams_experiment_lists_the_keys_that_differ_and_the_deciding_metric_first(
    server: Server,
) -> None:
    experiment = server.post("/data/plugin/hparams/experiment", {"experimentName": ""})
    hparams = {h["name"]: h for h in experiment["hparamInfos"]}
    # the swept keys (TensorBoard orders the ones that differ by name), then how each run ended;
    # the keys every run shares (from_logits, activation, ...) are left out
    assert list(hparams) == ["batch_size", "loss", "epochs", "status"]
    assert [h.get("differs", False) for h in hparams.values()] == [True, True, False, False]
    assert hparams["loss"]["type"] == "DATA_TYPE_STRING"
    assert hparams["loss"]["domainDiscrete"] == ["cee", "sse"]  # the values used, no other
    assert sorted(hparams["batch_size"]["domainDiscrete"]) == [50, 500]
    assert "domainDiscrete" not in hparams["status"]
    metrics = [m["name"]["tag"] for m in experiment["metricInfos"]]
    # the deciding metric, then what is reported: last-epoch and early-stopped test accuracy
    assert metrics[:3] == ["hp/val_acc", "hp/test_acc", "hp/test_at_best"]


def test_hparams_table_has_one_row_per_job_with_typed_values(
    server: Server, sweep_2x2: Path
) -> None:
    response = server.post(
        "/data/plugin/hparams/session_groups",
        {
            "experimentName": "",
            "allowedStatuses": [
                "STATUS_UNKNOWN",
                "STATUS_SUCCESS",
                "STATUS_FAILURE",
                "STATUS_RUNNING",
            ],
            "colParams": [],
            "startIndex": 0,
            "sliceSize": 100,
        },
    )
    groups = response["sessionGroups"]
    assert len(groups) == 4
    seen = set()
    for group in groups:
        hparams = group["hparams"]
        loss, batch_size = hparams["loss"], int(hparams["batch_size"])
        seen.add((loss, batch_size))
        (session,) = group["sessions"]
        assert session["name"] == f"loss={loss},data.batch_size={batch_size}"
        assert "from_logits" not in hparams  # the same in every run: in its config, not here
        metrics = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        assert 0 < metrics["hp/val_acc"] <= 1
        assert 0 < metrics["hp/test_at_best"] <= 1
        assert all(math.isfinite(v) for v in metrics.values())  # no NaN where a number exists
        assert hparams["status"] == "ok"
    assert seen == {(loss, bs) for loss in ("sse", "cee") for bs in (50, 500)}


BROWSER = next(
    (b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None
)


@pytest.mark.skipif(BROWSER is None, reason="needs chromium (apt-get install chromium)")
def test_a_screenshot_of_the_hparams_table_of_the_sweep(sweep_2x2: Path, tmp_path: Path) -> None:
    out = tmp_path / "hparams.png"
    result = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).parents[1] / "scripts" / "screenshot.py"),
            str(sweep_2x2),
            "--tab",
            "hparams",
            "--out",
            str(out),
            "--window-size",
            "1600,700",
            "--wait-ms",
            "8000",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (1600, 700)
    assert len(data) > 30_000  # a rendered table, not a blank page
