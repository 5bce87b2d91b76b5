"""The tune stages on the projects' real model builders and input pipelines (tiny data made
here), and train picking up what tune found through the hparams stage."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest
import yaml

from rnnpipe.charlm import train as charlm_train
from rnnpipe.charlm import tune as charlm_tune
from rnnpipe.core import hparams, tracking
from rnnpipe.core.params import Params, validate
from rnnpipe.core.vocab import Vocabulary
from rnnpipe.imdb import train as imdb_train
from rnnpipe.imdb import tune as imdb_tune

ROOT = Path(__file__).resolve().parents[1]


def tiny_params(**train_updates) -> Params:
    raw = yaml.safe_load((ROOT / "tests" / "params_tiny.yaml").read_text())
    for project, updates in train_updates.items():
        raw[project]["train"].update(updates)
    return validate(raw)


def write_imdb(folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    Vocabulary("word", ("<pad>", "<oov>", *[f"w{i}" for i in range(18)]), 0, 1).save(
        folder / "vocab.json"
    )
    for split, n in (("train", 40), ("valid", 16)):
        lengths = rng.integers(3, 30, size=n).astype("int32")
        labels = rng.integers(0, 2, size=n).astype("int8")
        ids = np.zeros((n, 30), "int32")
        for i, k in enumerate(lengths):
            # the label shows in the words: positives use ids 2..10, negatives 10..19
            ids[i, :k] = rng.integers(2, 11, size=k) if labels[i] else rng.integers(10, 20, k)
        np.savez(folder / f"{split}.npz", ids=ids, lengths=lengths, labels=labels)


def write_charlm(folder: Path, seed: int = 0) -> None:
    text = "the island engineer sailors cyrus harding pencroft herbert neb. " * 40
    chars = sorted(set(text))
    Vocabulary("char", ("<unk>", *chars), None, 0).save(folder / "vocab.json")
    ids = np.array([chars.index(c) + 1 for c in text], "int32")
    cut = int(len(ids) * 0.8)
    np.savez(folder / "train.npz", ids=ids[:cut], start=np.int64(0))
    np.savez(folder / "valid.npz", ids=ids[cut:], start=np.int64(cut))


@pytest.fixture
def workdir(tmp_path, monkeypatch, copy_empty_store) -> Path:
    """cwd = tmp_path (.tuner/ and .checkpoints/ land there), MLflow in tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", copy_empty_store(tmp_path))
    for var in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "processed").mkdir()
    return tmp_path


def run_params(project: str, model: Path) -> dict:
    """The params logged by the train run of `model` (found by the file's hash)."""
    run_id = tracking.run_of_model(project, model)
    return mlflow.MlflowClient().get_run(run_id).data.params


def tune_then_hparams(
    project: str, tune, params: Params, processed: Path, models: Path, **paths
) -> tuple[dict, dict, list[dict], Path]:
    """Run the tune stage, then the hparams stage; (best_hparams, report, trials,
    hparams.json)."""
    reports = models.parent.parent / "reports"
    best, report, trials = (
        models / "best_hparams.json",
        reports / "tuning.json",
        reports / "tuning_trials.json",
    )
    tune(params, processed, processed / "vocab.json", best, report, trials, **paths)
    resolved = models / "hparams.json"
    hparams.hparams(params, best, resolved, project=project)
    return (
        json.loads(best.read_text()),
        json.loads(report.read_text()),
        json.loads(trials.read_text()),
        resolved,
    )


def rnn_layers(model: keras.Model) -> list:
    """The recurrent layers, inside Bidirectional wrappers too."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.RNN)]


@pytest.mark.slow
def test_imdb_hyperband_then_train_with_the_tuned_hyperparameters(workdir):
    processed = workdir / "processed"
    write_imdb(processed)
    vectors = workdir / "word_vectors.npy"
    np.save(vectors, np.random.default_rng(0).normal(size=(20, 8)).astype("float32"))
    params = tiny_params(imdb={"use_tuned": True, "epochs": 1})
    # Hyperband: three models for 1 epoch, then the best of them goes on to 3
    t = params.imdb.tune.model_copy(update={"tuner": "hyperband", "max_trials": 4, "epochs": 3})
    params = params.model_copy(update={"imdb": params.imdb.model_copy(update={"tune": t})})
    models = workdir / "models" / "imdb"
    best, report, trials, resolved = tune_then_hparams(
        "imdb", imdb_tune.tune, params, processed, models, vectors=vectors
    )
    # best_hparams.json: the model hyperparameters alone, each from the space when searched
    assert best.keys() == t.space.keys()
    assert all(best[key] in values for key, values in t.space.items())
    assert report["tuner"] == "hyperband" and report["best_hparams"] == best
    assert report["trials"] == t.max_trials == len(trials)
    assert sorted(row["epochs"] for row in trials) == [1, 1, 1, 3]
    assert not report["cut_by_budget"] and report["max_minutes"] is None
    # use_tuned: the searched keys from the search, the others from params.yaml
    assert json.loads(resolved.read_text()) == params.imdb.train.model.model_dump() | best

    imdb_train.train(params, processed, processed / "vocab.json", resolved, vectors, models)
    logged = run_params("imdb", models / "model.keras")
    assert {key: logged[f"model.{key}"] for key in best} == {k: str(v) for k, v in best.items()}
    model = keras.models.load_model(models / "model.keras")
    rnns = rnn_layers(model)
    assert rnns and all(type(r).__name__ == best["cell"] for r in rnns)
    assert all(r.units == best["units"] for r in rnns)


@pytest.mark.slow
def test_charlm_tune_then_train_with_the_tuned_hyperparameters(workdir):
    processed = workdir / "processed"
    write_charlm(processed)
    params = tiny_params(charlm={"use_tuned": True, "epochs": 1})
    models = workdir / "models" / "charlm"
    best, report, trials, resolved = tune_then_hparams(
        "charlm", charlm_tune.tune, params, processed, models
    )
    assert best.keys() == params.charlm.tune.space.keys()
    assert report["trials"] == params.charlm.tune.max_trials == len(trials)
    assert report["objective"] == "val_loss" and report["best_hparams"] == best
    assert best["seq_length"] in params.charlm.tune.space["seq_length"]

    charlm_train.train(params, processed, processed / "vocab.json", resolved, models)
    logged = run_params("charlm", models / "model.keras")
    assert {key: logged[f"model.{key}"] for key in best} == {k: str(v) for k, v in best.items()}
    model = keras.models.load_model(models / "model.keras")
    rnns = rnn_layers(model)
    assert [type(r).__name__ for r in rnns] == [best["cell"]]
    assert rnns[0].units == best["units"]
    # the tune run and its trials are in the project's experiment
    runs = mlflow.search_runs(experiment_names=["rnnpipe-charlm"], output_format="list")
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == params.charlm.tune.max_trials


@pytest.mark.slow
def test_the_budget_stops_the_search_and_keeps_the_best_finished_trial(workdir, monkeypatch):
    from rnnpipe.core import search

    processed = workdir / "processed"
    write_charlm(processed)
    raw = yaml.safe_load((ROOT / "tests" / "params_tiny.yaml").read_text())
    raw["charlm"]["tune"].update(max_trials=50, max_minutes=0.001)  # 0.06 s: one trial
    params = validate(raw)
    models = workdir / "models" / "charlm"
    best, report, trials, _ = tune_then_hparams(
        "charlm", charlm_tune.tune, params, processed, models
    )
    assert report["cut_by_budget"] and report["max_minutes"] == 0.001
    assert report["trials"] == len(trials) == 1  # not 50: no trial started after the budget
    assert best == report["best_hparams"]
    assert not (workdir / search.TUNER_ROOT / "charlm").exists()


# what may differ between two runs of the same params on machines of different speeds
TIMINGS = {"minutes", "train_minutes", "chars_per_second", "reviews_per_second"}


def without_timings(report: dict) -> dict:
    return {
        k: without_timings(v) if isinstance(v, dict) else v
        for k, v in report.items()
        if k not in TIMINGS
    }


@pytest.mark.slow
def test_without_a_budget_a_slower_machine_gets_the_same_search_and_comparison(
    workdir, monkeypatch
):
    """The committed profile bounds the search and compare by trials and epochs alone: a run
    whose every epoch takes longer (a sleeping callback) chooses, trains and scores the same."""
    import time

    from rnnpipe.charlm import compare as charlm_compare
    from rnnpipe.core import search, training

    processed = workdir / "processed"
    write_charlm(processed)
    ids = np.load(processed / "valid.npz")["ids"]
    np.savez(processed / "test.npz", ids=ids, start=np.int64(0))
    params = tiny_params(charlm={"use_tuned": True, "epochs": 1})
    assert params.charlm.tune.max_minutes is None and params.charlm.compare.max_minutes is None
    assert (
        yaml.safe_load((ROOT / "params.yaml").read_text())["charlm"]["tune"]["max_minutes"] is None
    )  # the committed profile too

    def run(name: str) -> tuple:
        models, reports = workdir / name / "models", workdir / name / "reports"
        best, report, trials, resolved = tune_then_hparams(
            "charlm", charlm_tune.tune, params, processed, models
        )
        charlm_compare.compare(params, processed, processed / "vocab.json", resolved, reports)
        compare = json.loads((reports / "compare.json").read_text())
        return (
            best,
            without_timings(report),
            trials,
            json.loads(resolved.read_text()),
            without_timings(compare),
        )

    fast = run("fast")

    class Slow(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            time.sleep(0.5)

    schedule = training.schedule

    def slow_schedule(hp):
        return [*schedule(hp), Slow()]

    monkeypatch.setattr(search, "schedule", slow_schedule)
    monkeypatch.setattr(training, "schedule", slow_schedule)
    slow = run("slow")
    assert slow == fast
    assert not fast[1]["cut_by_budget"]
    assert not any(row["cut_by_budget"] for row in fast[4].values())


def test_crop_keeps_the_start_of_reviews():
    split = {
        "ids": np.array([[5, 6, 7, 0], [8, 9, 0, 0]], "int32"),
        "lengths": np.array([3, 2], "int32"),
        "labels": np.array([1, 0], "int8"),
    }
    cropped = imdb_tune.crop(split, 2)
    assert cropped["ids"].tolist() == [[5, 6], [8, 9]]
    assert cropped["lengths"].tolist() == [2, 2]
    assert imdb_tune.crop(split, None) is split
