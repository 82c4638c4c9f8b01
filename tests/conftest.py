"""Shared fixtures and helpers: the real MNIST folder, a tiny hand-built MNIST, one CPU thread,
``losslab-train`` run in this process (fast) or as a process (where a process is the point),
and small real runs made once per test session and shared between the xdist workers."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from filelock import FileLock

# The test machines have 2 shared cores: keep torch to one thread for the whole session.
torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS = REPO_ROOT / "tests"
MNIST_RAW_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _real_data_dir() -> Path:
    """``$LOSSLAB_DATA_DIR`` (relative paths taken from the repo root), else ``../shared/data``."""
    value = os.environ.get("LOSSLAB_DATA_DIR") or "../shared/data"
    return (REPO_ROOT / value).resolve()  # an absolute value replaces REPO_ROOT


REAL_DATA_DIR = _real_data_dir()
REAL_DATA_PRESENT = all((REAL_DATA_DIR / "MNIST" / "raw" / n).is_file() for n in MNIST_RAW_NAMES)
if REAL_DATA_PRESENT:  # subprocesses started by tests (losslab-train, ...) inherit it
    os.environ["LOSSLAB_DATA_DIR"] = str(REAL_DATA_DIR)
os.environ.pop("LOSSLAB_LOG_DIR", None)  # runs go where each test says


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """Absolute path of the folder that holds the real ``MNIST/raw/`` (read-only!)."""
    if not REAL_DATA_PRESENT:
        pytest.skip(f"real MNIST not found in {REAL_DATA_DIR / 'MNIST' / 'raw'}")
    return REAL_DATA_DIR


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    """Write a uint8 array as an IDX file: magic, one big-endian int32 per dim, then the bytes."""
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.write_bytes(magic.to_bytes(4, "big") + dims + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(tmp_path: Path) -> dict:
    """A 50-train / 20-test MNIST in torchvision's layout ``tmp_path/MNIST/raw/``.

    Labels are ``i % 10`` (train, 5 per class) and ``(3 * i) % 10`` (test); pixels are seeded
    random bytes. Returns ``{"root", "raw", "train_images", "train_labels", "test_images",
    "test_labels"}`` (numpy arrays: what the files hold).
    """
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1234)
    data = {
        "root": tmp_path,
        "raw": raw,
        "train_images": rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(50) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "test_labels": ((3 * np.arange(20)) % 10).astype(np.uint8),
    }
    for split, prefix in (("train", "train"), ("test", "t10k")):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", data[f"{split}_images"], 2051)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", data[f"{split}_labels"], 2049)
    return data


# -- configs as losslab-train composes them ------------------------------------------------------


def compose_train(
    overrides: list[str], checked: bool = True, output_dir: str = "/tmp/losslab-compose-test"
):
    """The task config as losslab-train composes it, with every check of a start run on it (the
    schemas' ranges, the cross-key rules, the constructors'); Hydra's own part (the run folder
    ``output_dir``, the group choices) is in ``HydraConfig.get()``, as when Hydra runs."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from losslab.run.build import parts
    from losslab.run.config import register
    from losslab.run.rules import check

    register()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    OmegaConf.set_readonly(cfg.hydra, False)
    cfg.hydra.runtime.output_dir = output_dir  # Hydra sets it when it runs
    HydraConfig.instance().set_config(cfg)
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg.hydra
    if checked:
        check(cfg, choices)
        parts(cfg)
    return cfg


# -- losslab-train, in this process and as a process ---------------------------------------------


@dataclass
class Result:
    """What a command printed, and its exit status (as ``subprocess.CompletedProcess``)."""

    returncode: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def train(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Result:
    """``losslab-train ARGS`` run in this process, in ``cwd``: the entry point a console script
    calls, with the arguments as the shell passes them, its output captured and its exit status
    returned (a crash: its traceback on stderr, status 1)."""
    from hydra.core.global_hydra import GlobalHydra

    import losslab.train

    out, err, code = io.StringIO(), io.StringIO(), 0
    argv, cwd_before = sys.argv, os.getcwd()
    try:
        os.chdir(cwd)
        sys.argv = ["losslab-train", *args]
        with (
            _environment(env or {}),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            try:
                losslab.train.entry()
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
            except Exception:
                traceback.print_exc(file=err)
                code = 1
    finally:
        sys.argv = argv
        os.chdir(cwd_before)
        GlobalHydra.instance().clear()
        torch.set_num_threads(1)
    return Result(code, out.getvalue(), err.getvalue())


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process: this one's, with ``tests/`` added to (never
    replacing) ``PYTHONPATH``, so the child runs the code under test (a mutated or installed
    copy included) and finds the test callbacks."""
    path = [str(TESTS), *[p for p in sys.path if p and (Path(p) / "losslab").is_dir()]]
    parent = os.environ.get("PYTHONPATH")
    pythonpath = os.pathsep.join([*path, *([parent] if parent else [])])
    return {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1", **(env or {})}


def command(
    *cmd: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600
) -> Result:
    """A command run as a process (the Python of this venv for ``-m`` commands)."""
    done = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=child_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def train_process(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Result:
    """``python -m losslab.train ARGS`` as a process: for what needs one (DDP, a crash that
    must kill the process, the console script's own behaviour)."""
    return command(sys.executable, "-m", "losslab.train", *args, cwd=cwd, env=env)


def ok(result: Result) -> Result:
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


# -- runs made once per session and shared between the xdist workers ---------------------------


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder all xdist workers of this session share (one per session without xdist).
    Under mutation testing (mutmut runs a session per mutant) one folder for the whole run: a
    shared run is a test's input, trained once by the code before mutation."""
    if "MUTANT_UNDER_TEST" in os.environ:  # mutmut runs the tests in its folder mutants/
        shared = Path.cwd() / ".shared-runs"
        shared.mkdir(exist_ok=True)
        return shared
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    (root / "shared").mkdir(exist_ok=True)
    return root / "shared"


@contextlib.contextmanager
def _not_counted_by_mutmut() -> Iterator[None]:
    """While mutmut maps tests to the functions they reach ("stats"), a shared run's training
    is not the test's own: the mutants reuse the run trained here, so the functions only its
    training reaches must count as reached by no test (not as survivors of this one)."""
    if os.environ.get("MUTANT_UNDER_TEST") != "stats":
        yield
        return
    from mutmut import state

    before = set(state()._stats)
    yield
    state()._stats.intersection_update(before)


@pytest.fixture(scope="session")
def shared_run(shared_dir: Path, data_dir: Path) -> Callable[..., Path]:
    """``shared_run(name, *args)``: the folder of ``losslab-train ARGS`` run once per session
    into ``<shared>/<name>`` (``hydra.run.dir``, or ``hydra.sweep.dir`` with ``-m``), whichever
    worker asks first; the others wait for it. Read-only for tests: copy to change one."""

    def make(name: str, *args: str, env: dict[str, str] | None = None) -> Path:
        folder = shared_dir / name
        key = "hydra.sweep.dir" if "-m" in args else "hydra.run.dir"
        with FileLock(str(shared_dir / f"{name}.lock")):
            if (shared_dir / f"{name}.done").exists():
                return folder
            if os.environ.get("MUTANT_UNDER_TEST", "") not in ("", "stats"):
                # a mutant's session: a run it trains is its own, never shared
                folder = Path(tempfile.mkdtemp()) / name
                ok(train(*args, f"{key}={folder}", cwd=folder.parent, env=env))
                return folder
            shutil.rmtree(folder, ignore_errors=True)
            with _not_counted_by_mutmut():
                ok(train(*args, f"{key}={folder}", cwd=shared_dir, env=env))
            (shared_dir / f"{name}.done").touch()
        return folder

    return make


TINY = ("data.train_size=500", "trainer.max_epochs=1", "~hydra.callbacks.report")


@pytest.fixture(scope="session")
def sweep_2x2(shared_run) -> Path:
    """A real 2 x 2 sweep (loss=sse,cee x data.batch_size=50,500; 1000 samples, 1 epoch, a
    validation split of 500) with the default Hydra callbacks, so the sweep folder also holds
    the end-of-sweep report. Job folders: ``loss=sse,data.batch_size=50`` and siblings."""
    return shared_run(
        "sweep_2x2",
        "-m",
        "loss=sse,cee",
        "data.batch_size=50,500",
        "data.train_size=1000",
        "data.val_size=500",
        "trainer.max_epochs=1",
    )


def job_folders(sweep: Path) -> list[str]:
    """The job folders of a sweep folder, sorted."""
    return sorted(
        p.name for p in sweep.iterdir() if (p / ".hydra").is_dir() or (p / "error.txt").is_file()
    )


def tree_digest(folder: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``folder`` (links: ``-> target``; empty
    if the folder is missing)."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): (
            f"-> {os.readlink(p)}" if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest()
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


def event_curves(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every point of every scalar tag, across all of a run's event files (duplicates kept)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[tuple[int, float]]] = {}
    for file in sorted(run_dir.glob("events.out.tfevents.*")):
        ea = EventAccumulator(str(file), size_guidance={"scalars": 0})
        ea.Reload()
        for tag in ea.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in ea.Scalars(tag))
    return out


def final_values(run_dir: Path) -> dict[str, float]:
    """The last test accuracy and loss, train accuracy and test NLL a run's event files hold."""
    c = event_curves(run_dir)
    return {tag: c[tag][-1][1] for tag in ("acc/test", "loss/test", "acc/train", "nll/test")}


def write_run(
    folder: Path,
    curves: dict[str, list[float]],
    hparams: dict | None = None,
    overrides: list[str] | None = None,
) -> Path:
    """A run folder as losslab-train leaves it, built by hand: ``curves`` is ``tag -> values at
    epochs 0, 1, ...`` (``time/epoch`` from epoch 1) in an event file; ``hparams`` the HPARAMS
    row (its ``status``, default ok, goes to ``result.json``; None: the run did not end),
    ``overrides`` its ``.hydra/overrides.yaml``."""
    import yaml
    from torch.utils.tensorboard import SummaryWriter

    from losslab.run import tb
    from losslab.run.rundir import RunDir

    folder.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(str(folder))
    writer.add_custom_scalars(tb.OVERFITTING_LAYOUT)
    for tag, values in curves.items():
        first = 1 if tag == "time/epoch" else 0
        for epoch, value in enumerate(values, start=first):
            writer.add_scalar(tag, value, epoch)
    if hparams is not None:
        for summary in tb.session_summaries(hparams, hparams.get("status", "ok")):
            writer.file_writer.add_summary(summary)
    writer.close()
    run = RunDir(folder)
    if hparams is not None:
        epochs = len(curves.get("acc/test", [0])) - 1
        run.write_result(hparams.get("status", "ok"), epochs, {}, hparams, 1.0)
    if overrides is not None:
        run.config_file.parent.mkdir(exist_ok=True)
        run.overrides_file.write_text(yaml.safe_dump(overrides))
    return folder


# -- make mutate: the likeliest killer first ----------------------------------------------------

# modules whose tests live in a file not named after them
_TEST_FILES_OF = {
    "_common": ("losses",),
    "cee": ("losses",),
    "outputs": ("losses",),
    "batches": ("steps_per_call", "data"),
    "mnist": ("data",),
    "models": ("classifier",),
    "build": ("config", "resume"),
    "train": ("tiny_run", "entry"),
    "rules": ("config",),
    "start": ("tiny_run", "resume"),
    "overrides": ("cli",),
    "candidates": ("verdict",),
    "catalogue": ("verdict", "noise"),
    "stages": ("verdict", "noise"),
    "runs": ("report",),
    "tables": ("report",),
    "ddp": ("train",),
    "spec": ("classifier",),
    "trainer": ("steps_per_call",),
    "checkpoints": ("start", "evaluate", "classifier"),
    "console": ("tiny_run", "callbacks"),
    "progress": ("sweeper",),
}


def _targets(item: pytest.Item) -> tuple[str, ...] | None:
    marker = item.get_closest_marker("mutation_targets")
    return None if marker is None else marker.args


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``make mutate`` mutmut runs one session per mutant and stops at its first failing
    test, so the order decides the cost of a killed mutant: the mutated module's own test file
    first, then the fastest tests (their times from mutmut's first pass). A test marked
    ``mutation_targets(module, ...)`` runs only for the mutants of those modules: it trains a
    tiny run to test the orchestration (train, start, sweep, ...), and the library modules its
    training passes through have fast tests of their own. Nothing a test asserts changes; plain
    ``pytest`` keeps its order and every test."""
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if "__mutmut_" not in mutant:
        return
    stem = mutant.split(".x", 1)[0].rpartition(".")[2]
    other = [i for i in items if stem not in (_targets(i) or (stem,))]
    if other:
        config.hook.pytest_deselected(items=other)
        items[:] = [i for i in items if stem in (_targets(i) or (stem,))]
    own = {f"test_{name}.py" for name in (stem, *_TEST_FILES_OF.get(stem, ()))}
    stats = Path.cwd() / "mutmut-stats.json"
    seconds = json.loads(stats.read_text())["duration_by_test"] if stats.is_file() else {}
    items.sort(key=lambda item: (item.path.name not in own, seconds.get(item.nodeid, 1.0)))


@pytest.fixture
def drawn(monkeypatch) -> list:
    """Every matplotlib figure saved during the test, kept for it to read (the file is written
    too)."""
    from matplotlib.figure import Figure

    saved: list[Figure] = []
    save = Figure.savefig

    def keep(self, *args, **kwargs):
        saved.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return saved
