"""The tune stages on the projects' real model builders and input pipelines (tiny data made
here), and train picking up what tune found."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest
import yaml

from rnnpipe.params import Params
from rnnpipe.stages import charlm as charlm_stage
from rnnpipe.stages import imdb as imdb_stage
from rnnpipe.stages import tune
from rnnpipe.text.vocab import Vocabulary

ROOT = Path(__file__).resolve().parents[1]


def tiny_params(**train_updates) -> Params:
    raw = yaml.safe_load((ROOT / "tests" / "params_tiny.yaml").read_text())
    for project, updates in train_updates.items():
        raw[project]["train"].update(updates)
    return Params.model_validate(raw)


def write_imdb(folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    Vocabulary("word", ("<pad>", "<oov>", *[f"w{i}" for i in range(18)]), 0, 1).save(
        folder / "vocab.json")
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
def workdir(tmp_path, monkeypatch) -> Path:
    """cwd = tmp_path (.tuner/ and .checkpoints/ land there), MLflow in tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    for var in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "processed").mkdir()
    return tmp_path


def run_params(run_id_file: Path) -> dict:
    run_id = run_id_file.read_text().strip()
    return mlflow.MlflowClient().get_run(run_id).data.params


def rnn_layers(model: keras.Model) -> list:
    """The recurrent layers, inside Bidirectional wrappers too."""
    return [layer for layer in model._flatten_layers()
            if isinstance(layer, keras.layers.RNN)]


@pytest.mark.slow
def test_imdb_tune_then_train_with_the_tuned_hyperparameters(workdir):
    processed = workdir / "processed"
    write_imdb(processed)
    params = tiny_params(imdb={"use_tuned": True, "epochs": 1})
    out = workdir / "models" / "imdb" / "best_hparams.json"
    tune.tune_imdb(params, processed, processed / "vocab.json", out)
    best = json.loads(out.read_text())
    assert best["trials"] == params.imdb.tune.max_trials
    assert best["hparams"].keys() == params.imdb.train.model.model_dump().keys()
    assert best["hparams"]["units"] in params.imdb.tune.units

    imdb_stage.train(params, processed, processed / "vocab.json", out.parent, out)
    logged = run_params(out.parent / "run_id.txt")
    for key in ("cell", "units", "clipnorm"):
        assert logged[f"model.{key}"] == str(best["hparams"][key])
    model = keras.models.load_model(out.parent / "model.keras")
    rnns = rnn_layers(model)
    assert rnns and all(type(r).__name__ == best["hparams"]["cell"] for r in rnns)
    assert all(r.units == best["hparams"]["units"] for r in rnns)


@pytest.mark.slow
def test_charlm_tune_then_train_with_the_tuned_hyperparameters(workdir):
    processed = workdir / "processed"
    write_charlm(processed)
    params = tiny_params(charlm={"use_tuned": True, "epochs": 1})
    out = workdir / "models" / "charlm" / "best_hparams.json"
    tune.tune_charlm(params, processed, processed / "vocab.json", out)
    best = json.loads(out.read_text())
    assert best["trials"] == params.charlm.tune.max_trials and best["objective"] == "val_loss"
    assert best["hparams"]["cell"] in ("SimpleRNN", "LSTM", "GRU")

    charlm_stage.train(params, processed, processed / "vocab.json", out.parent, out)
    model = keras.models.load_model(out.parent / "model.keras")
    rnns = rnn_layers(model)
    assert [type(r).__name__ for r in rnns] == [best["hparams"]["cell"]]
    assert rnns[0].units == best["hparams"]["units"]
    # the tune run and its trials are in the project's experiment
    runs = mlflow.search_runs(experiment_names=["rnnpipe-charlm"], output_format="list")
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(trials) == params.charlm.tune.max_trials


def test_crop_keeps_the_start_of_reviews():
    split = {"ids": np.array([[5, 6, 7, 0], [8, 9, 0, 0]], "int32"),
             "lengths": np.array([3, 2], "int32"), "labels": np.array([1, 0], "int8")}
    cropped = tune.crop(split, 2)
    assert cropped["ids"].tolist() == [[5, 6], [8, 9]]
    assert cropped["lengths"].tolist() == [2, 2]
    assert tune.crop(split, None) is split
