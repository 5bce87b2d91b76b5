"""`hparams`: the model hyperparameters the train stage uses, resolved into one file.

`<project>.train.model` as params.yaml gives it, or, with `<project>.train.use_tuned`, the tune
stage's best_hparams.json laid over it. Train depends on this file alone, so a new search
result reruns train only when train uses it, and a change of model params only when it does
not.
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


def resolve(model, use_tuned: bool, best_hparams: Path | None, key: str) -> dict:
    """`model` (a params section) as a dict, with the tuned values laid over it when
    `use_tuned`, checked by the same schema. `key` names the use_tuned param in errors."""
    hp = model.model_dump()
    if not use_tuned:
        return hp
    if best_hparams is None:
        raise PipelineError(f"{key} is true: give the best_hparams.json path")
    try:
        tuned = json.loads(Path(best_hparams).read_text())
        return type(model)(**(hp | tuned)).model_dump()
    except (OSError, ValueError, TypeError) as e:
        raise PipelineError(f"cannot use tuned hyperparameters {best_hparams}: {e}") from None


def read(path: Path) -> dict:
    """The hyperparameters the hparams stage wrote."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise PipelineError(f"cannot read hyperparameters {path}: {e}") from None


@command(PROJECTS, "hparams",
         arg("best_hparams", type=Path, help="models/<project>/best_hparams.json of tune"),
         arg("out", type=Path, help="models/<project>/hparams.json: what train uses"),
         help="the model hyperparameters for train: params <project>.train.model, or the "
              "tuned ones when <project>.train.use_tuned")
def hparams(params: Params, best_hparams: Path, out: Path, *, project: str) -> None:
    t = getattr(params, project).train
    hp = resolve(t.model, t.use_tuned, best_hparams, f"{project}.train.use_tuned")
    write_json(out, hp)
    log.info("wrote %s (%s): %s", out, "tuned" if t.use_tuned else "from params", hp)
