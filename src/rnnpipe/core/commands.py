"""The commands behind `rnnpipe <project> <command>`, and the module that runs each.

`rnnpipe <project> <command>` imports that command's module alone (a DVC stage's code is its
module and what that imports), which registers its commands with `@command`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

PROJECTS = ("imdb", "charlm")

# project -> command -> module
MODULES: dict[str, dict[str, str]] = {
    "imdb": {
        "download": "rnnpipe.core.fetch",
        "ingest": "rnnpipe.imdb.ingest",
        "check_raw": "rnnpipe.imdb.checks",
        "vocab": "rnnpipe.imdb.prepare",
        "encode": "rnnpipe.imdb.prepare",
        "check_encoded": "rnnpipe.imdb.checks",
        "embed": "rnnpipe.imdb.embed",
        "tune": "rnnpipe.imdb.tune",
        "hparams": "rnnpipe.core.hparams",
        "train": "rnnpipe.imdb.train",
        "evaluate": "rnnpipe.imdb.evaluate",
        "register": "rnnpipe.imdb.register",
        "baseline": "rnnpipe.imdb.baseline",
        "compare": "rnnpipe.imdb.compare",
        "predict": "rnnpipe.imdb.predict",
        "serve": "rnnpipe.core.serve",
    },
    "charlm": {
        "download": "rnnpipe.core.fetch",
        "ingest": "rnnpipe.charlm.ingest",
        "check_raw": "rnnpipe.charlm.checks",
        "vocab": "rnnpipe.charlm.prepare",
        "encode": "rnnpipe.charlm.prepare",
        "check_encoded": "rnnpipe.charlm.checks",
        "tune": "rnnpipe.charlm.tune",
        "hparams": "rnnpipe.core.hparams",
        "train": "rnnpipe.charlm.train",
        "evaluate": "rnnpipe.charlm.evaluate",
        "register": "rnnpipe.charlm.register",
        "compare": "rnnpipe.charlm.compare",
        "generate": "rnnpipe.charlm.generate",
        "serve": "rnnpipe.core.serve",
    },
}


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
