"""A PNG of a TensorBoard view of a run, a sweep or a study, as a reader sees it.

Starts this venv's ``tensorboard`` on the folder, on a free local port, waits until it serves
the runs, renders the page with headless Chromium, and stops both whatever happens. It installs
nothing: without ``chromium`` (or ``chromium-browser``, ``google-chrome``) on PATH it exits with
status 2 and says what to install. Run it:

    python scripts/screenshot.py                      # newest run or sweep under logs/
    python scripts/screenshot.py logs/overfit/runs/<time> --out docs/tensorboard.png
    python scripts/screenshot.py <folder> --tab scalars   # the SCALARS tab (acc/* charts)
    python scripts/screenshot.py logs/study-noise --view '<what losslab-study printed after
        http://localhost:6006/>' --out docs/noise_tensorboard.png
    make screenshot ARGS=<folder>

``--view`` is a view losslab-study prints (the part after ``http://localhost:6006/``:
``?smoothing=0&runFilter=...#timeseries``); ``--runs`` shows only those run folders of the
folder (copied into a temporary folder that TensorBoard then reads); ``--filter`` is the
SCALARS tab's tag filter (a regular expression).

The browser is driven over its DevTools pipe (``--remote-debugging-pipe``, no extra package):
before the view opens, TensorBoard's own settings are set as a reader would set them
(``ignoreOutliers`` off, so that no chart cuts its highest runs; the settings pane closed).

The default folder is the run (``logs/<task>/runs/<time>``) or sweep
(``logs/<task>/multiruns/<time>``) whose event files were written last.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# the older dashboards read their smoothing from the URL's fragment: no smoothing of epoch curves
TABS = {
    "custom_scalars": "#custom_scalars&_smoothingWeight=0",
    "scalars": "#scalars&_smoothingWeight=0",
    "hparams": "#hparams",
}
EVENTS = "events.out.tfevents.*"


def newest_logdir(logs: Path) -> Path | None:
    """The run or sweep folder under ``logs`` with the most recently written event file."""
    written = {}  # folder -> time its newest event file was written
    for folder in logs.glob("*/*runs/*"):
        times = [f.stat().st_mtime for f in folder.rglob(EVENTS)]
        if times:
            written[folder] = max(times)
    return max(written, key=written.get, default=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, server: subprocess.Popen, timeout: float) -> list[str]:
    """Poll ``/data/runs`` until the server lists at least one run; return the runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"tensorboard exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/data/runs", timeout=5) as response:
                runs = json.load(response)
            if runs:  # answering, and done reading at least one run's events
                return runs
        except (urllib.error.URLError, ConnectionError):
            pass  # not listening yet
        time.sleep(0.5)
    raise RuntimeError(f"tensorboard did not serve any run within {timeout:.0f} s")


# TensorBoard's settings (its localStorage key and fields): every point of every run in its
# chart's range, and the charts the whole width
TB_SETTINGS = {
    # the time series dashboard's settings, one JSON object
    "_tb_global_settings": json.dumps(
        {"ignoreOutliers": False, "timeSeriesSettingsPaneOpened": False}
    ),
    "_ignoreYOutliers": "false",  # the older dashboards' (custom scalars, scalars) own setting
}
# software WebGL: TensorBoard's time series charts draw with it
GL_FLAGS = ("--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader")


class DevTools:
    """Chromium's DevTools protocol over ``--remote-debugging-pipe``: it reads commands on file
    descriptor 3 and writes replies and events on 4, each a JSON message ended by a NUL byte."""

    def __init__(self, browser: str, size: str, profile: str, log: Any) -> None:
        to_browser, self._in = os.pipe()
        self._out, from_browser = os.pipe()

        def pipes() -> None:  # in the child, before exec: its fds 3 and 4
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self.process = subprocess.Popen(
            [
                browser,
                "--headless",
                "--no-sandbox",  # needed as root (containers, CI)
                *GL_FLAGS,
                "--disable-quic",
                "--no-first-run",
                # no update checks, sync or phoning home: the page is local, the machine offline
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",  # a fresh profile, never the user's
                f"--window-size={size}",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=pipes,
            pass_fds=(3, 4),
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._id, self.session = b"", 0, None
        self.events: list[dict] = []

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._out], [], [], left)[0]:
                raise RuntimeError("the browser did not answer in time")
            chunk = os.read(self._out, 1 << 16)
            if not chunk:
                raise RuntimeError(f"the browser exited ({self.process.wait()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, timeout: float = 60, **params) -> dict:
        """Send a command (to the page once attached) and return its result."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._in, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._read(deadline))
        self.events.clear()

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError):
            self.call("Browser.close", timeout=10)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._in)
        os.close(self._out)


def screenshot(browser: str, url: str, out: Path, size: str, wait_ms: int) -> None:
    """Render ``url`` with headless Chromium into ``out`` (replaced only on success), with
    TensorBoard's settings (:data:`TB_SETTINGS`) set first."""
    width, height = (int(v) for v in size.split(","))
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile("w+") as log:
        tools = DevTools(browser, size, f"{tmp}/profile", log)
        try:
            target = tools.call("Target.createTarget", url="about:blank")["targetId"]
            tools.session = tools.call("Target.attachToTarget", targetId=target, flatten=True)[
                "sessionId"
            ]
            tools.call("Page.enable")
            tools.call(
                "Emulation.setDeviceMetricsOverride",
                width=width, height=height, deviceScaleFactor=1, mobile=False,
            )  # fmt: skip
            # a page of TensorBoard's origin (not the view: a change of fragment alone would
            # not load the page again)
            origin = url.split("/", 3)[:3]
            tools.call("Page.navigate", url="/".join(origin) + "/data/runs")
            tools.wait_for("Page.loadEventFired")
            for key, value in TB_SETTINGS.items():
                tools.call(
                    "Runtime.evaluate",
                    expression=f"localStorage.setItem({json.dumps(key)}, {json.dumps(value)})",
                )
            tools.call("Page.navigate", url=url)
            tools.wait_for("Page.loadEventFired")
            time.sleep(wait_ms / 1000)  # TensorBoard draws its charts after fetching the data
            data = tools.call("Page.captureScreenshot", format="png")["data"]
        except (RuntimeError, OSError) as err:
            tools.close()
            log.seek(0)
            raise RuntimeError(f"{browser}: {err}\n{log.read()[-2000:]}") from err
        tools.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    partial.write_bytes(base64.b64decode(data))
    partial.replace(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", help="run or sweep folder; default: newest in logs/")
    parser.add_argument("--logs", default="logs", help="where to look for the newest folder")
    parser.add_argument("--out", default="docs/tensorboard.png")
    parser.add_argument("--tab", choices=TABS, default="custom_scalars")
    parser.add_argument(
        "--view", help="a view losslab-study printed: what follows http://localhost:6006/"
    )
    parser.add_argument("--filter", default="acc", help="the scalars tab's tag filter (regex)")
    parser.add_argument("--runs", nargs="+", help="only these run folders of FOLDER")
    parser.add_argument("--window-size", default="1400,1000", help="width,height in pixels")
    parser.add_argument("--wait-ms", type=int, default=8000, help="page time before the shot")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for tensorboard")
    args = parser.parse_args(argv)

    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        print(
            f"screenshot.py needs a Chromium browser to render TensorBoard, and none of "
            f"{', '.join(BROWSERS)} is on PATH. Install one, e.g. on Debian/Ubuntu: "
            f"sudo apt-get install chromium",
            file=sys.stderr,
        )
        return 2
    folder = Path(args.folder) if args.folder else newest_logdir(Path(args.logs))
    if folder is None or not any(folder.rglob(EVENTS)):
        where = folder or f"{args.logs}/*/{{runs,multiruns}}/*"
        print(f"no TensorBoard event files ({EVENTS}) in {where}", file=sys.stderr)
        return 1

    page = TABS[args.tab]
    if args.tab == "scalars":
        page += f"&tagFilter={urllib.parse.quote(args.filter)}"
    if args.view:
        page = args.view.removeprefix("http://localhost:6006").lstrip("/")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tensorboard = Path(sys.executable).parent / "tensorboard"
    with tempfile.TemporaryFile("w+") as log, tempfile.TemporaryDirectory() as chosen:
        # TensorBoard reads "." in the folder it runs in: the page shows no path of this machine
        served = folder
        if args.runs:  # only these runs: their event files, under their own folder names
            for run in args.runs:
                if not any((folder / run).glob(EVENTS)):
                    print(f"--runs: {folder / run} holds no event files", file=sys.stderr)
                    return 1
                (Path(chosen) / run).mkdir()
                for file in (folder / run).glob(EVENTS):
                    shutil.copy(file, Path(chosen) / run)
            served = Path(chosen)
        elif any(folder.glob(EVENTS)):  # a single run: named by its task, not "."
            task = folder.parent.parent.name if folder.parent.name == "runs" else folder.name
            (Path(chosen) / task).mkdir()
            for file in folder.glob(EVENTS):
                shutil.copy(file, Path(chosen) / task)
            served = Path(chosen)
        server = subprocess.Popen(
            [
                str(tensorboard),
                "--logdir=.",
                "--host=127.0.0.1",
                f"--port={port}",
                "--load_fast=false",  # the pure-Python reader: no data-server binary to start
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=served,
        )
        try:
            runs = wait_until_serving(url, server, args.timeout)
            print(f"tensorboard on {folder}: {len(runs)} run(s) at {url}")
            screenshot(browser, f"{url}/{page}", Path(args.out), args.window_size, args.wait_ms)
        except RuntimeError as err:
            log.seek(0)
            print(f"{err}\ntensorboard's log:\n{log.read()[-2000:]}", file=sys.stderr)
            return 1
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    print(f"wrote {args.out} ({args.view or args.tab + ' tab'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
