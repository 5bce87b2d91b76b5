"""The code a `rnnpipe <project> <command>` runs: its module and everything it imports inside the
package (at module level or inside functions), found by reading the source, not running it
(rnnpipe.core.codedeps).

`python -m tests.depgraph` prints each stage's code deps as dvc.yaml should list them.
"""

from __future__ import annotations

from pathlib import Path

from rnnpipe.core import codedeps

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = codedeps.PACKAGE


def module_file(module: str) -> Path | None:
    return codedeps.module_file(module, SRC)


def _imports(path: Path, module: str) -> set[str]:
    """Package modules that `path` imports, and sibling .py files it names in a string (such
    as an MLflow models-from-code file)."""
    return codedeps.imports(path, module, SRC)


def _is_trivial(path: Path) -> bool:
    return codedeps.is_trivial(path)


def closure(*modules: str) -> set[Path]:
    """Files of `modules` and of every package module they import, transitively, with the
    __init__.py of each package on the way unless it is trivial."""
    files = {module_file(m) for m in codedeps.closure(*modules, src=SRC)}
    return {f for f in files if not (f.name == "__init__.py" and _is_trivial(f))}


def stage_code(project: str, command: str) -> set[str]:
    """The repo-relative files `rnnpipe <project> <command>` runs: the CLI (and what it imports
    to load params) and the command's module closure."""
    from rnnpipe.core.commands import module_of

    files = closure(
        "rnnpipe.cli",
        "rnnpipe.core.params",
        f"rnnpipe.{project}.params",
        module_of(project, command),
    )
    return {f.relative_to(ROOT).as_posix() for f in files}


if __name__ == "__main__":
    from rnnpipe import cli
    from rnnpipe.core.commands import COMMANDS

    cli.build_parser(["--help"], every=True)  # imports every command's module
    for project, commands in COMMANDS.items():
        for command in sorted(commands):
            print(f"{project}_{command}:")
            for f in sorted(stage_code(project, command)):
                print(f"  - {f}")
