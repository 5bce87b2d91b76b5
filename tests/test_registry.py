"""Registration and promotion in the MLflow model registry: the `champion` alias goes to the
best validation metric, compared on the same validation data; test metrics never decide."""

import hashlib
import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    TEMPORARILY_UNAVAILABLE,
)
from mlflow.tracking import MlflowClient

from rnnpipe.core import packaging, registry, tracking
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import PromoteParams
from rnnpipe.core.vocab import Vocabulary
from tests import tinydata

PYFUNC = """
import mlflow


class Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [0.5] * len(model_input)


mlflow.models.set_model(Constant())
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A sqlite tracking store holding one logged models-from-code pyfunc (the source of every
    version registered here: logging a model takes seconds, registering a version does not)."""
    tmp = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    (tmp / "constant.py").write_text(PYFUNC)
    # artifacts in tmp, not ./mlruns of the current folder
    for experiment in (
        "rnnpipe-test",
        tracking.experiment_name("imdb"),
        tracking.experiment_name("charlm"),
    ):
        mlflow.create_experiment(experiment, artifact_location=(tmp / "artifacts").as_uri())
    mlflow.set_experiment("rnnpipe-test")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(tmp / "constant.py"), pip_requirements=[]
        )
    yield tmp, info.model_uri
    mlflow.set_tracking_uri(None)
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


@pytest.fixture
def name(request):
    """A model name of each test's own, so tests share the store but not a registry entry."""
    return f"tiny-{request.node.name}"[:100]


def new_version(store, name, **metrics):
    """A run of its own (logging `metrics`), with a new version of `name` registered from
    it; the ModelVersion."""
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    mlflow.set_experiment("rnnpipe-test")
    with mlflow.start_run() as run:
        if metrics:
            mlflow.log_metrics(metrics)
    return client.create_model_version(name, store[1], run_id=run.info.run_id)


def champion_version(name) -> int:
    return int(MlflowClient().get_model_version_by_alias(name, "champion").version)


def basis(data: str = "a", metric: str = "accuracy", **extra) -> dict:
    """A basis whose validation data hash is `data` * 64."""
    return {"metric": f"valid.{metric}", "valid_data_sha256": data * 64, **extra}


B = basis()


def never_called(artifacts):
    raise AssertionError("the champion was scored again on an unchanged basis")


def test_first_becomes_champion_better_takes_alias_worse_does_not(store, name):
    client = MlflowClient()
    v1 = new_version(store, name)
    first = registry.promote(client, name, v1, "accuracy", 0.80, True, B)
    assert first["decision"] == "champion" and champion_version(name) == 1
    assert first["metric"] == "valid.accuracy" and first["run_id"] == v1.run_id
    assert first["reason"] == "first model: no champion yet"
    assert first["challenger_basis"] == B and first["compared_on"] is None
    tags = client.get_model_version(name, "1").tags
    assert tags["valid_accuracy"] == "0.8"
    assert tags["basis.valid_data_sha256"] == "a" * 64
    assert tags["basis.metric"] == "valid.accuracy"

    worse = registry.promote(client, name, new_version(store, name), "accuracy", 0.75, True, B)
    assert worse["decision"] == "candidate" and worse["champion_version"] == 1
    assert champion_version(name) == 1
    tags = client.get_model_version(name, "2").tags
    assert tags["promotion"] == "candidate"
    assert tags["compared_with_version"] == "1"
    assert float(tags["champion_metric"]) == 0.80
    assert float(tags["challenger_metric"]) == 0.75
    assert float(tags["valid_accuracy"]) == 0.75
    assert worse["reason"] == "valid accuracy 0.75 does not beat champion 1's 0.8"

    better = registry.promote(client, name, new_version(store, name), "accuracy", 0.85, True, B)
    assert better["decision"] == "champion"
    assert better["compared_with_version"] == 1 and better["champion_metric"] == 0.80
    assert champion_version(name) == 3
    assert client.get_model_version(name, "3").tags["promotion"] == "champion"
    assert client.get_model_version(name, "1").tags["promotion"] == "retired"


def test_lower_is_better_and_tie_keeps_champion(store, name):
    client = MlflowClient()
    registry.promote(client, name, new_version(store, name), "loss", 1.5, False, B)
    tie = registry.promote(client, name, new_version(store, name), "loss", 1.5, False, B)
    assert tie["decision"] == "candidate" and champion_version(name) == 1
    higher = registry.promote(client, name, new_version(store, name), "loss", 1.9, False, B)
    assert higher["decision"] == "candidate" and champion_version(name) == 1
    lower = registry.promote(client, name, new_version(store, name), "loss", 1.2, False, B)
    assert lower["decision"] == "champion" and champion_version(name) == 4
    assert lower["metric"] == "valid.loss"


def test_promoting_the_same_version_twice_keeps_it_champion(store, name):
    client = MlflowClient()
    v = new_version(store, name)
    registry.promote(client, name, v, "accuracy", 0.8, True, B)
    again = registry.promote(client, name, v, "accuracy", 0.8, True, B)
    assert again["decision"] == "champion" and champion_version(name) == 1
    assert again["reason"] == "already the champion"


def test_unchanged_basis_compares_the_recorded_numbers_without_scoring_again(store, name):
    client = MlflowClient()
    b = basis(threshold="best-valid-accuracy")
    registry.promote(client, name, new_version(store, name), "accuracy", 0.8, True, b, never_called)
    d = registry.promote(
        client, name, new_version(store, name), "accuracy", 0.82, True, dict(b), never_called
    )
    assert d["decision"] == "champion" and d["compared_on"] == "same-basis"
    assert d["champion_basis"] == d["challenger_basis"] == b
    assert d["champion_metric"] == 0.8 and d["champion_scoring"] is None
    assert client.get_model_version(name, "2").tags["compared_on"] == "same-basis"


def scored(value, calls=None):
    """A scorer that says the champion scores `value` (and notes what it was given)."""

    def score(artifacts):
        if calls is not None:
            calls.append(artifacts)
        return value, {"vocabulary": "same"}

    return score


def test_champion_on_another_basis_is_scored_on_the_challengers_data(store, name):
    """Another validation set, another threshold policy, or no basis recorded at all (a
    version registered before bases existed): the champion's recorded number does not count;
    it is scored again on the challenger's data, and its run's metrics never count."""
    client = MlflowClient()
    registry.promote(
        client,
        name,
        new_version(store, name),
        "accuracy",
        0.9,
        True,
        basis("a", threshold="best-valid-accuracy"),
    )
    calls = []
    # recorded 0.9 on set a would keep it; on set b it scores 0.7
    d = registry.promote(
        client,
        name,
        new_version(store, name),
        "accuracy",
        0.85,
        True,
        basis("b", threshold="best-valid-accuracy"),
        scored(0.7, calls),
    )
    assert len(calls) == 1 and calls[0] == {}  # the constant pyfunc has no artifacts
    assert d["decision"] == "champion" and d["compared_on"] == "challenger-data"
    assert d["champion_metric"] == 0.7 and d["champion_scoring"] == {"vocabulary": "same"}
    assert d["champion_basis"]["valid_data_sha256"] == "a" * 64
    assert d["challenger_basis"]["valid_data_sha256"] == "b" * 64
    assert d["reason"] == (
        "valid accuracy 0.85 beats champion 1's 0.7, both on the "
        "challenger's validation data (sha256 bbbbbbbbbbbb); the champion's "
        "record is on another basis (validation data sha256 aaaaaaaaaaaa)"
    )
    tags = client.get_model_version(name, "2").tags
    assert tags["compared_on"] == "challenger-data" and tags["champion_metric"] == "0.7"

    # the same data, another threshold policy
    d = registry.promote(
        client,
        name,
        new_version(store, name),
        "accuracy",
        0.8,
        True,
        basis("b", threshold="fixed:0.5"),
        scored(0.81, calls),
    )
    assert len(calls) == 2 and d["compared_on"] == "challenger-data"
    assert d["decision"] == "candidate" and d["champion_metric"] == 0.81

    # a champion registered before bases were recorded: its run's valid and test metrics
    # never count
    name2 = name[:90] + "-old"
    old = new_version(store, name2, valid_accuracy=0.9, test_accuracy=0.5)
    client.set_model_version_tag(name2, old.version, "valid_accuracy", "0.9")
    client.set_registered_model_alias(name2, "champion", old.version)
    d = registry.promote(
        client,
        name2,
        new_version(store, name2, test_accuracy=0.99),
        "accuracy",
        0.85,
        True,
        B,
        scored(0.8),
    )
    assert d["decision"] == "champion" and d["champion_metric"] == 0.8
    assert d["champion_basis"] is None and d["compared_on"] == "challenger-data"
    assert "validation data sha256 none recorded" in d["reason"]


def broken(artifacts):
    raise PipelineError("cannot load the champion's model.keras")


def test_a_champion_that_cannot_be_scored_stops_the_stage_unless_forced(store, name, monkeypatch):
    client = MlflowClient()
    monkeypatch.delenv(registry.FORCE_ENV, raising=False)
    registry.promote(client, name, new_version(store, name), "accuracy", 0.9, True, B)
    challenger = new_version(store, name)
    for scorer, why in (
        (broken, "cannot load the champion's model.keras"),
        (None, "no scorer given"),
    ):
        with pytest.raises(PipelineError) as e:
            registry.promote(client, name, challenger, "accuracy", 0.95, True, basis("b"), scorer)
        message = str(e.value)
        # both data hashes, why, and how to decide anyway
        assert "a" * 64 in message and "b" * 64 in message and why in message
        assert "RNNPIPE_PROMOTE=challenger" in message and "RNNPIPE_PROMOTE=keep" in message
        assert champion_version(name) == 1
        assert "promotion" not in client.get_model_version(name, challenger.version).tags

    monkeypatch.setenv(registry.FORCE_ENV, "keep")
    d = registry.promote(client, name, challenger, "accuracy", 0.95, True, basis("b"), broken)
    assert d["decision"] == "candidate" and d["forced"] == "keep"
    assert d["compared_on"] == "forced" and champion_version(name) == 1
    assert d["reason"].startswith("forced by RNNPIPE_PROMOTE=keep: champion 1 could not be scored")
    monkeypatch.setenv(registry.FORCE_ENV, "challenger")
    d = registry.promote(client, name, challenger, "accuracy", 0.95, True, basis("b"), broken)
    assert d["decision"] == "champion" and d["forced"] == "challenger"
    assert champion_version(name) == 2
    monkeypatch.setenv(registry.FORCE_ENV, "yes")
    with pytest.raises(PipelineError, match="RNNPIPE_PROMOTE='yes': expected one of"):
        registry.promote(client, name, challenger, "accuracy", 0.95, True, basis("b"))


def test_no_alias_is_no_champion_any_other_mlflow_error_is_an_error(store, name, monkeypatch):
    """What MLflow 3 raises for a missing alias (INVALID_PARAMETER_VALUE) or a missing model
    (RESOURCE_DOES_NOT_EXIST) means no champion; a server error does not."""
    client = MlflowClient()
    assert registry.champion(client, name) is None  # no such registered model
    client.create_registered_model(name)
    assert registry.champion(client, name) is None  # no such alias
    with pytest.raises(MlflowException) as e:
        client.get_model_version_by_alias(name, "champion")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"  # the measured error
    for code, text in (
        (INTERNAL_ERROR, "INTERNAL_ERROR: database is locked; alias lookup"),
        (TEMPORARILY_UNAVAILABLE, "503 Service Unavailable (alias)"),
        (INVALID_PARAMETER_VALUE, "alias name 'champion!' is invalid"),
    ):

        def fail(self, model, alias, code=code, text=text):
            raise MlflowException(text, error_code=code)

        monkeypatch.setattr(MlflowClient, "get_model_version_by_alias", fail)
        with pytest.raises(PipelineError, match="cannot read the 'champion' alias"):
            registry.champion(client, name)
    monkeypatch.undo()
    assert registry.champion(client, name) is None


def test_translate_ids_carries_tokens_over_to_the_champions_vocabulary():
    ours = Vocabulary("word", ("<pad>", "<oov>", "bad", "good", "great"), 0, 1)
    theirs = Vocabulary("word", ("<pad>", "<oov>", "good", "bad", "film"), 0, 1)
    ids = np.array([[3, 4, 1, 0], [2, 0, 0, 0]], "int32")
    real = np.array([[1, 1, 1, 0], [1, 0, 0, 0]], bool)
    out, summary = registry.translate_ids(ids, ours, theirs, real)
    assert out.tolist() == [[2, 1, 1, 0], [3, 0, 0, 0]] and out.dtype == np.int32
    # "great" is unknown to the champion; the <oov> was unknown already
    assert summary == {"vocabulary": "translated", "tokens": 4, "tokens_unknown_to_champion": 1}
    same, summary = registry.translate_ids(ids, ours, ours, real)
    assert same is ids and summary == {"vocabulary": "same"}
    chars = Vocabulary("char", ("<unk>", "a", "b"), None, 0)
    assert registry.translate_ids(
        np.array([1, 2, 0]), chars, Vocabulary("char", ("<unk>", "b", "c"), None, 0)
    )[0].tolist() == [0, 1, 0]
    with pytest.raises(PipelineError, match="char vocabulary"):
        registry.translate_ids(ids, ours, chars)


def test_recut_keeps_the_champions_side_of_a_long_review():
    from rnnpipe.imdb.register import recut, threshold_policy

    ids = np.array([[5, 6, 7, 8], [5, 6, 0, 0]], "int32")
    lengths = np.array([4, 2], "int32")
    end, kept = recut(ids, lengths, 3, "end", 0)
    assert end.tolist() == [[6, 7, 8], [5, 6, 0]] and kept.tolist() == [3, 2]
    start, _ = recut(ids, lengths, 3, "start", 0)
    assert start.tolist() == [[5, 6, 7], [5, 6, 0]]
    assert recut(ids, lengths, 6, "end", 0)[0] is ids  # never longer than the data
    assert threshold_policy(None) == "best-valid-accuracy"
    assert threshold_policy(0.5) == "fixed:0.5"


def test_metric_value():
    assert registry.metric_value({"accuracy": 0.9, "n": 3}, "accuracy") == 0.9
    assert registry.metric_value({"test": {"loss": 1.25}}, "test.loss") == 1.25
    assert registry.metric_value({"valid": {"loss": 2}, "test": {"loss": 1}}, "valid.loss") == 2
    with pytest.raises(PipelineError, match="metric 'auc' not in metrics.json"):
        registry.metric_value({"accuracy": 0.9}, "auc")
    with pytest.raises(PipelineError, match="metric 'valid.accuracy' not in metrics.json"):
        registry.metric_value({"accuracy": 0.9}, "valid.accuracy")  # the old layout
    with pytest.raises(PipelineError, match="not a number"):
        registry.metric_value({"accuracy": "high"}, "accuracy")
    with pytest.raises(PipelineError, match="not a number"):
        registry.metric_value({"valid": {"accuracy": True}}, "valid.accuracy")


# ------------------------------------------------------------------ the register stage


def trained_model(store, tmp: Path, seed: str, tags: dict | None = None) -> Path:
    """What train and evaluate leave: a model file, and its train run in the project's
    experiment (tagged with the file's hash) holding a logged model (with `tags`)."""
    path = tmp / f"model-{seed}.keras"
    path.write_text(f"not really a model {seed}")
    tracking.setup("imdb")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with mlflow.start_run(tags={tracking.MODEL_TAG: sha}):
        mlflow.pyfunc.log_model(
            name="model", python_model=str(store[0] / "constant.py"), pip_requirements=[], tags=tags
        )
    return path


def stage_case(store, request, kind: str) -> tuple[Path, PromoteParams, Path, Path]:
    """A folder of the test's own, a model name of its own, and where register_stage reads
    the metrics and writes its decision."""
    tmp = store[0] / request.node.name
    tmp.mkdir()
    p = PromoteParams(
        model_name=f"tiny-{kind}-{os.getpid()}", metric="accuracy", greater_is_better=True
    )
    return tmp, p, tmp / "metrics.json", tmp / "reports" / "promotion.json"


def test_register_stage_promotes_on_the_validation_metric(store, request):
    tmp, p, metrics, out = stage_case(store, request, "stage")

    first = trained_model(store, tmp, "a")
    metrics.write_text(json.dumps({"valid": {"accuracy": 0.7}, "test": {"accuracy": 0.6}}))
    decision = registry.register_stage("imdb", p, first, metrics, out, B, never_called)
    assert json.loads(out.read_text()) == decision
    assert decision["decision"] == "champion" and decision["version"] == 1
    assert decision["metric"] == "valid.accuracy" and decision["challenger_metric"] == 0.7
    assert champion_version(p.model_name) == 1
    assert MlflowClient().get_model_version(p.model_name, "1").tags["valid_accuracy"] == "0.7"

    # a better test accuracy but a worse validation one: not the champion
    second = trained_model(store, tmp, "b")
    metrics.write_text(json.dumps({"valid": {"accuracy": 0.65}, "test": {"accuracy": 0.95}}))
    decision = registry.register_stage("imdb", p, second, metrics, out, B, never_called)
    assert decision["decision"] == "candidate" and decision["version"] == 2
    assert decision["champion_metric"] == 0.7 and champion_version(p.model_name) == 1


def test_register_stage_rerun_reuses_the_version(store, request):
    tmp, p, metrics, out = stage_case(store, request, "rerun")
    model = trained_model(store, tmp, "a")
    metrics.write_text(json.dumps({"valid": {"accuracy": 0.7}, "test": {"accuracy": 0.6}}))
    registry.register_stage("imdb", p, model, metrics, out, B, never_called)
    again = registry.register_stage("imdb", p, model, metrics, out, B, never_called)
    assert len(MlflowClient().search_model_versions(f"name='{p.model_name}'")) == 1
    assert again["version"] == 1 and again["decision"] == "champion"
    assert again["reason"] == "already the champion"


def test_register_stage_copies_the_pyfunc_digest_onto_the_version(store, request):
    tmp, p, metrics, out = stage_case(store, request, "digest")
    metrics.write_text(json.dumps({"valid": {"accuracy": 0.7}}))
    model = trained_model(store, tmp, "a", tags={packaging.TAG: "d" * 64})
    registry.register_stage("imdb", p, model, metrics, out, B, never_called)
    assert MlflowClient().get_model_version(p.model_name, "1").tags[packaging.TAG] == "d" * 64
    # a model logged before evaluate recorded the digest: registered, no tag
    registry.register_stage(
        "imdb", p, trained_model(store, tmp, "b"), metrics, out, B, never_called
    )
    assert packaging.TAG not in MlflowClient().get_model_version(p.model_name, "2").tags


def test_register_stage_errors(store, request):
    tmp = store[0] / request.node.name
    tmp.mkdir()
    p = PromoteParams(model_name="tiny-stage-errors", metric="accuracy", greater_is_better=True)
    metrics, out = tmp / "metrics.json", tmp / "promotion.json"
    model = tmp / "model.keras"
    model.write_text("trained, never evaluated")
    metrics.write_text("{not json")
    with pytest.raises(PipelineError, match="metrics.json is not valid JSON"):
        registry.register_stage("imdb", p, model, metrics, out, B, never_called)
    metrics.write_text(json.dumps({"accuracy": 0.7}))  # no valid section
    with pytest.raises(PipelineError, match="metric 'valid.accuracy' not in metrics.json"):
        registry.register_stage("imdb", p, model, metrics, out, B, never_called)
    metrics.write_text(json.dumps({"valid": {"accuracy": 0.7}}))
    with pytest.raises(PipelineError, match="no run in the MLflow store .* trained"):
        registry.register_stage("imdb", p, model, metrics, out, B, never_called)
    tracking.setup("imdb")
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    with mlflow.start_run(tags={tracking.MODEL_TAG: sha}):
        pass  # trained, but evaluate never logged the model
    with pytest.raises(PipelineError, match="has no logged model: run the evaluate stage"):
        registry.register_stage("imdb", p, model, metrics, out, B, never_called)
    assert not out.exists()


def test_a_server_error_reading_the_alias_fails_the_stage(store, request, monkeypatch):
    """A 5xx from the alias lookup is not "no champion yet": the stage fails and promotes
    nothing."""
    tmp = store[0] / request.node.name
    tmp.mkdir()
    p = PromoteParams(
        model_name=f"tiny-5xx-{os.getpid()}", metric="accuracy", greater_is_better=True
    )
    metrics, out = tmp / "metrics.json", tmp / "promotion.json"
    metrics.write_text(json.dumps({"valid": {"accuracy": 0.7}}))
    registry.register_stage(
        "imdb", p, trained_model(store, tmp, "a"), metrics, out, B, never_called
    )
    first = out.read_text()

    def unavailable(self, model, alias):
        e = MlflowException(
            "API request to endpoint /api/2.0/mlflow/registered-models/alias "
            "failed with error code 503 != 200",
            error_code=TEMPORARILY_UNAVAILABLE,
        )
        assert e.get_http_status_code() == 503
        raise e

    monkeypatch.setattr(MlflowClient, "get_model_version_by_alias", unavailable)
    metrics.write_text(json.dumps({"valid": {"accuracy": 0.9}}))
    with pytest.raises(PipelineError, match="TEMPORARILY_UNAVAILABLE.*not taken as 'no champion"):
        registry.register_stage(
            "imdb", p, trained_model(store, tmp, "b"), metrics, out, B, never_called
        )
    monkeypatch.undo()
    assert champion_version(p.model_name) == 1 and out.read_text() == first
    assert "promotion" not in MlflowClient().get_model_version(p.model_name, "2").tags


# ------------------------------------------------- scoring a real champion on other data


def keras_sentiment(vocab: Vocabulary, weights: dict[str, float]):
    """A sentiment model with no training: the mean of one weight per word (0 for the rest,
    padding masked) through a sigmoid."""
    import keras

    size = len(vocab)
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(size, 1, mask_zero=True),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    table = np.zeros((size, 1), "float32")
    for word, w in weights.items():
        table[vocab.index[word]] = w
    model.layers[0].set_weights([table])
    model.layers[-1].set_weights([np.ones((1, 1), "float32"), np.zeros(1, "float32")])
    return model


def encoded_split(folder: Path, texts, labels, vocab: Vocabulary, max_len: int) -> Path:
    """What the encode stage leaves: folder/valid.npz and the vocab.json it was encoded with."""
    from rnnpipe.imdb.words import encode_texts

    folder.mkdir(parents=True)
    vocab.save(folder / "vocab.json")
    ids, lengths = encode_texts(texts, vocab, max_len, "end")
    np.savez(folder / "valid.npz", ids=ids, lengths=lengths, labels=np.asarray(labels, np.int8))
    return folder / "valid.npz"


def evaluated_sentiment(
    folder: Path, vocab: Vocabulary, weights: dict[str, float], max_len: int
) -> Path:
    """What train and evaluate leave: models/imdb (model.keras, vocab.json, the pyfunc folder)
    and its train run holding the logged IMDb pyfunc."""
    from types import SimpleNamespace

    from rnnpipe.imdb import pyfunc

    folder.mkdir(parents=True)
    keras_sentiment(vocab, weights).save(folder / "model.keras")
    vocab.save(folder / "vocab.json")
    tracking.setup("imdb")
    with mlflow.start_run(tags={tracking.MODEL_TAG: tracking.file_sha256(folder / "model.keras")}):
        pyfunc.log_model(
            folder, SimpleNamespace(max_len=max_len, truncate="end"), 0.5, folder / "pyfunc"
        )
    return folder / "model.keras"


def files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def assert_registered_as_saved(name: str, version: int, saved: Path, tmp: Path) -> None:
    """Version `version` of `name` holds the files of the pyfunc folder evaluate saved, byte
    for byte, and their digest as its tag."""
    client = MlflowClient()
    # what the registry holds (a download of models:/... adds a registered_model_meta file)
    stored = client.get_model_version_download_uri(name, str(version))
    local = mlflow.artifacts.download_artifacts(artifact_uri=stored, dst_path=str(tmp))
    assert files(Path(local)) == files(saved)
    tags = client.get_model_version(name, str(version)).tags
    assert tags[packaging.TAG] == packaging.tree_sha256(saved)


def counting(scorer, calls: list):
    def score(artifacts):
        calls.append(sorted(artifacts))
        return scorer(artifacts)

    return score


@pytest.mark.slow
def test_imdb_champion_from_another_validation_set_is_scored_on_the_challengers(store, request):
    """Version 1 was evaluated on validation set A (its vocabulary, max_len 3), version 2 on
    set B (another vocabulary: ids differ, one word the champion never saw; max_len 4). Both
    recorded accuracy 1.0: on those numbers the champion would stay (a tie keeps it). Scored
    on B, as its own encoding of B's reviews would feed it, the champion gets 0.8, so the
    challenger takes the alias; a third version on B is compared on the recorded numbers."""
    from rnnpipe.imdb import register as imdb_register
    from rnnpipe.imdb.metrics import best_threshold, binary_metrics
    from rnnpipe.imdb.model import load_model, predict_proba
    from rnnpipe.imdb.words import encode_texts

    tmp = store[0] / request.node.name
    p = PromoteParams(
        model_name=f"tiny-rescore-{os.getpid()}", metric="accuracy", greater_is_better=True
    )
    metrics, out = tmp / "metrics.json", tmp / "reports" / "promotion.json"
    policy = imdb_register.threshold_policy(None)
    vocab_a = Vocabulary("word", ("<pad>", "<oov>", "good", "bad", "film", "plot"), 0, 1)
    vocab_b = Vocabulary("word", ("<pad>", "<oov>", "bad", "good", "plot", "film", "great"), 0, 1)
    valid_a = encoded_split(
        tmp / "a", ["good film", "bad plot", "good good bad", "bad film"], [1, 0, 1, 0], vocab_a, 3
    )
    texts_b = ["good great", "bad", "great film", "plot", "bad good good good"]
    valid_b = encoded_split(tmp / "b", texts_b, [1, 0, 1, 0, 1], vocab_b, 4)

    def stage(model, valid, accuracy, calls):
        metrics.write_text(json.dumps({"valid": {"accuracy": accuracy}}))
        scorer = counting(imdb_register.scorer(valid, p.metric, None), calls)
        b = registry.data_basis(valid, p.metric) | {"threshold": policy}
        return registry.register_stage("imdb", p, model, metrics, out, b, scorer)

    champion_model = evaluated_sentiment(tmp / "m1", vocab_a, {"good": 4.0, "bad": -4.0}, 3)
    calls = []
    first = stage(champion_model, valid_a, 1.0, calls)
    assert first["decision"] == "champion" and not calls
    assert_registered_as_saved(p.model_name, 1, tmp / "m1" / "pyfunc", tmp / "registered")

    challenger = evaluated_sentiment(
        tmp / "m2", vocab_b, {"good": 4.0, "bad": -4.0, "great": 4.0}, 4
    )
    d = stage(challenger, valid_b, 1.0, calls)
    assert calls == [["config", "model", "vocab"]]  # the champion's pyfunc artifacts
    sha_a, sha_b = tracking.file_sha256(valid_a), tracking.file_sha256(valid_b)
    assert d["champion_basis"] == {
        "metric": "valid.accuracy",
        "valid_data_sha256": sha_a,
        "threshold": "best-valid-accuracy",
    }
    assert d["challenger_basis"]["valid_data_sha256"] == sha_b
    assert d["compared_on"] == "challenger-data" and d["compared_with_version"] == 1
    # what the champion scores on B's reviews through its own vocabulary and max_len
    ids, lengths = encode_texts(texts_b, vocab_a, 3, "end")
    proba = predict_proba(load_model(champion_model), ids, lengths)
    labels = np.array([1, 0, 1, 0, 1])
    expected = binary_metrics(labels, proba, best_threshold(labels, proba))["accuracy"]
    assert d["champion_metric"] == expected == 0.8
    assert d["champion_scoring"]["vocabulary"] == "translated"
    assert d["champion_scoring"]["tokens_unknown_to_champion"] == 2  # "great", twice
    assert d["champion_scoring"]["max_len"] == {"champion": 3, "valid_data": 4}
    assert d["decision"] == "champion" and champion_version(p.model_name) == 2
    assert sha_a[:12] in d["reason"] and sha_b[:12] in d["reason"]
    assert "both on the challenger's validation data" in d["reason"]
    assert json.loads(out.read_text()) == d

    # the next version on B: same basis as the champion now, no scoring again
    third = evaluated_sentiment(tmp / "m3", vocab_b, {"good": 3.0, "bad": -4.0}, 4)
    d = stage(third, valid_b, 0.8, calls)
    assert len(calls) == 1 and d["compared_on"] == "same-basis"
    assert d["decision"] == "candidate" and d["champion_metric"] == 1.0


@pytest.mark.slow
def test_charlm_champion_is_scored_on_the_challengers_text_and_reruns_decide_alike(store, request):
    """The champion's loss on the challenger's validation text (another vocabulary) is what the
    evaluate stage computes for it on that text encoded with its own vocabulary; a rerun of
    the stage writes the same promotion.json."""
    import keras

    from rnnpipe.charlm import chars, pyfunc, sampler
    from rnnpipe.charlm import register as charlm_register
    from rnnpipe.charlm.evaluate import load_model
    from rnnpipe.charlm.model import build_char_lm

    tmp = store[0] / request.node.name
    p = PromoteParams(
        model_name=f"tiny-charlm-{os.getpid()}", metric="loss", greater_is_better=False
    )
    metrics, out = tmp / "metrics.json", tmp / "promotion.json"
    hp = dict(tinydata.SMALL_CHAR_LM)

    def evaluated(folder: Path, text: str, valid_text: str) -> tuple[Path, Path]:
        folder.mkdir(parents=True)
        vocab = Vocabulary("char", ("<unk>", *sorted(set(text))), None, 0)
        vocab.save(folder / "vocab.json")
        np.savez(folder / "valid.npz", ids=chars.encode(valid_text, vocab), start=np.int64(0))
        keras.utils.set_random_seed(len(text))
        build_char_lm(hp, len(vocab)).save(folder / "model.keras")
        tracking.setup("charlm")
        with mlflow.start_run(
            tags={tracking.MODEL_TAG: tracking.file_sha256(folder / "model.keras")}
        ):
            pyfunc.log_pyfunc(folder / "model.keras", folder / "vocab.json", folder / "pyfunc")
        return folder / "model.keras", folder / "valid.npz"

    def stage(model, valid, loss):
        metrics.write_text(json.dumps({"valid": {"loss": loss}}))
        return registry.register_stage(
            "charlm",
            p,
            model,
            metrics,
            out,
            registry.data_basis(valid, "loss"),
            charlm_register.scorer(valid, "loss"),
        )

    champion_model, _ = evaluated(tmp / "a", "the island was quiet", "the sea was calm")
    assert stage(champion_model, tmp / "a" / "valid.npz", 2.5)["decision"] == "champion"
    assert_registered_as_saved(p.model_name, 1, tmp / "a" / "pyfunc", tmp / "registered")
    valid_text = "a mysterious island, far away!"
    challenger, valid_b = evaluated(tmp / "b", "a mysterious island, far away", valid_text)
    d = stage(challenger, valid_b, 99.0)  # a challenger far worse than any model
    champion_vocab = Vocabulary.load(tmp / "a" / "vocab.json")
    expected = sampler.stream_loss(
        load_model(champion_model), chars.encode(valid_text, champion_vocab)
    )
    assert d["compared_on"] == "challenger-data" and d["champion_metric"] == pytest.approx(
        expected, rel=1e-6
    )
    assert d["champion_scoring"]["vocabulary"] == "translated"
    assert d["decision"] == "candidate" and champion_version(p.model_name) == 1
    before = out.read_bytes()
    again = stage(challenger, valid_b, 99.0)
    assert again["version"] == d["version"] and out.read_bytes() == before
