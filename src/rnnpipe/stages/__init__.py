"""The commands behind `rnnpipe <project> <command>`.

Each stage module registers its commands with `@command`; `rnnpipe.cli` imports the modules
listed in STAGE_MODULES and builds the argument parser from what they registered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

PROJECTS = ("imdb", "charlm")
STAGE_MODULES = (
    "rnnpipe.stages.data",
    "rnnpipe.stages.quality",
    "rnnpipe.stages.imdb",
    "rnnpipe.stages.charlm",
    "rnnpipe.stages.tune",
    "rnnpipe.stages.register",
)


@dataclass(frozen=True)
class Command:
    func: Callable
    help: str
    arguments: tuple[tuple[tuple, dict], ...] = ()
    # False for commands such as `generate` that work from a model URI alone
    needs_params: bool = True


COMMANDS: dict[str, dict[str, Command]] = {p: {} for p in PROJECTS}


def arg(*flags, **kwargs) -> tuple[tuple, dict]:
    """One argparse argument, as `parser.add_argument(*flags, **kwargs)` takes it."""
    return flags, kwargs


def command(projects: str | tuple[str, ...], name: str, *arguments, help: str,
            needs_params: bool = True):
    """Register `func` as `rnnpipe <project> <name>`; it is called as func(params, **args)
    (or func(**args) when needs_params is False)."""
    if isinstance(projects, str):
        projects = (projects,)

    def register(func):
        for project in projects:
            if name in COMMANDS[project]:
                raise RuntimeError(f"command {project} {name} registered twice")
            COMMANDS[project][name] = Command(func, help, tuple(arguments), needs_params)
        return func

    return register


__all__ = ["COMMANDS", "PROJECTS", "STAGE_MODULES", "Command", "arg", "command"]
