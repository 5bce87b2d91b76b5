import json
import os

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from rnnpipe import registry
from rnnpipe.errors import PipelineError
from rnnpipe.stages import register as register_stage

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


def new_version(store, name) -> str:
    """A run of its own, with a new version of `name` registered from it; the run id."""
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    mlflow.set_experiment("rnnpipe-test")
    with mlflow.start_run() as run:
        pass
    client.create_model_version(name, store[1], run_id=run.info.run_id)
    return run.info.run_id


def champion_version(name) -> int:
    return int(MlflowClient().get_model_version_by_alias(name, "champion").version)


def test_first_becomes_champion_better_takes_alias_worse_does_not(store, name):
    client = MlflowClient()
    first = registry.promote(client, name, new_version(store, name), "accuracy", 0.80, True)
    assert first["decision"] == "champion" and champion_version(name) == 1

    worse = registry.promote(client, name, new_version(store, name), "accuracy", 0.75, True)
    assert worse["decision"] == "candidate"
    assert champion_version(name) == 1
    tags = client.get_model_version(name, "2").tags
    assert tags["promotion"] == "candidate"
    assert tags["compared_with_version"] == "1"
    assert float(tags["champion_metric"]) == 0.80
    assert float(tags["challenger_metric"]) == 0.75

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


def test_promoting_the_same_run_twice_keeps_it_champion(store, name):
    client = MlflowClient()
    run_id = new_version(store, name)
    registry.promote(client, name, run_id, "accuracy", 0.8, True)
    again = registry.promote(client, name, run_id, "accuracy", 0.8, True)
    assert again["decision"] == "champion" and champion_version(name) == 1


def test_run_without_a_registered_version_is_a_clear_error(store, name):
    client = MlflowClient()
    new_version(store, name + "-other")
    mlflow.set_experiment("rnnpipe-test")
    with mlflow.start_run() as run:
        pass
    with pytest.raises(PipelineError, match="no version of registered model 'tiny-"):
        registry.promote(client, name, run.info.run_id, "accuracy", 0.8, True)


def test_metric_value():
    assert registry.metric_value({"accuracy": 0.9, "n": 3}, "accuracy") == 0.9
    assert registry.metric_value({"test": {"loss": 1.25}}, "test.loss") == 1.25
    with pytest.raises(PipelineError, match="metric 'auc' not in metrics.json"):
        registry.metric_value({"accuracy": 0.9}, "auc")
    with pytest.raises(PipelineError, match="not a number"):
        registry.metric_value({"accuracy": "high"}, "accuracy")


def test_register_stage_writes_the_decision(store):
    from rnnpipe.params import load_params
    from tests.conftest import TINY_PARAMS

    params = load_params(TINY_PARAMS)
    name = params.imdb.promote.model_name
    tmp = store[0]
    run_id = new_version(store, name)
    (tmp / "run_id.txt").write_text(run_id + "\n")
    (tmp / "metrics.json").write_text(json.dumps({params.imdb.promote.metric: 0.7}))
    out = tmp / "reports" / "promotion.json"
    register_stage.register(params, "imdb", tmp / "run_id.txt", tmp / "metrics.json", out)
    decision = json.loads(out.read_text())
    assert decision["decision"] == "champion" and decision["version"] == 1
    assert decision["challenger_metric"] == 0.7
    assert champion_version(name) == 1
