"""The code a `rnnpipe <project> <command>` runs: its module and everything it imports inside the
package (at module level or inside functions), found by reading the source, not running it.

`python -m tests.depgraph` prints each stage's code deps as dvc.yaml should list them.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "rnnpipe"


def module_file(module: str) -> Path | None:
    base = SRC / module.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path, module: str) -> set[str]:
    """Package modules that `path` imports, and sibling .py files it names in a string (such
    as an MLflow models-from-code file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.endswith(".py") and (path.parent / node.value).is_file():
            found.add(f"{package}.{node.value[:-3]}")
    return {m for m in found if m.split(".")[0] == PACKAGE and module_file(m)}


def _is_trivial(path: Path) -> bool:
    """An __init__.py that holds a docstring at most: importing it runs nothing."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def closure(*modules: str) -> set[Path]:
    """Files of `modules` and of every package module they import, transitively, with the
    __init__.py of each package on the way unless it is trivial."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages
        todo += sorted(_imports(module_file(module), module))
    files = {module_file(m) for m in seen}
    return {f for f in files if not (f.name == "__init__.py" and _is_trivial(f))}


def stage_code(project: str, command: str) -> set[str]:
    """The repo-relative files `rnnpipe <project> <command>` runs: the CLI (and what it imports
    to load params) and the command's module closure."""
    from rnnpipe.core.commands import module_of

    files = closure("rnnpipe.cli", "rnnpipe.core.params", f"rnnpipe.{project}.params",
                    module_of(project, command))
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
