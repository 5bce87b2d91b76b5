"""register: a new version of `imdb.promote.model_name` from the train run's logged model; the
`champion` alias moves to it only when its validation metric beats the champion's."""

from __future__ import annotations

from pathlib import Path

from rnnpipe.core import registry
from rnnpipe.core.commands import command
from rnnpipe.core.params import Params


@command("imdb", "register", *registry.ARGS, help=registry.HELP)
def register(params: Params, model: Path, metrics: Path, out: Path) -> None:
    registry.register_stage("imdb", params.imdb.promote, model, metrics, out)
