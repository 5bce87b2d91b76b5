"""The commands behind `rnnpipe <project> <command>`.

By convention the command `<command>` of `<project>` lives in the module
`rnnpipe.<project>.<command>`, which registers it with `@command` when imported (a module may
import another that registers it, such as rnnpipe.imdb.download importing rnnpipe.core.fetch).
`rnnpipe <project> <command>` imports that module alone: a DVC stage's code is its module and
what that imports, and no central table that every stage would depend on lists the commands.
Help and a mistyped name read the decorators from the source instead (rnnpipe.cli.listing, no
import): @command's projects, name and help are literals, or names bound to literals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

PROJECTS = ("imdb", "charlm")


@dataclass(frozen=True)
class Command:
    func: Callable
    help: str
    arguments: tuple[tuple[tuple, dict], ...] = ()
    # False for commands such as `generate` that work from a model URI alone
    needs_params: bool = True


COMMANDS: dict[str, dict[str, Command]] = {p: {} for p in PROJECTS}


def module_of(project: str, name: str) -> str:
    """The module that registers `rnnpipe <project> <name>`."""
    return f"rnnpipe.{project}.{name}"


def arg(*flags, **kwargs) -> tuple[tuple, dict]:
    """One argparse argument, as `parser.add_argument(*flags, **kwargs)` takes it."""
    return flags, kwargs


def command(
    projects: str | tuple[str, ...], name: str, *arguments, help: str, needs_params: bool = True
):
    """Register `func` as `rnnpipe <project> <name>`; it is called as func(params, **args)
    (or func(**args) when needs_params is False). A function with a `project` parameter
    gets the project's name."""
    if isinstance(projects, str):
        projects = (projects,)

    def register(func):
        for project in projects:
            if name in COMMANDS[project] and COMMANDS[project][name].func is not func:
                raise RuntimeError(f"command {project} {name} registered twice")
            COMMANDS[project][name] = Command(func, help, tuple(arguments), needs_params)
        return func

    return register
