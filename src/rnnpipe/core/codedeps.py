"""The package modules a module runs: the ones it imports inside rnnpipe, at module level or
inside functions, transitively, found by reading the source with `ast` (nothing is imported).

It decides a DVC stage's code deps (tests/depgraph.py; dvc.yaml lists them), the code a served
model ships (rnnpipe.core.packaging) and where the CLI reads a command's source (rnnpipe.cli).
Standard library only: `rnnpipe --help` imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2]  # the folder that holds the package
PACKAGE = "rnnpipe"


def module_file(module: str, src: Path = SRC) -> Path | None:
    """The source file of `module` (a .py file or a package's __init__.py) under `src`, or None
    when the package has no such module."""
    base = src / module.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_name(path: Path, src: Path = SRC) -> str:
    """The module whose source file is `path` (the inverse of module_file)."""
    parts = Path(path).resolve().relative_to(src.resolve()).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, module: str, src: Path = SRC) -> set[str]:
    """Package modules that `path` (the source of `module`) imports, and sibling .py files it
    names in a string (such as an MLflow models-from-code file)."""
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
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.endswith(".py")
            and node.value != "__init__.py"
            and (path.parent / node.value).is_file()
        ):
            found.add(f"{package}.{node.value[:-3]}")
    return {m for m in found if m.split(".")[0] == PACKAGE and module_file(m, src)}


def is_trivial(path: Path) -> bool:
    """An __init__.py that holds a docstring at most: importing it runs nothing."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def closure(*modules: str, src: Path = SRC) -> set[str]:
    """`modules` and every package module they import, transitively, with the packages on the
    way (whose __init__.py runs first)."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        path = module_file(module, src)
        if path is None:
            raise ValueError(f"no module {module} in {src}")
        seen.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages
        todo += sorted(imports(path, module, src))
    return seen
