"""params.yaml goes through one schema: bad keys, types and values name the key."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rnnpipe import cli
from rnnpipe.charlm.params import CharlmIngestParams
from rnnpipe.core import params as params_module
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import Params, load_params
from tests import tinydata
from tests.conftest import ROOT, TINY_PARAMS


def write_params(path: Path, edit=None) -> Path:
    """The tiny params, with `edit(raw_dict)` applied, written to `path`."""
    raw = yaml.safe_load(TINY_PARAMS.read_text())
    if edit:
        edit(raw)
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("path", [ROOT / "params.yaml", TINY_PARAMS])
def test_committed_params_are_valid(path):
    params = load_params(path)
    assert isinstance(params, Params)
    assert params.imdb.download.filename == "aclImdb_v1.tar.gz"
    assert params.charlm.ingest.start_marker == "THE MYSTERIOUS ISLAND"


def test_defaults_profile_enforces_checksums():
    params = load_params(ROOT / "params.yaml")
    assert params.imdb.download.sha256
    # Gutenberg rewrites the licence header and footer of its file: the download is not
    # checked, the novel text cut out of it is (by ingest)
    assert params.charlm.download.sha256 == []
    assert params.charlm.ingest.text_sha256
    assert params.charlm.ingest.text_sha256 == CharlmIngestParams().text_sha256
    assert load_params(TINY_PARAMS).charlm.ingest.text_sha256 == []  # tinydata's made-up novel


def _set(*keys, value):
    def edit(raw):
        d = raw
        for k in keys[:-1]:
            d = d.setdefault(k, {})
        d[keys[-1]] = value

    return edit


@pytest.mark.parametrize(
    "edit, key, allowed",
    [
        (
            _set("imdb", "ingest", "valid_fracton", value=0.2),
            "imdb.ingest.valid_fracton",
            "unknown key",
        ),
        (_set("colour", value="blue"), "colour", "unknown key"),
        (
            _set("imdb", "ingest", "valid_fraction", value="a fifth"),
            "imdb.ingest.valid_fraction",
            "valid number",
        ),
        (
            _set("imdb", "ingest", "include_unsup", value="perhaps"),
            "imdb.ingest.include_unsup",
            "valid boolean",
        ),
        (
            _set("imdb", "ingest", "valid_fraction", value=-0.1),
            "imdb.ingest.valid_fraction",
            "greater than 0",
        ),
        (
            _set("imdb", "ingest", "valid_fraction", value=1.5),
            "imdb.ingest.valid_fraction",
            "less than 1",
        ),
        # the teacher named before NBSVM took the TF-IDF model's place, and NBSVM's C
        (_set("imdb", "student", "teacher", value="tfidf"), "imdb.student.teacher", "'nbsvm'"),
        (_set("imdb", "student", "nbsvm", "C", value=0), "imdb.student.nbsvm.C", "greater than 0"),
        (
            _set("imdb", "train", "model", "cell", value="Attention"),
            "imdb.train.model.cell",
            "'SimpleRNN', 'LSTM', 'GRU' or 'Transformer'",
        ),
        (
            _set("charlm", "download", "timeout_s", value=0),
            "charlm.download.timeout_s",
            "greater than 0",
        ),
        # the warm-up is a share of the first epoch
        (
            _set("charlm", "train", "warmup", value=1.5),
            "charlm.train.warmup",
            "less than or equal to 1",
        ),
        (
            _set("charlm", "train", "warmup", value=-0.1),
            "charlm.train.warmup",
            "greater than or equal to 0",
        ),
        (_set("seed", value=[1, 2]), "seed", "valid integer"),
        (
            _set("imdb", "ingest", "group_by_movie", value="perhaps"),
            "imdb.ingest.group_by_movie",
            "valid boolean",
        ),
        (
            _set("imdb", "check_raw", "max_test_duplicates", value=-1),
            "imdb.check_raw.max_test_duplicates",
            "greater than or equal to 0",
        ),
        (
            _set("imdb", "student", "windows", value="perhaps"),
            "imdb.student.windows",
            "valid boolean",
        ),
        (
            _set("imdb", "student", "window_min_words", value=0),
            "imdb.student.window_min_words",
            "greater than or equal to 1",
        ),
        (
            _set("imdb", "evaluate", "threshold", value=1.0),
            "imdb.evaluate.threshold",
            "less than 1",
        ),
        (
            _set("imdb", "promote", "metric", value=""),
            "imdb.promote.metric",
            "at least 1 character",
        ),
        # the search: its budget, its space (checked against the model's schema)
        (_set("imdb", "tune", "max_minutes", value=0), "imdb.tune.max_minutes", "greater than 0"),
        (
            _set("charlm", "tune", "space", value={"units": []}),
            "charlm.tune",
            "space.units: an empty list",
        ),
        (
            _set("imdb", "tune", "space", value={"units": [32, 0]}),
            "imdb",
            "tune.space.units: 0 is refused: Input should be greater than or equal to 1",
        ),
        (
            _set("imdb", "tune", "space", value={"cell": ["GRU", "Attention"]}),
            "imdb",
            "tune.space.cell: 'Attention' is refused",
        ),
        # self-attention: heads divide the width, reviews fit the position table
        (
            lambda raw: raw["imdb"]["train"]["model"].update(cell="Transformer", units=8, heads=3),
            "imdb.train.model",
            "heads (3) must divide units (8), the Transformer's width",
        ),
        (
            lambda raw: raw["charlm"]["train"]["model"].update(
                cell="Transformer", units=16, heads=5
            ),
            "charlm.train.model",
            "heads (5) must divide units (16)",
        ),
        (
            _set(
                "imdb",
                "tune",
                "space",
                value={"cell": ["GRU", "Transformer"], "units": [8, 12], "heads": [8]},
            ),
            "imdb",
            "tune.space.heads: 8 does not divide tune.space.units 12",
        ),
        (
            lambda raw: raw["imdb"]["train"]["model"].update(cell="Transformer", max_positions=20),
            "imdb",
            "train.model.max_positions (20) is shorter than encode.max_len (30)",
        ),
        (
            _set(
                "imdb", "tune", "space", value={"cell": ["Transformer"], "max_positions": [64, 16]}
            ),
            "imdb",
            "tune.space.max_positions (16) is shorter than the reviews a trial reads (30",
        ),
        (
            _set("imdb", "compare", "attention", value={"max_positions": 29}),
            "imdb",
            "compare.attention.max_positions (29) is shorter than encode.max_len (30)",
        ),
        (
            _set("charlm", "compare", "attention", value={"cell": "GRU"}),
            "charlm",
            "compare.attention.cell: the attention row is a Transformer",
        ),
        (
            _set("charlm", "compare", "recurrent", value={"cell": "Transformer"}),
            "charlm",
            "compare.recurrent.cell: the recurrent row takes a recurrent cell",
        ),
        (
            _set("imdb", "compare", "attention", value={"head": 2}),
            "imdb",
            "compare.attention.head: not a key of imdb.train.model",
        ),
        (
            _set("imdb", "compare", "attention", value={"heads": 0}),
            "imdb",
            "compare.attention.heads: 0 is refused",
        ),
        (
            _set("charlm", "compare", "max_minutes", value=0),
            "charlm.compare.max_minutes",
            "greater than 0",
        ),
        (
            _set("charlm", "tune", "space", value={"unit": [8]}),
            "charlm",
            "tune.space.unit: not a key of charlm.train.model",
        ),
        (
            _set("charlm", "train", "model", "weight_decay", value=-0.1),
            "charlm.train.model.weight_decay",
            "greater than or equal to 0",
        ),
        # the model keys have no defaults: params.yaml gives every one
        (
            lambda raw: raw["imdb"]["train"]["model"].pop("pooling"),
            "imdb.train.model.pooling",
            "Field required",
        ),
        (
            _set(
                "imdb",
                "tune",
                "space",
                value={"pooling": ["max"], "embedding_dim": [8, 16], "pretrained": [True]},
            ),
            "imdb",
            "tune.space.embedding_dim ([8, 16]) must be [embed.dim] ([8])",
        ),
        (
            lambda raw: raw["imdb"]["train"]["model"].update(pretrained=True, embedding_dim=16),
            "imdb",
            "train.model.embedding_dim (16) must be embed.dim (8)",
        ),
    ],
)
def test_bad_param_names_key_and_what_is_allowed(tmp_path, edit, key, allowed):
    path = write_params(tmp_path / "params.yaml", edit)
    with pytest.raises(PipelineError) as e:
        load_params(path)
    msg = str(e.value)
    assert f"  {key}: " in msg
    assert allowed in msg


def test_missing_required_section(tmp_path):
    path = write_params(tmp_path / "params.yaml", lambda raw: raw.pop("charlm"))
    with pytest.raises(PipelineError, match=r"  charlm: Field required"):
        load_params(path)


def test_cross_field_rule(tmp_path):
    edit = _set("charlm", "encode", "train_fraction", value=0.5)
    path = write_params(tmp_path / "params.yaml", edit)
    with pytest.raises(PipelineError, match=r"charlm\.encode.*sum to 1"):
        load_params(path)


def test_text_checksums_must_be_sha256_hex(tmp_path):
    edit = _set("charlm", "ingest", "text_sha256", value=["6285069DCDD4"])
    path = write_params(tmp_path / "params.yaml", edit)
    with pytest.raises(
        PipelineError,
        match=r"charlm\.ingest: .*text_sha256 entries must be 64 "
        r"lowercase hex digits, got \['6285069DCDD4'\]",
    ):
        load_params(path)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(PipelineError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("imdb: [unclosed\n")
    with pytest.raises(PipelineError, match="not valid YAML"):
        load_params(bad)


def test_cli_stops_on_bad_param_before_writing(tmp_path, capsys):
    """A stage with a bad param exits 1, names the key, and writes nothing."""
    params = write_params(
        tmp_path / "params.yaml", _set("charlm", "ingest", "start_marker", value=42)
    )
    source = tmp_path / "novel.txt"
    source.write_text("THE MYSTERIOUS ISLAND\nbody\nEnd\n")
    out = tmp_path / "out" / "corpus.txt"
    rc = cli.main(["--params", str(params), "charlm", "ingest", str(source), str(out)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "charlm.ingest.start_marker" in err and "valid string" in err
    assert not out.exists()


# ---------------------------------------------------------------- the params trace


@pytest.fixture
def fresh_read(monkeypatch) -> set[str]:
    """An empty set of read keys for this test alone."""
    read: set[str] = set()
    monkeypatch.setattr(params_module, "_read", read)
    return read


def test_trace_records_the_leaf_keys_read(fresh_read, tmp_path):
    params = load_params(TINY_PARAMS)
    params.imdb.train.model.cell  # noqa: B018  (not traced yet)
    assert fresh_read == set()
    params_module._trace(params)
    assert params.seed == 42
    assert params.imdb.ingest.valid_fraction == 0.25
    _ = params.imdb.ingest.valid_fraction, params.imdb.train  # twice; a section alone
    params.charlm.promote.model_dump()  # a whole section: recorded as itself
    assert fresh_read == {"seed", "imdb.ingest.valid_fraction", "charlm.promote"}

    trace = tmp_path / "trace.jsonl"
    params_module._write_trace(str(trace), "imdb ingest")
    params_module._write_trace(str(trace), "imdb vocab")  # appended, one line per stage
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    assert rows == [
        {"stage": s, "keys": ["charlm.promote", "imdb.ingest.valid_fraction", "seed"]}
        for s in ("imdb ingest", "imdb vocab")
    ]


def test_no_trace_without_the_env_variable_or_a_stage(fresh_read, monkeypatch):
    monkeypatch.delenv(params_module.TRACE_ENV, raising=False)
    load_params(TINY_PARAMS, stage="imdb ingest").seed  # noqa: B018
    monkeypatch.setenv(params_module.TRACE_ENV, "unused.jsonl")
    load_params(TINY_PARAMS).seed  # noqa: B018  (no stage: not traced)
    assert fresh_read == set()


def test_a_stage_appends_the_keys_it_read_at_exit(tmp_path):
    """In a process of its own, through the CLI, as DVC runs it."""
    trace = tmp_path / "trace.jsonl"
    source = tinydata.write_gutenberg(tmp_path / "novel.txt")
    env = {**os.environ, params_module.TRACE_ENV: str(trace)}
    for _ in range(2):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "rnnpipe",
                "--params",
                str(TINY_PARAMS),
                "charlm",
                "ingest",
                str(source),
                str(tmp_path / "corpus.txt"),
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    assert len(rows) == 2 and rows[0] == rows[1]
    assert rows[0] == {
        "stage": "charlm ingest",
        "keys": [
            "charlm.ingest.end_markers",
            "charlm.ingest.header_markers",
            "charlm.ingest.start_marker",
            "charlm.ingest.text_sha256",
        ],
    }


def test_an_unknown_project_or_a_top_level_that_is_no_mapping(tmp_path):
    with pytest.raises(PipelineError, match=r"unknown project 'imbd' \(one of imdb, charlm\)"):
        load_params(TINY_PARAMS, "imbd")
    bad = tmp_path / "params.yaml"
    bad.write_text("- seed\n- imdb\n")
    with pytest.raises(PipelineError, match="the top level must be a mapping of keys, got list"):
        load_params(bad)


def test_a_stage_checks_its_own_project_alone(tmp_path):
    """load_params(path, project): a bad key in the other project's section is that project's
    stages' error; the top level is checked by every stage."""
    path = write_params(tmp_path / "params.yaml", _set("charlm", "ingest", "nope", value=1))
    assert load_params(path, "imdb").imdb.ingest.valid_fraction == 0.25
    with pytest.raises(
        PipelineError,
        match=r"charlm\.ingest\.nope: unknown key .*"
        r"src/rnnpipe/charlm/params\.py",
    ):
        load_params(path, "charlm")
    path = write_params(tmp_path / "params.yaml", _set("colour", value="blue"))
    with pytest.raises(PipelineError, match="  colour: unknown key"):
        load_params(path, "imdb")
