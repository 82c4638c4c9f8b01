"""A PNG of TensorBoard's "Overfitting" charts (CUSTOM SCALARS tab) for a run or a sweep.

Starts this venv's ``tensorboard`` on the folder, on a free local port, waits until it serves
the runs, renders the page with headless Chromium, and stops the server whatever happens.
It installs nothing: without ``chromium`` (or ``chromium-browser``, ``google-chrome``) on PATH
it exits with status 2 and says what to install. Run it:

    python scripts/screenshot.py                      # newest run or sweep under logs/
    python scripts/screenshot.py logs/overfit/runs/<time> --out docs/tensorboard.png
    python scripts/screenshot.py <folder> --tab scalars   # the SCALARS tab (acc/* charts)
    python scripts/screenshot.py logs/study-noise/final --tab scalars \
        --filter '^(acc/train|acc/train_true|memo/train|acc/test)$' \
        --runs 'loss=cee,data.label_noise=0.4,seed=0' 'loss=sse,data.label_noise=0.4,seed=0'
    make screenshot ARGS=<folder>

``--runs`` shows only those run folders of the sweep (copied into a temporary folder that
TensorBoard then reads); ``--filter`` is the SCALARS tab's tag filter (a regular expression).

The default folder is the run (``logs/<task>/runs/<time>``) or sweep
(``logs/<task>/multiruns/<time>``) whose event files were written last.
"""

from __future__ import annotations

import argparse
import json
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

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
TABS = {"custom_scalars": "#custom_scalars", "scalars": "#scalars", "hparams": "#hparams"}
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


def screenshot(browser: str, url: str, out: Path, size: str, wait_ms: int) -> None:
    """Render ``url`` with headless Chromium into ``out`` (replaced only on success)."""
    with tempfile.TemporaryDirectory() as tmp:
        shot = Path(tmp) / "shot.png"
        command = [
            browser,
            "--headless",
            "--no-sandbox",  # needed as root (containers, CI)
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            # no update checks, sync or phoning home: the page is local, the machine may be offline
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp}/profile",  # a fresh profile, never the user's
            f"--window-size={size}",
            "--hide-scrollbars",
            # TensorBoard draws its charts after fetching the data: let the page run this long
            f"--virtual-time-budget={wait_ms}",
            f"--screenshot={shot}",
            url,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=180)
        if result.returncode != 0 or not shot.is_file():
            raise RuntimeError(
                f"{browser} exited with status {result.returncode} and no screenshot:\n"
                f"{result.stderr[-2000:]}"
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(shot, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", nargs="?", help="run or sweep folder; default: newest in logs/")
    parser.add_argument("--logs", default="logs", help="where to look for the newest folder")
    parser.add_argument("--out", default="docs/tensorboard.png")
    parser.add_argument("--tab", choices=TABS, default="custom_scalars")
    parser.add_argument("--filter", default="acc", help="the scalars tab's tag filter (regex)")
    parser.add_argument("--runs", nargs="+", help="only these run folders of FOLDER")
    parser.add_argument("--window-size", default="1400,1000", help="width,height in pixels")
    parser.add_argument("--wait-ms", type=int, default=15000, help="page time before the shot")
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
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    tensorboard = Path(sys.executable).parent / "tensorboard"
    with tempfile.TemporaryFile("w+") as log, tempfile.TemporaryDirectory() as chosen:
        if args.runs:  # only these runs: their event files, under their own folder names
            for run in args.runs:
                if not any((folder / run).glob(EVENTS)):
                    print(f"--runs: {folder / run} holds no event files", file=sys.stderr)
                    return 1
                (Path(chosen) / run).mkdir()
                for file in (folder / run).glob(EVENTS):
                    shutil.copy(file, Path(chosen) / run)
            folder = Path(chosen)
        server = subprocess.Popen(
            [
                str(tensorboard),
                f"--logdir={folder}",
                "--host=127.0.0.1",
                f"--port={port}",
                "--load_fast=false",  # the pure-Python reader: no data-server binary to start
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            runs = wait_until_serving(url, server, args.timeout)
            print(f"tensorboard on {folder}: {len(runs)} run(s) at {url}")
            screenshot(browser, f"{url}/{page}", Path(args.out), args.window_size, args.wait_ms)
        except (RuntimeError, subprocess.TimeoutExpired) as err:
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
    print(f"wrote {args.out} ({args.tab} tab)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
