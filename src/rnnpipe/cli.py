"""`rnnpipe <project> <command>`: the only entry point dvc.yaml calls."""

from __future__ import annotations

import argparse
import importlib
import inspect
import logging
import os
import sys

from rnnpipe.errors import PipelineError
from rnnpipe.stages import COMMANDS, PROJECTS, STAGE_MODULES

log = logging.getLogger("rnnpipe")
# TensorFlow's C++ start-up chatter (CUDA probing, CPU features) hides the stage's own log
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _load_stage_modules() -> None:
    for name in STAGE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            # a stage module that is not written yet simply adds no commands
            if e.name != name:
                raise


def build_parser() -> argparse.ArgumentParser:
    _load_stage_modules()
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
        commands = COMMANDS[project]
        listing = ", ".join(commands) or "none"
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
    parser = build_parser()
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
            from rnnpipe.params import load_params

            cmd.func(load_params(args.params), **kwargs)
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
