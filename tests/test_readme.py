"""The README and the pages under docs/ are true: their paths and make targets exist, their links
and anchors resolve, the README is a short front door with a table of contents, its code snippet
runs, and the commands that name a log folder write exactly there."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ok
from conftest import train as train_in_process

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README_PATH = REPO / "README.md"
PAGES = [README_PATH, *sorted(DOCS.glob("*.md"))]
TEXT = {page: page.read_text() for page in PAGES}
README = TEXT[README_PATH]
# the pages the README's content was moved into: each a title, a sentence, its own contents
GUIDE_PAGES = [
    DOCS / f"{name}.md" for name in ("guide", "study", "noise", "performance", "development")
]
README_MAX_LINES = 300

# a path from the repository root, as the pages write them in backticks (`src/losslab/...`)
PATH_PATTERN = re.compile(r"(?<![\w/.-])((?:src|scripts|conf|tests|docs|\.ci)/[\w./-]*[\w])")
# a path from the page's own folder up into the repository, as docs pages link files (../src/...)
UP_PATH_PATTERN = re.compile(
    r"(?<![\w/.-])(\.\./(?:(?:src|scripts|conf|tests|docs|\.ci)/[\w./-]*[\w]"
    r"|Makefile|README\.md|pyproject\.toml))"
)
LINK_PATTERN = re.compile(r"\]\(([^)\s]+)\)")  # the target of [text](target) and ![alt](target)
HEADING_PATTERN = re.compile(r"(#{1,6}) (.+)")
EXTERNAL = re.compile(r"[a-z][a-z0-9+.-]*:", flags=re.IGNORECASE)  # http:, https:, mailto:


def page_name(page: Path) -> str:
    return page.relative_to(REPO).as_posix()


def lines_outside_code(text: str) -> Iterator[tuple[int, str]]:
    """(index, line) of every line outside fenced code blocks (indented fences included)."""
    fence = False
    for i, line in enumerate(text.splitlines()):
        if line.lstrip().startswith("```"):
            fence = not fence
        elif not fence:
            yield i, line


def headings(text: str) -> list[tuple[int, int, str]]:
    """(line index, level, title) of every Markdown heading outside code blocks."""
    found = []
    for i, line in lines_outside_code(text):
        m = HEADING_PATTERN.fullmatch(line)
        if m:
            found.append((i, len(m.group(1)), m.group(2).strip()))
    return found


def slug(title: str) -> str:
    """GitHub's anchor of a heading: lowercase, only letters, digits, spaces, hyphens and
    underscores kept, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor; a repeated one gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for _, _, title in headings(text):
        base = slug(title)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(text: str) -> list[str]:
    """The targets of the Markdown links and images outside code (blocks and `spans`)."""
    prose = "\n".join(line for _, line in lines_outside_code(text))
    prose = re.sub(r"`[^`\n]*`", "``", prose)
    return LINK_PATTERN.findall(prose)


def local_links(page: Path) -> Iterator[tuple[str, Path, str]]:
    """(link, file it names, anchor) of every link of a page into the repository."""
    for target in links(TEXT[page]):
        if EXTERNAL.match(target):
            continue
        file, _, anchor = target.partition("#")
        yield target, (page.parent / file).resolve() if file else page, anchor


def section(heading: str, pages: list[Path] = PAGES) -> str:
    """The text under a heading line (to the next heading of its level or above), on whichever
    page (the README or a docs page) holds it."""
    level = len(heading) - len(heading.lstrip("#"))
    for page in pages:
        lines, heads = TEXT[page].splitlines(), headings(TEXT[page])
        for n, (i, lvl, title) in enumerate(heads):
            if lvl == level and title == heading.lstrip("#").strip():
                end = next((j for j, lv, _ in heads[n + 1 :] if lv <= level), len(lines))
                return "\n".join(lines[i + 1 : end])
    raise AssertionError(f"no page has the heading {heading!r}")


every_page = pytest.mark.parametrize("page", PAGES, ids=page_name)


@every_page
def test_every_make_target_named_exists(page):
    targets = set(re.findall(r"make ([a-z][\w-]*)", TEXT[page]))
    makefile = (REPO / "Makefile").read_text()
    defined = set(re.findall(r"^([a-z][\w-]*):", makefile, flags=re.MULTILINE))
    if page == README_PATH:
        assert targets  # the README does name some
    assert targets <= defined, targets - defined


@every_page
def test_every_file_path_named_exists(page):
    text = TEXT[page]
    from_root = set(PATH_PATTERN.findall(text))
    from_page = set(UP_PATH_PATTERN.findall(text))
    missing = sorted(p for p in from_root if not (REPO / p).exists())
    missing += sorted(p for p in from_page if not (page.parent / p).exists())
    assert missing == []


def test_the_path_patterns_find_the_paths_the_pages_name():
    everything = "\n".join(TEXT.values())
    paths = set(PATH_PATTERN.findall(everything))
    assert {"src/losslab/losses", "src/losslab/run/rundir.py", "scripts/check_losses.py"} <= paths
    assert "../Makefile" in UP_PATH_PATTERN.findall(TEXT[DOCS / "development.md"])
    # a path from docs/ is not read as one from the root, nor the other way round
    assert PATH_PATTERN.findall("[x](../src/losslab) `src/losslab`") == ["src/losslab"]
    assert UP_PATH_PATTERN.findall("[x](../src/losslab) `src/losslab`") == ["../src/losslab"]


@every_page
def test_no_page_has_unfilled_placeholders(page):
    assert re.findall(r"\b[A-Z]+_(?:TABLE|TEXT)\b|\{\{\w+\}\}", TEXT[page]) == []


def test_the_readme_is_a_short_front_door_with_a_table_of_contents():
    assert README.count("\n") <= README_MAX_LINES  # what `wc -l README.md` counts
    contents = section("## Contents", [README_PATH])
    listed = set(re.findall(r"^\s*- \[[^\]]+\]\(([^)]+)\)$", contents, flags=re.MULTILINE))
    sections = {f"#{slug(title)}" for _, level, title in headings(README) if level == 2}
    assert sections - {"#contents"} <= listed, sections - listed
    pages = {page_name(page) for page in PAGES[1:]}
    assert pages <= listed, pages - listed
    documentation = section("## Documentation", [README_PATH])
    assert pages <= set(LINK_PATTERN.findall(documentation))


@pytest.mark.parametrize("page", GUIDE_PAGES, ids=page_name)
def test_each_docs_page_has_a_title_a_sentence_and_its_contents(page):
    text = TEXT[page]
    title, blank, sentence = text.splitlines()[:3]
    assert title.startswith("# ")
    assert blank == ""
    assert sentence.strip()
    contents = section("## Contents", [page])
    listed = set(re.findall(r"\]\((#[^)]+)\)", contents))
    sections = {f"#{slug(t)}" for _, level, t in headings(text) if level == 2} - {"#contents"}
    assert sections <= listed, sections - listed


@every_page
def test_every_relative_link_names_a_file_that_exists(page):
    broken = [
        target
        for target, file, _ in local_links(page)
        if not file.exists() or not file.is_relative_to(REPO)
    ]
    assert broken == []


@every_page
def test_every_anchor_link_names_a_heading_of_its_page(page):
    broken = [
        target
        for target, file, anchor in local_links(page)
        if anchor and not (file.suffix == ".md" and anchor in anchors(file.read_text()))
    ]
    assert broken == []


def test_the_use_the_losses_snippet_runs(capsys):
    section = README.split("### Use the losses in your own code", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "0.5108"


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml"))
)
def test_every_experiment_is_named_in_the_docs(name):
    everything = "\n".join(TEXT.values())
    assert f"experiment={name}" in everything or f"experiment/{name}.yaml" in everything
    assert (REPO / "conf" / "experiment" / f"{name}.yaml").is_file()


TINY = ["trainer.max_epochs=1", "data.train_size=200"]


def train(*args: str, cwd: Path):
    return ok(train_in_process(*args, cwd=cwd))


@pytest.mark.slow
def test_the_overfit_command_writes_into_logs_overfit_runs(tmp_path, data_dir):
    text = section("### 3. Few samples overfit, and the curves show it")
    assert "losslab-train experiment=overfit && losslab-report logs/overfit/runs/<time>" in text
    train("experiment=overfit", *TINY, cwd=tmp_path)
    (run,) = (tmp_path / "logs" / "overfit" / "runs").iterdir()
    assert (run / ".hydra" / "config.yaml").is_file()
    assert list(tmp_path.iterdir()) == [tmp_path / "logs"]


@pytest.mark.slow
def test_make_sweep_writes_into_logs_loss_vs_batch_multiruns(tmp_path, data_dir):
    assert "logs/loss_vs_batch/multiruns/<time>/" in section("## Sweeps and the report")
    train("experiment=loss_vs_batch", "data.batch_size=500,1000", *TINY, cwd=tmp_path)
    (sweep,) = (tmp_path / "logs" / "loss_vs_batch" / "multiruns").iterdir()
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == [
        f"loss={loss},data.batch_size={bs}" for loss in ("cee", "sse") for bs in (1000, 500)
    ]
    assert (sweep / "summary.md").is_file()


@pytest.mark.slow
def test_the_own_config_folder_example_runs_as_written(tmp_path, data_dir):
    text = section("### Your own experiments, without touching the package")
    block = re.search(r"```bash\n(.*?)```", text, flags=re.DOTALL).group(1)
    path, body = re.search(r"cat > (\S+) <<'EOF'\n(.*?)\nEOF", block, flags=re.DOTALL).groups()
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_text(body)
    assert "losslab-train --config-dir my_conf experiment=wide" in block
    train("--config-dir", "my_conf", "experiment=wide", *TINY, cwd=tmp_path)
    (run,) = (tmp_path / "logs" / "wide" / "runs").iterdir()  # -> logs/wide/runs/<time>
    assert "- 400" in (run / ".hydra" / "config.yaml").read_text()
