"""`rnnpipe <project> <command>`: the only entry point dvc.yaml calls."""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import os
import pkgutil
import sys

from rnnpipe.core.commands import COMMANDS, PROJECTS, module_of
from rnnpipe.core.errors import PipelineError

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


def _import(project: str, name: str) -> bool:
    """Import the module of `rnnpipe <project> <name>`; whether it registered that command."""
    try:
        importlib.import_module(module_of(project, name))
    except ModuleNotFoundError as e:
        if e.name != module_of(project, name):
            raise  # the module exists, something it imports does not
        return False
    return name in COMMANDS[project]


def _import_commands(argv: list[str]) -> None:
    """Import the selected command's module alone; every project's modules for help or a bad
    name (a command is the module of its name: rnnpipe.<project>.<command>)."""
    project, name = _selected(argv)
    if project in PROJECTS and name and name.isidentifier() and _import(project, name):
        return
    for project in PROJECTS:
        package = importlib.import_module(f"rnnpipe.{project}")
        for module in pkgutil.iter_modules(package.__path__):
            _import(project, module.name)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    _import_commands(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="rnnpipe",
        description="Train, evaluate, track and serve recurrent sequence models. "
        "Projects: imdb (sentiment of movie reviews), charlm (character-level language "
        "model of The Mysterious Island). Usually run through `dvc repro`.",
    )
    parser.add_argument("--params", default="params.yaml",
                        help="params file (default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, tracebacks")
    projects = parser.add_subparsers(dest="project", metavar="PROJECT", required=True)
    for project in PROJECTS:
        commands = dict(sorted(COMMANDS[project].items()))
        listing = ", ".join(commands)
        pp = projects.add_parser(project, help=f"commands: {listing}",
                                 description=f"Commands of the {project} project.")
        sub = pp.add_subparsers(dest="command", metavar="COMMAND", required=True)
        for name, cmd in commands.items():
            cp = sub.add_parser(name, help=cmd.help, description=cmd.help)
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
        k: v for k, v in vars(args).items()
        if k in inspect.signature(cmd.func).parameters and k != "params"
    }
    try:
        if cmd.needs_params:
            from rnnpipe.core.params import load_params

            cmd.func(load_params(args.params, args.project,
                                 stage=f"{args.project} {args.command}"), **kwargs)
        else:
            cmd.func(**kwargs)
    except (PipelineError, OSError) as e:
        if args.verbose:
            log.exception("failed")
        print(f"rnnpipe {args.project} {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
