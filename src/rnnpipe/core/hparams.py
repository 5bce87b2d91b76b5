"""`hparams`: the model hyperparameters the train stage uses, resolved into one file.

`<project>.train.model` as params.yaml gives it, or, with `<project>.train.use_tuned`, with the
tune stage's best_hparams.json (the searched keys, those listed in `<project>.tune.space`)
laid over it. A key is either searched or fixed, never silently both: the keys the search
decides are named in the log, and so is every value of params.yaml that they replace. Train
depends on this file alone, so a new search result reruns train only when train uses it, and a
change of model params only when it does.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from rnnpipe.core.atomic import write_json
from rnnpipe.core.commands import PROJECTS, arg, command
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import Params

log = logging.getLogger(__name__)


def read_tuned(best_hparams: Path | None, key: str) -> dict:
    """The searched keys and their values, as the tune stage wrote them."""
    if best_hparams is None:
        raise PipelineError(f"{key} is true: give the best_hparams.json path")
    try:
        tuned = json.loads(Path(best_hparams).read_text())
    except (OSError, ValueError) as e:
        raise PipelineError(f"cannot use tuned hyperparameters {best_hparams}: {e}") from None
    if not isinstance(tuned, dict):
        raise PipelineError(
            f"cannot use tuned hyperparameters {best_hparams}: not a mapping of model keys"
        )
    return tuned


def resolve(model, tuned: dict | None, best_hparams: Path | str = "best_hparams.json") -> dict:
    """`model` (a params section) as a dict, with the `tuned` values laid over it, checked by
    the same schema."""
    hp = model.model_dump()
    if tuned is None:
        return hp
    try:
        return type(model)(**(hp | tuned)).model_dump()
    except (ValueError, TypeError) as e:
        raise PipelineError(f"cannot use tuned hyperparameters {best_hparams}: {e}") from None


def replaced(given: dict, tuned: dict, section: str) -> list[str]:
    """One line for each key of `section` whose params.yaml value the search replaced."""
    return [
        f"{section}.{k}: {given[k]!r} in params.yaml is not used: the search chose {v!r}"
        for k, v in sorted(tuned.items())
        if k in given and given[k] != v
    ]


def read(path: Path) -> dict:
    """The hyperparameters the hparams stage wrote."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise PipelineError(f"cannot read hyperparameters {path}: {e}") from None


@command(
    PROJECTS,
    "hparams",
    arg("best_hparams", type=Path, help="models/<project>/best_hparams.json of tune"),
    arg("out", type=Path, help="models/<project>/hparams.json: what train uses"),
    help="the model hyperparameters for train: params <project>.train.model, with the "
    "searched keys from tune when <project>.train.use_tuned",
)
def hparams(params: Params, best_hparams: Path, out: Path, *, project: str) -> None:
    t = getattr(params, project).train
    tuned = read_tuned(best_hparams, f"{project}.train.use_tuned") if t.use_tuned else None
    hp = resolve(t.model, tuned, best_hparams)
    write_json(out, hp)
    if tuned is None:
        log.info("wrote %s from params %s.train.model: %s", out, project, hp)
        return
    log.info(
        "wrote %s: the search decides %s (%s.tune.space); the rest from params %s.train.model",
        out,
        ", ".join(sorted(tuned)) or "nothing",
        project,
        project,
    )
    for line in replaced(t.model.model_dump(), tuned, f"{project}.train.model"):
        # stderr, beside DVC's output: a user who edited that key sees why nothing changed
        log.warning(
            "%s (set %s.train.use_tuned: false to train on params.yaml's model, or "
            "drop the key from %s.tune.space to fix it)",
            line,
            project,
            project,
        )
