"""The search engine (rnnpipe.core.search) on a tiny model of our own and tiny random data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest

from rnnpipe.core import search as tuning
from rnnpipe.core.params import TuneParams

CELLS = {"SimpleRNN": keras.layers.SimpleRNN, "LSTM": keras.layers.LSTM, "GRU": keras.layers.GRU}
# the fixed model keys (a project takes them from <project>.train.model); TINY searches the rest
BASE = {"embedding_dim": 4}
TINY = TuneParams(
    tuner="random",
    max_trials=3,
    epochs=1,
    train_fraction=0.5,
    space={
        "cell": ["SimpleRNN", "LSTM", "GRU"],
        "units": [2, 4, 8],
        "clipnorm": [0.5, 1.0, 5.0],
        "learning_rate": [1e-2],
    },
)


def tiny_build(hp: dict, metrics=("accuracy",)) -> keras.Model:
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, hp["embedding_dim"])(inputs)
    x = CELLS[hp["cell"]](hp["units"])(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    model.compile(
        keras.optimizers.Adam(hp["learning_rate"], clipnorm=hp["clipnorm"]),
        "binary_crossentropy",
        metrics=list(metrics),
        run_eagerly=True,
    )  # no tf.function tracing: seconds, not a minute, per test
    return model


def tiny_task(seed: int = 0, callbacks=()) -> tuning.Task:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 10, size=(48, 6)).astype("int32")
    y = (x == 3).any(axis=1).astype("float32")
    rows = tuning.subsample(40, TINY.train_fraction, seed)
    return tuning.Task(
        project="tiny",
        build=tiny_build,
        base=BASE,
        data=lambda hp: {
            "x": x[rows],
            "y": y[rows],
            "batch_size": 8,
            "validation_data": (x[40:], y[40:]),
            "callbacks": list(callbacks),
        },
        fingerprint=tuning.fingerprint(extra=x.tobytes()),
    )


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> Path:
    """An empty MLflow store with the experiment, made once (its migrations take seconds)."""
    folder = tmp_path_factory.mktemp("mlflow")
    db = folder / "template.db"
    # artifacts (trials.csv, the plot) in tmp, not ./mlruns of the current folder
    mlflow.MlflowClient(f"sqlite:///{db}").create_experiment(
        "rnnpipe-tiny", artifact_location=(folder / "artifacts").as_uri()
    )
    return db


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch, mlflow_template) -> str:
    shutil.copyfile(mlflow_template, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for var in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        monkeypatch.delenv(var, raising=False)
    return uri


def runs(uri: str) -> list:
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("rnnpipe-tiny")
    return client.search_runs([exp.experiment_id], max_results=1000)


def trial_values(tuner_dir: Path) -> list[dict]:
    """The hyperparameters of every trial in trial-id order, from Keras Tuner's own files."""
    files = sorted(tuner_dir.glob("*/trial_*/trial.json"))
    return [json.loads(f.read_text())["hyperparameters"]["values"] for f in files]


def test_search_space_is_the_params_space_one_value_fixed():
    space = tuning.search_space(
        TuneParams(space={"cell": ["SimpleRNN", "LSTM", "GRU"], "units": [8, 16], "layers": [2]})
    )
    by_name = {p.name: p for p in space.space}
    assert list(by_name["cell"].values) == ["SimpleRNN", "LSTM", "GRU"]
    assert list(by_name["units"].values) == [8, 16]
    assert type(by_name["layers"]).__name__ == "Fixed" and by_name["layers"].value == 2
    assert set(by_name) == {"cell", "units", "layers"}  # the rest: the model's defaults


def test_an_empty_space_is_an_error_before_any_search(tmp_path):
    with pytest.raises(tuning.PipelineError, match="tune.space is empty"):
        tuning.run_search(
            tiny_task(),
            TINY.model_copy(update={"space": {}}),
            seed=0,
            tuner_root=tmp_path / ".tuner",
            verbose=0,
        )
    assert not (tmp_path / ".tuner").exists()


def test_a_trial_is_the_fixed_keys_and_the_searched_ones():
    values = {"cell": "LSTM", "units": 8, "clipnorm": 5.0, "learning_rate": 1e-2, "tuner/epochs": 2}
    hp = tuning.hparams_from(values, BASE, TINY.space)
    assert hp == {**BASE, "cell": "LSTM", "units": 8, "clipnorm": 5.0, "learning_rate": 1e-2}
    # Keras Tuner hands a boolean choice back as 0/1
    assert tuning.searched({"pretrained": 1, "units": 8}, {"pretrained": [True, False]}) == {
        "pretrained": True
    }


def test_the_fixed_keys_are_the_model_keys_the_space_leaves_out():
    from tests.tinydata import sentiment_params

    model = sentiment_params(layers=2, bidirectional=False)
    fixed = tuning.fixed_keys(model, {"cell": ["GRU"], "units": [4, 8]})
    assert fixed == {k: v for k, v in model.model_dump().items() if k not in ("cell", "units")}
    assert fixed["layers"] == 2 and fixed["bidirectional"] is False


def test_role_needs_every_variable(monkeypatch):
    monkeypatch.delenv("KERASTUNER_ORACLE_IP", raising=False)
    assert tuning.role() == "single"
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    monkeypatch.delenv("KERASTUNER_TUNER_ID", raising=False)
    with pytest.raises(tuning.PipelineError, match="KERASTUNER_TUNER_ID"):
        tuning.role()
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    assert tuning.role() == "chief"
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner1")
    assert tuning.role() == "worker"


def test_run_stage_writes_hparams_only_and_a_report(tmp_path, monkeypatch):
    """best_hparams.json (train's dependency) holds the hyperparameters alone; the score and
    the rest go to the report. The search itself is faked here (see the slow tests)."""
    monkeypatch.setattr(tuning, "TUNER_ROOT", tmp_path / ".tuner")
    state = tmp_path / ".tuner" / "tiny" / "key"
    state.mkdir(parents=True)
    best = {"cell": "LSTM", "units": 4, "clipnorm": 1.0, "learning_rate": 1e-2}
    table = [{"trial_id": "0", "status": "COMPLETED", "score": 0.25, "epochs": 1, "cell": "LSTM"}]
    result = {
        "hparams": best,
        "score": 0.25,
        "objective": "val_loss",
        "trials": 3,
        "run_id": "abc",
        "minutes": 0.5,
        "cut_by_budget": False,
        "table": table,
    }
    calls = []
    monkeypatch.setattr(tuning, "run_search", lambda *a, **k: calls.append((a, k)) or result)
    out, report = tmp_path / "models" / "best_hparams.json", tmp_path / "reports" / "t.json"
    tuning.run_stage(tiny_task(), TINY, 1, out, report, tmp_path / "trials.json")
    assert calls[0][1] == {"tuner_root": tmp_path / ".tuner"}
    assert json.loads(out.read_text()) == best
    assert json.loads(report.read_text()) == {
        "objective": "val_loss",
        "best_score": 0.25,
        "trials": 3,
        "tuner": "random",
        "minutes": 0.5,
        "max_minutes": None,
        "cut_by_budget": False,
        "best_hparams": best,
    }
    # the plot's table: one row per trial, with a number for its x axis
    assert json.loads((tmp_path / "trials.json").read_text()) == [{"trial": 0, **table[0]}]
    assert not (tmp_path / ".tuner" / "tiny").exists()  # a finished search is not resumed

    # a distributed worker only runs trials: the chief writes the result
    out.unlink()
    report.unlink()
    (tmp_path / "trials.json").unlink()
    monkeypatch.setattr(tuning, "run_search", lambda *a, **k: None)
    tuning.run_stage(tiny_task(), TINY, 1, out, report, tmp_path / "trials.json")
    assert not out.exists() and not report.exists() and not (tmp_path / "trials.json").exists()


@pytest.mark.slow
def test_tiny_search_logs_a_parent_run_with_a_child_per_trial(tmp_path, tracking_uri, monkeypatch):
    monkeypatch.setattr(tuning, "TUNER_ROOT", tmp_path / ".tuner")
    out, report = tmp_path / "best_hparams.json", tmp_path / "tuning.json"
    tuning.run_stage(tiny_task(), TINY, 1, out, report, tmp_path / "trials.json")
    hparams = json.loads(out.read_text())
    assert set(hparams) == set(TINY.space)  # the searched keys alone
    assert hparams["cell"] in ("SimpleRNN", "LSTM", "GRU")
    result = json.loads(report.read_text())
    assert result["trials"] == 3 and result["objective"] == "val_loss"
    assert result["best_hparams"] == hparams
    assert not (tmp_path / ".tuner" / "tiny").exists()

    all_runs = runs(tracking_uri)
    parents = [r for r in all_runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in all_runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert sorted(c.data.tags["trial_id"] for c in children) == ["0", "1", "2"]
    for c in children:
        assert {"cell", "units", "clipnorm"} <= set(c.data.params)
        assert {"val_loss", "val_accuracy", "score"} <= set(c.data.metrics)
        assert c.info.status == "FINISHED"
    # the best child's score is the result's score; the parent has the summary
    assert min(c.data.metrics["score"] for c in children) == pytest.approx(result["best_score"])
    assert parent.data.params["best.cell"] == hparams["cell"]
    assert parent.data.metrics["best_score"] == pytest.approx(result["best_score"])
    artifacts = {
        a.path for a in mlflow.MlflowClient(tracking_uri).list_artifacts(parent.info.run_id)
    }
    assert {"trials.csv", "score_vs_hparams.png", "best_hparams.json"} <= artifacts


@pytest.mark.slow
def test_same_seed_same_trials(tmp_path, tracking_uri):
    seqs = []
    tune = TINY.model_copy(update={"max_trials": 2})
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        root = tmp_path / name
        tuning.run_search(tiny_task(), tune, seed=seed, tuner_root=root, verbose=0)
        seqs.append(trial_values(root / "tiny"))
    assert len(seqs[0]) == 2
    assert seqs[0] == seqs[1]
    assert seqs[0] != seqs[2]


class Interrupt(keras.callbacks.Callback):
    """Raise KeyboardInterrupt at the end of the n-th epoch of the whole search (Ctrl-C)."""

    def __init__(self, after: int):
        super().__init__()
        self.after = after

    def on_epoch_end(self, epoch, logs=None):
        Interrupt.seen = getattr(Interrupt, "seen", 0) + 1
        if Interrupt.seen == self.after:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_an_interrupted_search_continues_from_its_finished_trials(
    tmp_path, tracking_uri, monkeypatch
):
    root = tmp_path / ".tuner"
    Interrupt.seen = 0
    with pytest.raises(KeyboardInterrupt):
        tuning.run_search(
            tiny_task(callbacks=[Interrupt(after=2)]), TINY, seed=3, tuner_root=root, verbose=0
        )
    # two trials began, the first finished
    assert len(trial_values(root / "tiny")) == 2

    built = []
    monkeypatch.setattr(
        tuning.ProjectHyperModel,
        "build",
        lambda self, hp, _b=tuning.ProjectHyperModel.build: built.append(1) or _b(self, hp),
    )
    result = tuning.run_search(tiny_task(), TINY, seed=3, tuner_root=root, verbose=0)
    assert result["trials"] == 3
    # only the interrupted trial and the one never started are built (and trained) again:
    # Keras Tuner reloads its search space without building a model
    assert len(built) == 2
    all_runs = runs(tracking_uri)
    assert len([r for r in all_runs if "mlflow.parentRunId" not in r.data.tags]) == 1
    children = [r for r in all_runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(c.data.tags["trial_id"] for c in children) == ["0", "1", "2"]

    # other search settings start afresh, and drop the stale search
    other = TINY.model_copy(update={"space": {**TINY.space, "units": [3, 5]}})
    tuning.run_search(tiny_task(), other, seed=3, tuner_root=root, verbose=0)
    assert len(list((root / "tiny").iterdir())) == 1
    assert {v["units"] for v in trial_values(root / "tiny")} <= {3, 5}


@pytest.mark.slow
def test_trials_that_cannot_report_the_objective_stop_the_search(tmp_path, tracking_uri):
    task = tiny_task()
    task.build = lambda hp: tiny_build(hp, metrics=())  # no accuracy, yet val_accuracy asked
    tune = TINY.model_copy(update={"objective": "val_accuracy"})
    with pytest.raises(tuning.PipelineError, match="val_accuracy"):
        tuning.run_search(task, tune, seed=0, tuner_root=tmp_path / ".tuner", verbose=0)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["bayesian", "hyperband"])
def test_bayesian_and_hyperband_searches_finish(tmp_path, tracking_uri, kind):
    tune = TINY.model_copy(
        update={"tuner": kind, "epochs": 2, "max_trials": 2, "objective": "val_accuracy"}
    )
    result = tuning.run_search(tiny_task(), tune, seed=2, tuner_root=tmp_path / ".tuner", verbose=0)
    assert result["trials"] == 2 and result["objective"] == "val_accuracy"
    assert set(result["hparams"]) == set(TINY.space)  # no Hyperband "tuner/..." entries
    children = [r for r in runs(tracking_uri) if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 2
    assert max(c.data.metrics["score"] for c in children) == pytest.approx(result["score"])


def test_the_code_fingerprint_follows_every_package_file(tmp_path, monkeypatch):
    package = tmp_path / "rnnpipe"
    shutil.copytree(tuning.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(tuning, "PACKAGE", package)
    before = tuning.code_fingerprint()
    assert tuning.code_fingerprint() == before
    builder = package / "imdb" / "model.py"
    builder.write_text(builder.read_text() + "\n# a changed builder\n")
    assert tuning.code_fingerprint() != before


@pytest.mark.slow
def test_a_search_made_by_other_code_is_not_reused(tmp_path, tracking_uri, monkeypatch):
    root = tmp_path / ".tuner"
    Interrupt.seen = 0
    with pytest.raises(KeyboardInterrupt):  # an unfinished search leaves its state
        tuning.run_search(
            tiny_task(callbacks=[Interrupt(after=2)]), TINY, seed=3, tuner_root=root, verbose=0
        )
    [stale] = list((root / "tiny").iterdir())
    # the builder's module is edited: the same params, data and seed make another search
    package = tmp_path / "rnnpipe"
    shutil.copytree(tuning.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "imdb" / "model.py").write_text(
        (package / "imdb" / "model.py").read_text() + "\n# a changed builder\n"
    )
    monkeypatch.setattr(tuning, "PACKAGE", package)
    built = []
    monkeypatch.setattr(
        tuning.ProjectHyperModel,
        "build",
        lambda self, hp, _b=tuning.ProjectHyperModel.build: built.append(1) or _b(self, hp),
    )
    result = tuning.run_search(tiny_task(), TINY, seed=3, tuner_root=root, verbose=0)
    # a fresh search: one build declares the space, then every trial is built and run again
    # (the resumed search in the test above builds only its 2 unfinished trials)
    assert result["trials"] == 3 and len(built) == 1 + 3
    assert [p.name for p in (root / "tiny").iterdir()] != [stale.name]
