"""params.yaml goes through one schema: bad keys, types and values name the key."""

from pathlib import Path

import pytest
import yaml

from rnnpipe import cli
from rnnpipe.errors import PipelineError
from rnnpipe.params import Params, load_params
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
    assert params.imdb.download.sha256 and params.charlm.download.sha256


def _set(*keys, value):
    def edit(raw):
        d = raw
        for k in keys[:-1]:
            d = d.setdefault(k, {})
        d[keys[-1]] = value
    return edit


@pytest.mark.parametrize("edit, key, allowed", [
    (_set("imdb", "ingest", "valid_fracton", value=0.2), "imdb.ingest.valid_fracton",
     "unknown key"),
    (_set("colour", value="blue"), "colour", "unknown key"),
    (_set("imdb", "ingest", "valid_fraction", value="a fifth"), "imdb.ingest.valid_fraction",
     "valid number"),
    (_set("imdb", "ingest", "include_unsup", value="perhaps"), "imdb.ingest.include_unsup",
     "valid boolean"),
    (_set("imdb", "ingest", "valid_fraction", value=-0.1), "imdb.ingest.valid_fraction",
     "greater than 0"),
    (_set("imdb", "ingest", "valid_fraction", value=1.5), "imdb.ingest.valid_fraction",
     "less than 1"),
    (_set("imdb", "train", "model", "cell", value="Transformer"), "imdb.train.model.cell",
     "'SimpleRNN', 'LSTM' or 'GRU'"),
    (_set("charlm", "download", "timeout_s", value=0), "charlm.download.timeout_s",
     "greater than 0"),
    (_set("seed", value=[1, 2]), "seed", "valid integer"),
])
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


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(PipelineError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("imdb: [unclosed\n")
    with pytest.raises(PipelineError, match="not valid YAML"):
        load_params(bad)


def test_cli_stops_on_bad_param_before_writing(tmp_path, capsys):
    """A stage with a bad param exits 1, names the key, and writes nothing."""
    params = write_params(tmp_path / "params.yaml",
                          _set("charlm", "ingest", "start_marker", value=42))
    source = tmp_path / "novel.txt"
    source.write_text("THE MYSTERIOUS ISLAND\nbody\nEnd\n")
    out = tmp_path / "out" / "corpus.txt"
    rc = cli.main(["--params", str(params), "charlm", "ingest", str(source), str(out)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "charlm.ingest.start_marker" in err and "valid string" in err
    assert not out.exists()


def test_tuned_hparams_are_checked_by_the_schema(tmp_path):
    from rnnpipe.params import CharlmModelParams, model_hparams

    path = tmp_path / "best_hparams.json"
    path.write_text('{"hparams": {"cell": "GRU", "units": 256}}')
    given = CharlmModelParams()
    assert model_hparams(given, False, path, "charlm.train.use_tuned") == given.model_dump()
    hp = model_hparams(given, True, path, "charlm.train.use_tuned")
    assert (hp["cell"], hp["units"], hp["embedding_dim"]) == ("GRU", 256, given.embedding_dim)
    path.write_text('{"hparams": {"cell": "Transformer"}}')
    with pytest.raises(PipelineError, match="cannot use tuned hyperparameters"):
        model_hparams(given, True, path, "charlm.train.use_tuned")
    with pytest.raises(PipelineError, match="charlm.train.use_tuned is true"):
        model_hparams(given, True, None, "charlm.train.use_tuned")
