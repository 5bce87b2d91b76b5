"""Registration and promotion in the MLflow model registry: the `champion` alias goes to the
best validation metric; test metrics never decide."""

import hashlib
import json
import os
from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from rnnpipe.core import registry, tracking
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import PromoteParams

PYFUNC = '''
import mlflow


class Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [0.5] * len(model_input)


mlflow.models.set_model(Constant())
'''


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
    for experiment in ("rnnpipe-test", tracking.experiment_name("imdb")):
        mlflow.create_experiment(experiment, artifact_location=(tmp / "artifacts").as_uri())
    mlflow.set_experiment("rnnpipe-test")
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=str(tmp / "constant.py"),
                                       pip_requirements=[])
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


def test_first_becomes_champion_better_takes_alias_worse_does_not(store, name):
    client = MlflowClient()
    v1 = new_version(store, name)
    first = registry.promote(client, name, v1, "accuracy", 0.80, True)
    assert first["decision"] == "champion" and champion_version(name) == 1
    assert first["metric"] == "valid.accuracy" and first["run_id"] == v1.run_id
    assert first["reason"] == "first model: no champion yet"
    assert client.get_model_version(name, "1").tags["valid_accuracy"] == "0.8"

    worse = registry.promote(client, name, new_version(store, name), "accuracy", 0.75, True)
    assert worse["decision"] == "candidate" and worse["champion_version"] == 1
    assert champion_version(name) == 1
    tags = client.get_model_version(name, "2").tags
    assert tags["promotion"] == "candidate"
    assert tags["compared_with_version"] == "1"
    assert float(tags["champion_metric"]) == 0.80
    assert float(tags["challenger_metric"]) == 0.75
    assert float(tags["valid_accuracy"]) == 0.75
    assert worse["reason"] == "valid accuracy 0.75 does not beat champion 1's 0.8"

    better = registry.promote(client, name, new_version(store, name), "accuracy", 0.85, True)
    assert better["decision"] == "champion"
    assert better["compared_with_version"] == 1 and better["champion_metric"] == 0.80
    assert champion_version(name) == 3
    assert client.get_model_version(name, "3").tags["promotion"] == "champion"
    assert client.get_model_version(name, "1").tags["promotion"] == "retired"


def test_lower_is_better_and_tie_keeps_champion(store, name):
    client = MlflowClient()
    registry.promote(client, name, new_version(store, name), "loss", 1.5, False)
    tie = registry.promote(client, name, new_version(store, name), "loss", 1.5, False)
    assert tie["decision"] == "candidate" and champion_version(name) == 1
    higher = registry.promote(client, name, new_version(store, name), "loss", 1.9, False)
    assert higher["decision"] == "candidate" and champion_version(name) == 1
    lower = registry.promote(client, name, new_version(store, name), "loss", 1.2, False)
    assert lower["decision"] == "champion" and champion_version(name) == 4
    assert lower["metric"] == "valid.loss"


def test_promoting_the_same_version_twice_keeps_it_champion(store, name):
    client = MlflowClient()
    v = new_version(store, name)
    registry.promote(client, name, v, "accuracy", 0.8, True)
    again = registry.promote(client, name, v, "accuracy", 0.8, True)
    assert again["decision"] == "champion" and champion_version(name) == 1
    assert again["reason"] == "already the champion"


def test_champion_without_the_tag_is_judged_by_its_runs_valid_metric(store, name):
    """A champion made before the tag existed: its run's valid_<metric> counts, and a test
    metric never does."""
    client = MlflowClient()
    old = new_version(store, name, valid_accuracy=0.9, test_accuracy=0.5)
    client.set_registered_model_alias(name, "champion", old.version)
    challenger = registry.promote(client, name, new_version(store, name, test_accuracy=0.99),
                                  "accuracy", 0.85, True)
    assert challenger["decision"] == "candidate" and challenger["champion_metric"] == 0.9

    name2 = name[:90] + "-test"
    only_test = new_version(store, name2, test_accuracy=0.99)
    client.set_model_version_tag(name2, only_test.version, "test_accuracy", "0.99")
    client.set_registered_model_alias(name2, "champion", only_test.version)
    d = registry.promote(client, name2, new_version(store, name2), "accuracy", 0.6, True)
    assert d["decision"] == "champion" and d["champion_metric"] is None
    assert d["reason"] == "champion 1 has no valid_accuracy"


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


def trained_model(store, tmp: Path, seed: str) -> Path:
    """What train and evaluate leave: a model file, and its train run in the project's
    experiment (tagged with the file's hash) holding a logged model."""
    path = tmp / f"model-{seed}.keras"
    path.write_text(f"not really a model {seed}")
    tracking.setup("imdb")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with mlflow.start_run(tags={tracking.MODEL_TAG: sha}):
        mlflow.pyfunc.log_model(name="model", python_model=str(store[0] / "constant.py"),
                                pip_requirements=[])
    return path


def test_register_stage_promotes_on_the_validation_metric(store, request):
    tmp = store[0] / request.node.name
    tmp.mkdir()
    p = PromoteParams(model_name=f"tiny-stage-{os.getpid()}", metric="accuracy")
    metrics, out = tmp / "metrics.json", tmp / "reports" / "promotion.json"

    first = trained_model(store, tmp, "a")
    metrics.write_text(json.dumps({"valid": {"accuracy": 0.7}, "test": {"accuracy": 0.6}}))
    decision = registry.register_stage("imdb", p, first, metrics, out)
    assert json.loads(out.read_text()) == decision
    assert decision["decision"] == "champion" and decision["version"] == 1
    assert decision["metric"] == "valid.accuracy" and decision["challenger_metric"] == 0.7
    assert champion_version(p.model_name) == 1
    assert MlflowClient().get_model_version(p.model_name, "1").tags["valid_accuracy"] == "0.7"

    # a better test accuracy but a worse validation one: not the champion
    second = trained_model(store, tmp, "b")
    metrics.write_text(json.dumps({"valid": {"accuracy": 0.65}, "test": {"accuracy": 0.95}}))
    decision = registry.register_stage("imdb", p, second, metrics, out)
    assert decision["decision"] == "candidate" and decision["version"] == 2
    assert decision["champion_metric"] == 0.7 and champion_version(p.model_name) == 1


def test_register_stage_rerun_reuses_the_version(store, request):
    tmp = store[0] / request.node.name
    tmp.mkdir()
    p = PromoteParams(model_name=f"tiny-rerun-{os.getpid()}", metric="accuracy")
    metrics, out = tmp / "metrics.json", tmp / "promotion.json"
    model = trained_model(store, tmp, "a")
    metrics.write_text(json.dumps({"valid": {"accuracy": 0.7}, "test": {"accuracy": 0.6}}))
    registry.register_stage("imdb", p, model, metrics, out)
    again = registry.register_stage("imdb", p, model, metrics, out)
    assert len(MlflowClient().search_model_versions(f"name='{p.model_name}'")) == 1
    assert again["version"] == 1 and again["decision"] == "champion"
    assert again["reason"] == "already the champion"


def test_register_stage_errors(store, request):
    tmp = store[0] / request.node.name
    tmp.mkdir()
    p = PromoteParams(model_name="tiny-stage-errors", metric="accuracy")
    metrics, out = tmp / "metrics.json", tmp / "promotion.json"
    model = tmp / "model.keras"
    model.write_text("trained, never evaluated")
    metrics.write_text("{not json")
    with pytest.raises(PipelineError, match="metrics.json is not valid JSON"):
        registry.register_stage("imdb", p, model, metrics, out)
    metrics.write_text(json.dumps({"accuracy": 0.7}))  # no valid section
    with pytest.raises(PipelineError, match="metric 'valid.accuracy' not in metrics.json"):
        registry.register_stage("imdb", p, model, metrics, out)
    metrics.write_text(json.dumps({"valid": {"accuracy": 0.7}}))
    with pytest.raises(PipelineError, match="no run in the MLflow store .* trained"):
        registry.register_stage("imdb", p, model, metrics, out)
    tracking.setup("imdb")
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    with mlflow.start_run(tags={tracking.MODEL_TAG: sha}):
        pass  # trained, but evaluate never logged the model
    with pytest.raises(PipelineError, match="has no logged model: run the evaluate stage"):
        registry.register_stage("imdb", p, model, metrics, out)
    assert not out.exists()
