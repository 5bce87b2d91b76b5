"""The README and docs/ stay true to the tree: links resolve, named make targets and rnnpipe
commands exist, and the README stays short enough to read in one go."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _parse(path: Path) -> tuple[list[str], list[str], list[str]]:
    """(prose paragraphs with inline code replaced by a placeholder, fenced code blocks, inline
    code spans) of a Markdown file. A paragraph is joined into one line, so that a link or a
    code span may wrap."""
    prose, blocks, spans = [], [], []
    fence, block, paragraph = None, [], []

    def end_paragraph():
        text = " ".join(line.strip() for line in paragraph)
        spans.extend(m.group(2).strip() for m in CODE_SPAN.finditer(text))
        prose.append(CODE_SPAN.sub("CODE", text))
        paragraph.clear()

    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.lstrip()
        if fence is None and stripped.startswith(("```", "~~~")):
            end_paragraph()
            fence, block = stripped[:3], []
        elif fence is not None and stripped.startswith(fence):
            blocks.append("\n".join(block))
            fence = None
        elif fence is not None:
            block.append(line)
        elif not stripped or stripped.startswith(("#", "|", "- ")):
            end_paragraph()  # a blank line, a heading, a table row or a list item starts anew
            paragraph.append(line)
        else:
            paragraph.append(line)
    end_paragraph()
    return prose, blocks, spans


CODE_SPAN = re.compile(r"(`+)(.+?)\1")


def github_slug(heading: str) -> str:
    """GitHub's anchor of a heading: the text as rendered (a link's text, no backticks), lower
    case, punctuation dropped except '-' and '_', each space a '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def headings(path: Path) -> list[str]:
    """The text of each ATX heading of a Markdown file, outside code blocks."""
    found, fence = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.lstrip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        elif fence is not None and stripped.startswith(fence):
            fence = None
        elif fence is None and (m := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)):
            found.append(m.group(1))
    return found


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in headings(path):
        slug = github_slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def links(path: Path) -> list[str]:
    prose, _, _ = _parse(path)
    return [m.group(1) for line in prose for m in LINK.finditer(line)]


def code_texts(path: Path) -> list[str]:
    """Every inline code span and every line of every code block."""
    _, blocks, spans = _parse(path)
    return spans + [line for block in blocks for line in block.splitlines()]


def test_the_readme_and_docs_exist_and_the_readme_is_short():
    assert (ROOT / "docs").is_dir()
    assert len(DOCS) > 1
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"


def test_every_docs_page_is_linked_from_the_readme_or_the_docs_index():
    linked = set()
    for page in (README, ROOT / "docs" / "README.md"):
        if page.exists():
            for target in links(page):
                if not re.match(r"[a-z][a-z0-9+.-]*:|//|#", target):
                    linked.add((page.parent / target.split("#")[0]).resolve())
    orphans = [_rel(p) for p in DOCS[1:] if p.resolve() not in linked and p.name != "README.md"]
    assert not orphans, f"not linked from README.md or docs/README.md: {orphans}"


def test_github_slug():
    assert github_slug("Sentiment (imdb)") == "sentiment-imdb"
    assert github_slug("2. The tracking server") == "2-the-tracking-server"
    assert (
        github_slug("Distributed search (one chief, several workers)")
        == "distributed-search-one-chief-several-workers"
    )
    assert github_slug("The `core/` package_name") == "the-core-package_name"
    assert github_slug("IMDb tokenize+encode") == "imdb-tokenizeencode"


@pytest.mark.parametrize("page", DOCS, ids=_rel)
def test_relative_links_resolve(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:|//", target):
            continue  # https:, mailto: ...
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        if not dest.is_relative_to(ROOT):
            broken.append(f"{target}: outside the repository")
        elif not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {_rel(dest)}")
    assert not broken, f"{_rel(page)}: {broken}"


def makefile_targets() -> set[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        if m := re.match(r"([A-Za-z0-9_.-]+(?:[ \t]+[A-Za-z0-9_.-]+)*)[ \t]*::?(?!=)", line):
            targets.update(name for name in m.group(1).split() if not name.startswith("."))
    return targets


def make_targets_named(text: str) -> list[str]:
    """The targets of each `make ...` in a line of code: `make test STAGES=x` -> test."""
    found = []
    for m in re.finditer(r"(?<![\w./$-])make(?:[ \t]+([^\n`#;&|)]*))?", text):
        try:  # as the shell splits it: STAGES="a b" is one word
            words = shlex.split(m.group(1) or "")
        except ValueError:  # an unclosed quote: the line goes on elsewhere
            words = (m.group(1) or "").split()
        for word in words:
            if "=" in word or word.startswith("-"):
                continue  # a variable or an option
            if not re.fullmatch(r"[A-Za-z0-9_.-]+", word):
                break  # the end of the command (a placeholder, a quote...)
            found.append(word)
    return found


def test_make_targets_named():
    assert make_targets_named("make test STAGES=imdb_train") == ["test"]
    assert make_targets_named('make verify STAGES="imdb_vocab ... imdb_train"') == ["verify"]
    assert make_targets_named("RNNPIPE_DATA_MIRROR=/x make run    # sets up .venv") == ["run"]
    assert make_targets_named("make setup VENV=/elsewhere") == ["setup"]
    assert make_targets_named("cd rnnpipe && make setup") == ["setup"]
    assert make_targets_named("make lock LOCK_FLAGS=") == ["lock"]
    assert make_targets_named("make") == []
    assert make_targets_named("cmake build; remake it") == []
    assert {"setup", "lock", "run", "test", "clean"} <= makefile_targets()


@pytest.mark.parametrize("page", DOCS, ids=_rel)
def test_make_targets_exist(page):
    targets = makefile_targets()
    missing = sorted({t for text in code_texts(page) for t in make_targets_named(text)} - targets)
    assert not missing, f"{_rel(page)} names make targets the Makefile lacks: {missing}"


@pytest.fixture(scope="module")
def parser():
    from rnnpipe import cli

    return cli.build_parser(["--help"], every=True)  # imports every command's module


def _choices(parser) -> dict:
    return next(a for a in parser._actions if a.dest in ("project", "command")).choices


def rnnpipe_commands_named(text: str) -> list[tuple[str, str | None, list[str]]]:
    """(first word, second word, --options after them) of each `rnnpipe ...` in a line."""
    found = []
    for m in re.finditer(r"(?<![\w./$-])rnnpipe(?=[ \t]|$)([^\n#;&|)`]*)", text):
        words = [w.strip("[]") for w in m.group(1).split()]
        words = [w for w in words if w and w != "\\"]
        if not words:
            continue
        first, second = words[0], (words[1] if len(words) > 1 else None)
        options = [w.split("=")[0] for w in words[1:] if w.startswith("--")]
        found.append((first, second, options))
    return found


def test_rnnpipe_commands_named():
    assert rnnpipe_commands_named("rnnpipe imdb predict --file x.csv [--model-uri m]") == [
        ("imdb", "predict", ["--file", "--model-uri"])
    ]
    assert rnnpipe_commands_named("`rnnpipe <project> <command> <paths...>`") == [
        ("<project>", "<command>", [])
    ]
    assert rnnpipe_commands_named("cd rnnpipe && make setup") == []
    assert rnnpipe_commands_named("rnnpipe.imdb.train, src/rnnpipe/cli.py, rnnpipe-imdb") == []


@pytest.mark.parametrize("page", DOCS, ids=_rel)
def test_rnnpipe_commands_exist(page, parser):
    from rnnpipe.core.commands import COMMANDS, PROJECTS

    projects = _choices(parser)
    wrong = []
    for text in code_texts(page):
        for first, second, options in rnnpipe_commands_named(text):
            if first.startswith("-"):
                if first not in parser._option_string_actions:
                    wrong.append(f"rnnpipe {first}")
                continue
            if first in PROJECTS:
                names = [first]
            elif first == "<project>":
                names = list(PROJECTS)
            elif re.fullmatch(r"[a-z][a-z0-9_]*", first):
                wrong.append(f"rnnpipe {first}: no such project")
                continue
            else:
                continue  # not a command line ("cd rnnpipe && ...", a log line's prefix)
            if second is None or second.startswith(("<", "-")):
                continue
            error_line = second.endswith(":")  # "rnnpipe imdb ingest: error: ..."
            command = second.rstrip(":")
            for project in names:
                if command not in COMMANDS[project]:
                    wrong.append(f"rnnpipe {project} {command}: no such command")
                    continue
                if error_line:
                    continue
                known = _choices(projects[project])[command]._option_string_actions
                wrong += [
                    f"rnnpipe {project} {command} {o}: no such option"
                    for o in options
                    if o not in known
                ]
    assert not wrong, f"{_rel(page)}: {sorted(set(wrong))}"


def test_rnnpipe_help(parser, capsys):
    with pytest.raises(SystemExit) as e:
        parser.parse_args(["--help"])
    assert e.value.code == 0
    assert "imdb" in capsys.readouterr().out
