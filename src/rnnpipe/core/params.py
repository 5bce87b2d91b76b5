"""The schema of params.yaml: what every project shares, and the loader.

Each project's section is checked by that project's own schema, `rnnpipe.<project>.params`
(`SCHEMA`), so an edit of one project's schema reruns only that project's stages. A stage loads
the file through `load_params(path, project)`: an unknown key, a wrong type or an impossible
value in the top level or the project's section stops it with a message that names the key and
what is allowed (the other project's section is checked by that project's stages, and by
`load_params(path)` with no project, as the tests do).

params.yaml is the one source of values: the model sections (`<project>.train.model`) have no
defaults here, and every other default equals the committed params.yaml (a test checks it).
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
    model_validator,
)

from rnnpipe.core.commands import PROJECTS
from rnnpipe.core.errors import PipelineError

# Transformer: self-attention (rnnpipe.core.attention) instead of a recurrent cell; `units` is
# then the model width, `layers` the number of attention blocks, `heads` divides `units`
CellType = Literal["SimpleRNN", "LSTM", "GRU", "Transformer"]


# Where `load_params(..., stage=...)` appends the keys a stage read, when set (tests compare
# them with the stage's `params` in dvc.yaml).
TRACE_ENV = "RNNPIPE_PARAMS_TRACE"
_read: set[str] = set()


class Section(BaseModel):
    # extra="forbid": a misspelt key is an error, not a silently ignored setting
    model_config = ConfigDict(extra="forbid", frozen=True)
    _path: str = PrivateAttr(default="")  # dotted key of this section, set by load_params
    _traced: bool = PrivateAttr(default=False)

    def __getattribute__(self, name):
        value = super().__getattribute__(name)
        if name[0] != "_" and name in type(self).model_fields and self._traced:
            if not isinstance(value, Section):
                _read.add(f"{self._path}.{name}".lstrip("."))
        return value

    def model_dump(self, **kwargs):
        if self._traced:
            _read.add(self._path)
        return super().model_dump(**kwargs)


def _trace(section: Section, path: str = "") -> None:
    section._path, section._traced = path, True
    for name in type(section).model_fields:
        value = BaseModel.__getattribute__(section, name)
        if isinstance(value, Section):
            _trace(value, f"{path}.{name}".lstrip("."))


def _write_trace(path: str, stage: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"stage": stage, "keys": sorted(_read)}) + "\n")


class DownloadParams(Section):
    url: str
    filename: str = Field(min_length=1)
    # Accepted SHA-256 checksums of the file; empty means "not checked".
    sha256: list[str]
    timeout_s: float = Field(default=60.0, gt=0)
    # Folder searched before the URL; null means $RNNPIPE_DATA_MIRROR, then ../shared/data.
    mirror: str | None = None


def check_heads(cell: str, units: int, heads: int) -> None:
    if cell == "Transformer" and units % heads:
        raise ValueError(f"heads ({heads}) must divide units ({units}), the Transformer's width")


class TuneParams(Section):
    tuner: Literal["random", "bayesian", "hyperband"] = "hyperband"
    objective: Literal["val_loss", "val_accuracy"] = "val_loss"
    # the most models the search builds
    max_trials: int = Field(default=6, ge=1)
    # epochs of a trial (hyperband: of its longest trials; it starts most at fewer)
    epochs: int = Field(default=3, ge=1)
    # a time budget for exploration: no trial starts after it, a running one stops at its next
    # epoch's end, and the best finished trial is the answer; the result then depends on the
    # machine's speed (the report says cut_by_budget). null: no limit, the default
    max_minutes: float | None = Field(default=None, gt=0)
    batch_size: int = Field(default=64, ge=1)
    # share of the training data a trial sees: half chose the model that all of it chose, in
    # about half the time (benchmarks/README.md, "Searches on half the training data")
    train_fraction: float = Field(default=0.5, gt=0, le=1)
    # share of the validation data a trial is scored on
    valid_fraction: float = Field(default=1.0, gt=0, le=1)
    # model key -> the values to try; one value fixes it. A key left out is fixed at its value
    # in <project>.train.model. The keys and every value are checked against the model schema.
    space: dict[str, list]

    @model_validator(mode="after")
    def _space(self):
        for key, values in self.space.items():
            if not values:
                raise ValueError(
                    f"space.{key}: an empty list (give one value to fix a key, "
                    "or leave the key out)"
                )
        return self


def _check_value(model: Section, key: str, value, where: str, section: str) -> None:
    """`value` in place of `model`'s `key` passes the model schema (`where` names the setting
    in errors, `section` the model's section)."""
    schema = type(model)
    if key not in schema.model_fields:
        raise ValueError(
            f"{where}: not a key of {section} (one of {', '.join(schema.model_fields)})"
        )
    try:
        schema(**(BaseModel.model_dump(model) | {key: value}))
    except ValidationError as e:
        raise ValueError(
            f"{where}: {value!r} is refused: {e.errors()[0]['msg'].removeprefix('Value error, ')}"
        ) from None


def check_space(tune: TuneParams, model: Section, section: str) -> None:
    """Every key of tune.space is a key of `model` (the fixed model, <project>.train.model) and
    every value one that the model schema accepts in its place."""
    fixed = BaseModel.model_dump(model)
    for key, values in tune.space.items():
        for value in values:
            _check_value(model, key, value, f"tune.space.{key}", section)
    # a Transformer trial takes any pair of heads and units the space offers
    if "Transformer" in tune.space.get("cell", [fixed["cell"]]):
        for units in tune.space.get("units", [fixed["units"]]):
            for heads in tune.space.get("heads", [fixed["heads"]]):
                if units % heads:
                    raise ValueError(
                        f"tune.space.heads: {heads} does not divide "
                        f"tune.space.units {units} (a Transformer's width)"
                    )


class CompareParams(Section):
    """The compare stage: the tuned recurrent model (the hparams stage's hparams.json) and an
    attention model, trained on the same splits with the same epochs, scored on test."""

    epochs: int = Field(ge=1)
    # a time budget per model for exploration: a model still training then stops at the end of
    # that epoch, and its row says cut_by_budget. null: no limit, the default
    max_minutes: float | None = Field(default=None, gt=0)
    batch_size: int = Field(default=64, ge=1)
    patience: int = Field(default=1, ge=0)
    # model keys laid over hparams.json for each row; the attention row is cell Transformer
    recurrent: dict[str, Any] = Field(default_factory=dict)
    attention: dict[str, Any]


def check_compare(compare: CompareParams, model: Section, section: str) -> None:
    """Every key of the compare rows is a key of `model` (<project>.train.model) and every value
    one that the model schema accepts in its place."""
    for name, keys in (("recurrent", compare.recurrent), ("attention", compare.attention)):
        for key, value in keys.items():
            _check_value(model, key, value, f"compare.{name}.{key}", section)
    if compare.recurrent.get("cell") == "Transformer":
        raise ValueError("compare.recurrent.cell: the recurrent row takes a recurrent cell")
    if compare.attention.get("cell", "Transformer") != "Transformer":
        raise ValueError("compare.attention.cell: the attention row is a Transformer")


class PromoteParams(Section):
    model_name: str = Field(min_length=1)
    # the validation metric (a key of the `valid` section of metrics.json) that decides
    # promotion to the `champion` alias; test metrics never decide
    metric: str = Field(min_length=1)
    greater_is_better: bool


class Params(Section):
    """What load_params returns: the seed and the project's section, checked by its schema
    (`params.<project>`); the sections of the projects not loaded stay plain dicts."""

    seed: int = Field(default=42, ge=0)


def schema(project: str) -> type[Section]:
    """The schema of a project's section: `SCHEMA` in rnnpipe.<project>.params."""
    return importlib.import_module(f"rnnpipe.{project}.params").SCHEMA


def _params_model(projects: tuple[str, ...]) -> type[Params]:
    fields = {
        p: ((schema(p), ...) if p in projects else (dict[str, Any] | None, None)) for p in PROJECTS
    }
    return create_model("Params", __base__=Params, **fields)


def _format_error(err: ValidationError, path: Path) -> str:
    lines = [f"{path}: {err.error_count()} invalid parameter(s)"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            where = (
                f"src/rnnpipe/{e['loc'][0]}/params.py"
                if e["loc"][0] in PROJECTS
                else "src/rnnpipe/core/params.py"
            )
            msg = f"unknown key (check its spelling; see params.yaml and {where})"
        if e["type"] == "value_error":  # a rule across keys: the message names them
            lines.append(f"  {key}: {msg.removeprefix('Value error, ')}")
        else:
            lines.append(f"  {key}: {msg} (got {e.get('input')!r})")
    return "\n".join(lines)


def validate(raw: dict, project: str | None = None) -> Params:
    """`raw` (params.yaml as a dict) checked: the top level and `project`'s section (every
    project's when None). Raises pydantic's ValidationError."""
    return _params_model(PROJECTS if project is None else (project,)).model_validate(raw)


def load_params(
    path: str | Path = "params.yaml", project: str | None = None, stage: str | None = None
) -> Params:
    """The validated params: the top level and `project`'s section (every project's when
    None). With `stage` given and $RNNPIPE_PARAMS_TRACE set, the keys the stage reads are
    appended to that file when the process ends."""
    path = Path(path)
    if project is not None and project not in PROJECTS:
        raise PipelineError(f"unknown project {project!r} (one of {', '.join(PROJECTS)})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"params file not found: {path}") from None
    except yaml.YAMLError as e:
        raise PipelineError(f"{path} is not valid YAML: {e}") from None
    if raw is not None and not isinstance(raw, dict):
        raise PipelineError(
            f"{path}: the top level must be a mapping of keys, got {type(raw).__name__}"
        )
    try:
        params = validate(raw or {}, project)
    except ValidationError as e:
        raise PipelineError(_format_error(e, path)) from None
    if stage and os.environ.get(TRACE_ENV):
        _trace(params)
        atexit.register(_write_trace, os.environ[TRACE_ENV], stage)
    return params
