"""The hparams stage: a model key is searched or fixed, never silently both. For every key of
<project>.train.model, changing it in params.yaml either changes hparams.json or the stage says
that the search decides it."""

from __future__ import annotations

import json
import logging
import typing

import pytest
import yaml

from rnnpipe.core import hparams
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import validate
from tests.conftest import ROOT, TINY_PARAMS


def other_value(value, annotation, avoid=()):
    """A value of the key's type different from `value` (and from `avoid`)."""
    choices = [a for a in typing.get_args(annotation) if isinstance(a, str)]
    if choices:
        return next(c for c in choices if c not in (value, "Transformer", *avoid))
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 4 if value > 1 else 2  # a multiple of the heads, as units must be
    if isinstance(value, float):
        return value / 2 if value else 0.25
    raise AssertionError(f"no other value for {value!r}")


def run_hparams(tmp_path, raw: dict, project: str, tuned: dict, caplog) -> tuple[dict, str]:
    """hparams.json and the stage's log."""
    best, out = tmp_path / "best_hparams.json", tmp_path / "hparams.json"
    best.write_text(json.dumps(tuned))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rnnpipe.core.hparams"):
        hparams.hparams(validate(raw), best, out, project=project)
    return json.loads(out.read_text()), "\n".join(r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("path", [ROOT / "params.yaml", TINY_PARAMS], ids=["default", "tiny"])
@pytest.mark.parametrize("project", ["imdb", "charlm"])
def test_every_model_key_changes_hparams_or_says_the_search_decides_it(
    tmp_path, caplog, path, project
):
    raw = yaml.safe_load(path.read_text())
    params = validate(raw)
    model = getattr(params, project).train.model
    space = getattr(params, project).tune.space
    # the search's answer: the first value of each searched key (the tune stage writes those
    # keys alone)
    tuned = {key: values[0] for key, values in space.items()}
    base, _ = run_hparams(tmp_path, raw, project, tuned, caplog)
    assert base == model.model_dump() | tuned
    for key, field in type(model).model_fields.items():
        edited = json.loads(json.dumps(raw))
        value = other_value(getattr(model, key), field.annotation, [tuned.get(key)])
        edited[project]["train"]["model"][key] = value
        try:
            validate(edited)
        except ValueError:  # a value another rule refuses (pretrained needs embed.dim ...)
            continue
        got, said = run_hparams(tmp_path, edited, project, tuned, caplog)
        decides = next(line for line in said.splitlines() if "the search decides" in line)
        if key in space:
            assert got == base, key  # the search decides it, and the user is told so
            assert key in decides.split("decides ")[1].split(" (")[0].split(", "), key
            if value != tuned[key]:
                assert (
                    f"{project}.train.model.{key}: {value!r} in params.yaml is not used: "
                    f"the search chose {tuned[key]!r}" in said
                ), key
        else:
            assert got[key] == value and got == base | {key: value}, key
            assert f"{project}.train.model.{key}:" not in said, key
        # without use_tuned, params.yaml's value is what train gets, searched key or not
        edited[project]["train"]["use_tuned"] = False
        got, said = run_hparams(tmp_path, edited, project, tuned, caplog)
        assert got == model.model_dump() | {key: value} and "not used" not in said


def test_tuned_hparams_are_checked_by_the_schema(tmp_path):
    params = validate(yaml.safe_load(TINY_PARAMS.read_text()))
    model = params.charlm.train.model
    key = "charlm.train.use_tuned"
    path = tmp_path / "best_hparams.json"
    path.write_text('{"cell": "GRU", "units": 256}')  # the searched keys alone
    tuned = hparams.read_tuned(path, key)
    hp = hparams.resolve(model, tuned, path)
    assert (hp["cell"], hp["units"], hp["embedding_dim"]) == ("GRU", 256, model.embedding_dim)
    assert hp.keys() == model.model_dump().keys()
    assert hparams.resolve(model, None) == model.model_dump()
    for bad in (
        '{"cell": "Attention"}',  # not a cell
        '{"hparams": {"cell": "GRU"}}',
    ):  # not a model key
        path.write_text(bad)
        with pytest.raises(PipelineError, match="cannot use tuned hyperparameters"):
            hparams.resolve(model, hparams.read_tuned(path, key), path)
    for bad in ("not json", "[1, 2]"):
        path.write_text(bad)
        with pytest.raises(PipelineError, match="cannot use tuned hyperparameters"):
            hparams.read_tuned(path, key)
    with pytest.raises(PipelineError, match="cannot use tuned hyperparameters"):
        hparams.read_tuned(tmp_path / "missing.json", key)
    with pytest.raises(PipelineError, match="charlm.train.use_tuned is true"):
        hparams.read_tuned(None, key)


def test_schema_defaults_equal_the_committed_params():
    """params.yaml is the one source of values: a default of the schema that params.yaml also
    sets has the same value, so leaving a key out changes nothing."""
    from pydantic import BaseModel

    from rnnpipe.core.params import Section

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = validate(raw)
    differ = []

    def walk(section: Section, given: dict, path: str) -> None:
        for name, field in type(section).model_fields.items():
            value = BaseModel.__getattribute__(section, name)
            if isinstance(value, Section):
                walk(value, given.get(name, {}), f"{path}.{name}")
            elif not field.is_required():
                default = field.get_default(call_default_factory=True)
                if name in given and given[name] != default:
                    differ.append(
                        f"{path}.{name}: default {default!r}, params.yaml {given[name]!r}"
                    )

    for project in ("imdb", "charlm"):
        walk(getattr(params, project), raw[project], project)
    assert differ == [], "\n".join(differ)
