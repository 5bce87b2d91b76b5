"""`rnnpipe <project> <command>`: the only entry point dvc.yaml calls."""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import inspect
import logging
import os
import pkgutil
import sys

from rnnpipe.core.codedeps import SRC, module_file
from rnnpipe.core.commands import COMMANDS, PROJECTS, module_of
from rnnpipe.core.errors import PipelineError, UsageError

log = logging.getLogger("rnnpipe")
# TensorFlow's C++ start-up chatter (CUDA probing, CPU features) hides the stage's own log
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# no usage statistics from Great Expectations (offline machines)
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


def _selected(argv: list[str]) -> tuple[str | None, str | None]:
    """The project and command named on the command line, if any."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--params")
    pre.add_argument("-v", "--verbose", action="store_true")
    pre.add_argument("words", nargs="*")
    words = pre.parse_known_args(argv)[0].words
    return (words + [None, None])[0], (words + [None, None])[1]


# The listing (help, a bad name) reads the @command decorators from the source instead of
# importing every module: importing them all takes TensorFlow, MLflow and GX, 7-10 s.


@functools.cache
def _body(module: str) -> list[ast.stmt]:
    return ast.parse(module_file(module).read_text(encoding="utf-8")).body


def _imported(module: str, name: str) -> str | None:
    """The package module that `name` is bound to at the top of `module`, if any."""
    for stmt in _body(module):
        if isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
            for a in stmt.names:
                if (a.asname or a.name) == name and module_file(f"{stmt.module}.{a.name}"):
                    return f"{stmt.module}.{a.name}"
        elif isinstance(stmt, ast.Import):
            for a in stmt.names:
                if a.asname == name and module_file(a.name):
                    return a.name
    return None


def _lookup(module: str, name: str):
    """The literal value bound to `name` at the top of `module` (or of the module it imports
    it from)."""
    for stmt in _body(module):
        if isinstance(stmt, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in stmt.targets
        ):
            return _value(module, stmt.value)
        if isinstance(stmt, ast.ImportFrom) and module_file(stmt.module or ""):
            for a in stmt.names:
                if (a.asname or a.name) == name:
                    return _lookup(stmt.module, a.name)
    raise ValueError(f"{module}.{name} is not a literal")


def _value(module: str, node: ast.expr):
    if isinstance(node, ast.Name):
        return _lookup(module, node.id)
    if (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and (source := _imported(module, node.value.id))
    ):
        return _lookup(source, node.attr)
    return ast.literal_eval(node)


def _static_help(project: str, name: str) -> str | None:
    """The help of `rnnpipe <project> <name>` as its module registers it (itself or through
    the package modules it imports), read from the source; None if it registers none."""
    todo, seen = [module_of(project, name)], set()
    while todo:
        module = todo.pop(0)
        if module in seen or not module_file(module):
            continue
        seen.add(module)
        for stmt in _body(module):
            if isinstance(stmt, ast.Import):
                todo += [a.name for a in stmt.names if a.name.startswith("rnnpipe.")]
            elif isinstance(stmt, ast.ImportFrom) and (stmt.module or "").startswith("rnnpipe"):
                todo += [stmt.module] + [f"{stmt.module}.{a.name}" for a in stmt.names]
            for d in getattr(stmt, "decorator_list", []):
                if not (
                    isinstance(d, ast.Call)
                    and isinstance(d.func, ast.Name)
                    and d.func.id == "command"
                    and len(d.args) >= 2
                ):
                    continue
                projects, named = _value(module, d.args[0]), _value(module, d.args[1])
                if named == name and project in (
                    (projects,) if isinstance(projects, str) else projects
                ):
                    kw = {k.arg: k.value for k in d.keywords}
                    return _value(module, kw["help"])
    return None


def listing(project: str) -> dict[str, str]:
    """{command: help} of a project, without importing the commands' modules."""
    found = {}
    for m in pkgutil.iter_modules([str(SRC / "rnnpipe" / project)]):
        try:
            text = _static_help(project, m.name)
        except (ValueError, KeyError):  # not plain enough to read: import it
            text = COMMANDS[project][m.name].help if _import(project, m.name) else None
        if text is not None:
            found[m.name] = text
    return dict(sorted(found.items()))


def _import(project: str, name: str) -> bool:
    """Import the module of `rnnpipe <project> <name>`; whether it registered that command."""
    importlib.import_module(module_of(project, name))
    return name in COMMANDS[project]


def build_parser(argv: list[str] | None = None, every: bool = False) -> argparse.ArgumentParser:
    """The parser for `argv`: the selected command's module alone is imported (every module
    with `every`, for the arguments of all commands); the others are listed by name and help."""
    argv = sys.argv[1:] if argv is None else argv
    listed = {project: listing(project) for project in PROJECTS}
    selected = _selected(argv)
    for project in PROJECTS:
        for name in listed[project]:
            if every or (project, name) == selected:
                _import(project, name)
    parser = argparse.ArgumentParser(
        prog="rnnpipe",
        description="Train, evaluate, track and serve recurrent sequence models. "
        "Projects: imdb (sentiment of movie reviews), charlm (character-level language "
        "model of The Mysterious Island). Usually run through `dvc repro`.",
    )
    parser.add_argument(
        "--params", default="params.yaml", help="params file (default: %(default)s)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, tracebacks")
    projects = parser.add_subparsers(dest="project", metavar="PROJECT", required=True)
    for project in PROJECTS:
        pp = projects.add_parser(
            project,
            help=f"commands: {', '.join(listed[project])}",
            description=f"Commands of the {project} project.",
        )
        sub = pp.add_subparsers(dest="command", metavar="COMMAND", required=True)
        for name, text in listed[project].items():
            cp = sub.add_parser(name, help=text, description=text)
            if cmd := COMMANDS[project].get(name):
                for flags, kwargs in cmd.arguments:
                    cp.add_argument(*flags, **kwargs)
                cp.set_defaults(_command=cmd)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    cmd = args._command
    kwargs = {
        k: v
        for k, v in vars(args).items()
        if k in inspect.signature(cmd.func).parameters and k != "params"
    }
    try:
        if cmd.needs_params:
            from rnnpipe.core.params import load_params

            cmd.func(
                load_params(args.params, args.project, stage=f"{args.project} {args.command}"),
                **kwargs,
            )
        else:
            cmd.func(**kwargs)
    except (PipelineError, OSError) as e:
        if args.verbose:
            log.exception("failed")
        print(f"rnnpipe {args.project} {args.command}: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
