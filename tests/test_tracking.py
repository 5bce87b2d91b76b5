"""MLflow tracking (rnnpipe.core.tracking): the project's store, stale runs, runs found by the
model they trained, data versions as dataset inputs."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys

import mlflow
import pytest
import sqlalchemy
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

from rnnpipe.core import tracking
from rnnpipe.core.errors import PipelineError


@pytest.fixture
def store(tmp_path, monkeypatch, copy_empty_store):
    """A fresh project root with its own (empty) store (DVC_ROOT, as DVC sets it for a
    stage)."""
    copy_empty_store(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.delenv(tracking.SUFFIX_ENV, raising=False)
    yield tmp_path
    mlflow.end_run()


def test_the_store_is_the_project_roots_also_from_a_copy(store, monkeypatch):
    monkeypatch.chdir(store.parent)  # as `dvc exp run --temp` runs elsewhere
    assert tracking.tracking_uri() == f"sqlite:///{store / 'mlflow.db'}"
    experiment_id = tracking.setup("imdb")
    experiment = mlflow.MlflowClient().get_experiment(experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert experiment.artifact_location == (store / "mlartifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert tracking.tracking_uri() == "sqlite:///elsewhere.db"


def test_a_second_setup_in_the_process_still_sees_the_project_roots_store(
    store, monkeypatch, copy_empty_store
):
    # the first setup's mlflow.set_tracking_uri sets MLFLOW_TRACKING_URI
    tracking.setup("imdb")
    assert os.environ["MLFLOW_TRACKING_URI"] == tracking.local_uri()
    experiment_id = tracking.setup("charlm")
    experiment = mlflow.MlflowClient().get_experiment(experiment_id)
    assert experiment.artifact_location == (store / "mlartifacts").as_uri()
    # a store the user named elsewhere keeps its own artifact root
    (store / "server").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", copy_empty_store(store / "server"))
    experiment_id = tracking.setup("imdb")
    experiment = mlflow.MlflowClient().get_experiment(experiment_id)
    assert experiment.artifact_location != (store / "mlartifacts").as_uri()


def test_the_suffix_names_the_experiments_apart(store, monkeypatch):
    monkeypatch.setenv(tracking.SUFFIX_ENV, "-demo")
    experiment_id = tracking.setup("imdb")
    experiment = mlflow.MlflowClient().get_experiment(experiment_id)
    assert experiment.name == tracking.experiment_name("imdb") == "rnnpipe-imdb-demo"
    assert experiment.artifact_location == (store / "mlartifacts").as_uri()
    for bad in ("-demo x", "/demo", "-dëmo", "-demo\n", "'"):
        monkeypatch.setenv(tracking.SUFFIX_ENV, bad)
        with pytest.raises(
            PipelineError,
            match=r"RNNPIPE_EXPERIMENT_SUFFIX is .*: it may hold "
            r"only letters, digits, '_' and '-'",
        ):
            tracking.setup("imdb")


def test_keras_is_imported_only_for_training():
    """The quality checks log to MLflow through this module without importing TensorFlow."""
    code = (
        "import sys; from rnnpipe.core import tracking; print('keras' in sys.modules); "
        "import keras; print(issubclass(tracking.MlflowMetrics, keras.callbacks.Callback))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3"},
    ).stdout
    assert out.split() == ["False", "True"]


def test_runs_left_running_by_a_killed_stage_are_marked_killed(store, monkeypatch):
    experiment_id = tracking.setup("imdb")
    client = mlflow.MlflowClient()
    crashed = client.create_run(experiment_id, tags={"stage": "imdb_train"}).info.run_id
    other = client.create_run(experiment_id, tags={"stage": "imdb_tune"}).info.run_id
    monkeypatch.setenv("DVC_EXP_NAME", "my-exp")
    with tracking.train_run("imdb", "imdb_train", "imdb-train") as run:
        assert run.info.run_id != crashed
        tags = client.get_run(run.info.run_id).data.tags
        assert tags["dvc.experiment"] == "my-exp" and tags["stage"] == "imdb_train"
    assert client.get_run(crashed).info.status == "KILLED"
    assert client.get_run(other).info.status == "RUNNING"  # another stage's: left alone
    assert client.get_run(run.info.run_id).info.status == "FINISHED"


def test_a_resumed_training_continues_its_run(store):
    experiment_id = tracking.setup("charlm")
    client = mlflow.MlflowClient()
    interrupted = client.create_run(experiment_id, tags={"stage": "charlm_train"}).info.run_id
    with tracking.train_run("charlm", "charlm_train", "x", resume_id=interrupted) as run:
        assert run.info.run_id == interrupted
    assert client.get_run(interrupted).info.status == "FINISHED"
    # a checkpoint whose run is gone from the store: a new run
    with tracking.train_run("charlm", "charlm_train", "x", resume_id="0" * 32) as run:
        assert run.info.run_id != "0" * 32


def test_evaluate_finds_the_train_run_by_the_model_file(store):
    model = store / "model.keras"
    model.write_bytes(b"weights")
    with tracking.train_run("imdb", "imdb_train", "imdb-train") as run:
        mlflow.set_tag(tracking.MODEL_TAG, tracking.file_sha256(model))
    assert tracking.run_of_model("imdb", model) == run.info.run_id
    model.write_bytes(b"other weights")
    with pytest.raises(
        PipelineError,
        match=r"no run in the MLflow store .* trained or "
        r"evaluated .*\(dvc repro -f -s imdb_evaluate\)",
    ):
        tracking.run_of_model("imdb", model)


def test_evaluate_in_a_store_without_the_train_run_starts_a_run_tagged_with_the_model(store):
    model = store / "model.keras"
    model.write_bytes(b"weights trained elsewhere")
    run_id = tracking.evaluation_run("imdb", model)
    run = mlflow.MlflowClient().get_run(run_id)
    assert run.data.tags[tracking.MODEL_TAG] == tracking.file_sha256(model)
    assert run.data.tags["stage"] == "imdb_evaluate"
    assert run.data.tags["train_run"] == "elsewhere"
    # evaluate again, and register: the same run
    assert tracking.evaluation_run("imdb", model) == run_id
    assert tracking.run_of_model("imdb", model) == run_id
    # a store holding the train run: that one
    other = store / "other.keras"
    other.write_bytes(b"weights trained here")
    with tracking.train_run("imdb", "imdb_train", "imdb-train") as train:
        mlflow.set_tag(tracking.MODEL_TAG, tracking.file_sha256(other))
    assert tracking.evaluation_run("imdb", other) == train.info.run_id


def test_data_files_are_logged_as_dataset_inputs_named_by_path_and_hash(store):
    data = store / "train.npz"
    data.write_bytes(b"some data")
    with tracking.train_run("imdb", "imdb_train", "imdb-train") as run:
        tracking.log_data({"data/processed/imdb/train.npz": data})
    inputs = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    assert inputs[0].dataset.name == "data/processed/imdb/train.npz@1e50210a"  # md5 of the bytes
    assert inputs[0].dataset.digest == "1e50210a"


def _setup_at_once(n: int) -> list[str]:
    """tracking.setup("imdb") in n forked processes released together, as a search's chief and
    workers start; returns what each returned (an experiment id, or its error)."""
    barrier = multiprocessing.get_context("fork").Barrier(n)
    children = []
    for _ in range(n):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, then leave without pytest's clean-up
            os.close(read)
            try:
                barrier.wait(timeout=30)
                answer = tracking.setup("imdb")
            except BaseException as e:  # the parent shows it
                answer = f"error: {e!r}"
            os.write(write, answer.encode())
            os._exit(0)
        os.close(write)
        children.append((pid, read))
    answers = []
    for pid, read in children:
        with os.fdopen(read) as f:
            answers.append(f.read())
        os.waitpid(pid, 0)
    return answers


@pytest.mark.parametrize("existing", [False, True], ids=["new", "untagged"])
def test_processes_that_start_together_share_one_tagged_experiment(store, existing):
    """A fresh store (each process creates the experiment), or one whose experiment predates
    the tag (each process tags it): the losers of the race read what the winner wrote."""
    if existing:
        mlflow.set_tracking_uri(tracking.tracking_uri())
        made = mlflow.MlflowClient().create_experiment(tracking.experiment_name("imdb"))
    answers = _setup_at_once(6)
    assert len(set(answers)) == 1 and not answers[0].startswith("error"), answers
    if existing:
        assert answers[0] == made
    experiment = mlflow.MlflowClient(tracking.tracking_uri()).get_experiment(answers[0])
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_an_experiment_made_between_the_read_and_the_create_is_used(store, monkeypatch):
    """The race above, one step at a time: another process creates the experiment after this
    one found none."""
    mlflow.set_tracking_uri(tracking.tracking_uri())
    made = mlflow.MlflowClient().create_experiment(
        tracking.experiment_name("imdb"), tags=tracking.EXPERIMENT_TAGS
    )
    real = mlflow.MlflowClient.get_experiment_by_name
    looks = []

    def not_yet_then_real(self, name):
        looks.append(name)
        return None if len(looks) == 1 else real(self, name)

    monkeypatch.setattr(mlflow.MlflowClient, "get_experiment_by_name", not_yet_then_real)
    assert tracking.setup("imdb") == made
    assert len(looks) == 2


@pytest.mark.parametrize("winner_wrote", ["custom_model_development", "something else"])
def test_a_tag_another_process_wrote_first(store, monkeypatch, winner_wrote):
    """The tag race, one step at a time: another process inserts the tag between this one's
    read and its write, whose insert then fails. The same value is fine; another is an error."""
    mlflow.set_tracking_uri(tracking.tracking_uri())
    made = mlflow.MlflowClient().create_experiment(tracking.experiment_name("imdb"))
    real = mlflow.MlflowClient.set_experiment_tag

    def loses_the_race(self, experiment_id, key, value):
        real(self, experiment_id, key, winner_wrote)
        raise sqlalchemy.exc.IntegrityError(
            "INSERT INTO experiment_tags",
            {},
            Exception(
                "UNIQUE constraint failed: experiment_tags.key, experiment_tags.experiment_id"
            ),
        )

    monkeypatch.setattr(mlflow.MlflowClient, "set_experiment_tag", loses_the_race)
    if winner_wrote == "custom_model_development":
        assert tracking.setup("imdb") == made
    else:
        with pytest.raises(sqlalchemy.exc.IntegrityError, match="UNIQUE constraint"):
            tracking.setup("imdb")


def test_a_failed_create_that_is_not_the_race_is_an_error(store, monkeypatch):
    def busy(self, name, artifact_location=None, tags=None):
        raise MlflowException("database is locked", error_code=TEMPORARILY_UNAVAILABLE)

    monkeypatch.setattr(mlflow.MlflowClient, "create_experiment", busy)
    with pytest.raises(MlflowException, match="database is locked"):
        tracking.setup("imdb")
