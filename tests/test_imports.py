"""Imports run one way: no cycle among losslab's modules (imports inside functions and
``importlib.import_module("losslab....")`` count), the library half never reaches the
orchestration half, the losses and models need torch alone, the run folder needs neither torch
nor Hydra, and the console scripts start nothing heavy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "losslab"

# Each module's half, by its dotted name below ``losslab`` (a package names all its modules); the
# layout is the architecture: lit/ and losses/ the library, read/ the reading half, run/, sweep/
# and the study's stages the orchestration.
LIBRARY = ("names", "errors", "losses", "models", "module", "lit")
READING = (
    "read",
    "run.rundir",
    "run.identity",
    "study.catalogue",
    "study.candidates",
    "study.selection",
    "study.verdict",
)
ORCHESTRATION = ("cli", "train", "run", "sweep", "study")
TRAINING = ("lit.data", "lit.batches", "lit.mnist", "lit.classifier", "module", "train", "run.build",
            "run.start", "sweep", "run.ddp", "run.callbacks")  # fmt: skip


def under(module: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``losslab.<prefix>`` is ``module`` or a package above it, for one of ``prefixes``."""
    name = module.removeprefix("losslab.")
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


def half(module: str) -> str:
    """``library``, ``reading`` or ``orchestration`` (the most specific prefix decides)."""
    if module.startswith("hydra_plugins"):
        return "orchestration"
    if module == "losslab":
        return "library"
    matches = [
        (len(p), h)
        for h, prefixes in (
            ("library", LIBRARY),
            ("reading", READING),
            ("orchestration", ORCHESTRATION),
        )
        for p in prefixes
        if under(module, (p,))
    ]
    return max(matches)[1] if matches else "none"


def module_name(file: Path) -> str:
    parts = file.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(file: Path, known: set[str]) -> set[str]:
    """The losslab modules ``file`` imports anywhere in it, by any spelling."""
    found = set()
    for node in ast.walk(ast.parse(file.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names = [node.args[0].value]
        found |= {n for n in names if n in known}
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(f): f for f in PACKAGE.rglob("*.py")}
    files.update({module_name(f): f for f in (SRC / "hydra_plugins").rglob("*.py")})
    known = set(files)
    return {name: imports_of(file, known) - {name} for name, file in files.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first search (each reported once, from where it closes)."""
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_the_cycle_finder_finds_a_cycle_through_import_module(tmp_path):
    (tmp_path / "losslab").mkdir()
    (tmp_path / "losslab" / "a.py").write_text("def f():\n    from losslab import b\n")
    (tmp_path / "losslab" / "b.py").write_text(
        "import importlib\nimportlib.import_module('losslab.a')\n"
    )
    known = {"losslab", "losslab.a", "losslab.b"}
    edges = {
        "losslab.a": imports_of(tmp_path / "losslab" / "a.py", known),
        "losslab.b": imports_of(tmp_path / "losslab" / "b.py", known),
    }
    assert edges == {"losslab.a": {"losslab", "losslab.b"}, "losslab.b": {"losslab.a"}}
    assert cycles(edges) == [["losslab.a", "losslab.b", "losslab.a"]]


def test_no_module_of_losslab_imports_itself_back_in_any_way():
    edges = graph()
    assert len(edges) > 25
    assert cycles(edges) == []


def test_the_library_half_never_imports_the_orchestration_or_reading_half():
    for name, deps in graph().items():
        if half(name) == "library":
            reached = {d for d in deps if half(d) != "library"}
            assert not reached, f"{name} imports {sorted(reached)}"


def test_the_reading_half_never_imports_training_code():
    for name, deps in graph().items():
        if half(name) == "reading":
            assert not [d for d in deps if under(d, TRAINING)], f"{name} imports {deps}"


def third_party(file: Path) -> set[str]:
    tree = ast.parse(file.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"losslab"}


@pytest.mark.parametrize(
    ("files", "allowed"),
    [
        (sorted((PACKAGE / "losses").glob("*.py")), {"torch"}),
        ([PACKAGE / "models.py"], {"torch"}),
        ([PACKAGE / "run" / "rundir.py", PACKAGE / "run" / "identity.py"], {"yaml"}),
        (
            [PACKAGE / "names.py", PACKAGE / "errors.py"],
            {"yaml", "hydra", "omegaconf", "lightning"},
        ),
    ],
)
def test_what_the_pieces_users_copy_depend_on(files, allowed):
    for file in files:
        assert third_party(file) <= allowed, (file.name, third_party(file) - allowed)


def test_only_the_orchestration_half_knows_hydra():
    for file in PACKAGE.rglob("*.py"):
        if {"hydra", "omegaconf"} & third_party(file):
            assert half(module_name(file)) == "orchestration" or file.name == "errors.py", file


def test_every_module_is_placed_in_one_half():
    halves = {module_name(f): half(module_name(f)) for f in PACKAGE.rglob("*.py")}
    assert [m for m, h in halves.items() if h == "none"] == []
    assert set(halves.values()) == {"library", "reading", "orchestration"}


@pytest.mark.process
def test_the_console_scripts_and_the_package_import_nothing_heavy():
    code = (
        "import sys, losslab, losslab.cli, losslab.names, losslab.errors, losslab.run.rundir\n"
        "heavy = {'torch', 'lightning', 'hydra', 'omegaconf', 'tensorboard', 'numpy'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_no_module_of_the_package_is_over_400_lines():
    long = {
        f.name: n for f in PACKAGE.rglob("*.py") if (n := len(f.read_text().splitlines())) > 400
    }
    assert long == {}
    assert len((PACKAGE / "train.py").read_text().splitlines()) <= 250
