"""What the shared tiny `dvc repro` (both projects, through register) produced, read back."""

from __future__ import annotations

import hashlib
import json
import math

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from rnnpipe.core import machine
from tests.conftest import DVC, RNNPIPE, copy_pipeline, run

pytestmark = pytest.mark.slow


def read_json(repo, path):
    return json.loads((repo / path).read_text())


def test_every_stage_ran_once(tiny_pipeline):
    from tests.test_dag import STAGES

    for name in STAGES:
        assert tiny_pipeline.log.count(f"Running stage '{name}'") == 1, name


def test_download_and_ingest(tiny_pipeline):
    repo = tiny_pipeline.repo
    df = pd.read_parquet(repo / "data/interim/imdb/reviews.parquet")
    assert list(df.columns) == ["split", "id", "rating", "label", "movie", "text"]
    assert df["split"].value_counts().to_dict() == {
        "test": 40,
        "train": 30,
        "valid": 10,
        "unsup": 10,
    }
    # valid takes whole movies: none of them has a review in train
    movies = {s: set(df.loc[df["split"] == s, "movie"]) for s in ("train", "valid")}
    assert movies["valid"] and not movies["train"] & movies["valid"]
    corpus = (repo / "data/interim/charlm/corpus.txt").read_text(encoding="utf-8")
    assert corpus.startswith("THE MYSTERIOUS ISLAND\n\nby Jules Verne")
    assert "Project Gutenberg" not in corpus and "\r" not in corpus
    record = read_json(repo, "data/raw/imdb/download.json")
    archive = repo / "data/raw/imdb/aclImdb_v1.tar.gz"
    assert record["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    # the gate's stamp names the data that passed, and nothing else
    stamp = read_json(repo, "data/interim/imdb/check_raw.json")
    parquet = (repo / "data/interim/imdb/reviews.parquet").read_bytes()
    assert stamp == {
        "check": "imdb_raw",
        "passed": {"reviews.parquet": hashlib.sha256(parquet).hexdigest()},
    }


def test_imdb_metrics_baseline_and_threshold_from_validation(tiny_pipeline, tmp_path):
    repo = tiny_pipeline.repo
    m = read_json(repo, "reports/imdb/metrics.json")
    assert set(m) == {"valid", "test"} and m["test"]["n"] == 40 and m["valid"]["n"] == 10
    # one threshold, chosen on validation, applied to both
    assert m["valid"]["threshold"] == m["test"]["threshold"]
    # tinydata's reviews are separable by their sentiment words
    assert m["test"]["accuracy"] >= 0.8 and m["test"]["roc_auc"] >= 0.9
    baseline = read_json(repo, "reports/imdb/baseline.json")
    assert baseline["test"]["accuracy"] >= 0.9
    roc = pd.read_csv(repo / "reports/imdb/plots/roc.csv")
    assert list(roc.columns) == ["fpr", "tpr"] and roc["fpr"].is_monotonic_increasing
    history = pd.read_csv(repo / "reports/imdb/plots/history.csv")
    assert list(history["epoch"]) == list(range(len(history)))
    # dvc on a copy: the shared repo is only read, by tests that may run at the same time
    copy, env = copy_pipeline(tiny_pipeline, tmp_path / "repo")
    shown = run([str(DVC), "metrics", "show"], copy, env).stdout
    for path in (
        "imdb/metrics.json",
        "imdb/baseline.json",
        "imdb/tuning.json",
        "imdb/embed.json",
        "charlm/metrics.json",
        "quality/imdb_raw.json",
    ):
        assert f"reports/{path}" in shown


def unigram_loss(train: np.ndarray, test: np.ndarray, vocab_size: int) -> float:
    """Cross-entropy (nats/char) of `test` under the train text's character frequencies."""
    counts = np.bincount(train, minlength=vocab_size) + 1.0  # add-one: no zero probability
    return float(-np.log(counts[test] / counts.sum()).mean())


def test_charlm_beats_a_unigram_model_on_held_out_text(tiny_pipeline):
    repo = tiny_pipeline.repo
    m = read_json(repo, "reports/charlm/metrics.json")
    vocab = read_json(repo, "data/processed/charlm/vocab.json")
    with np.load(repo / "data/processed/charlm/train.npz") as z:
        train = z["ids"]
    with np.load(repo / "data/processed/charlm/test.npz") as z:
        test = z["ids"]
    assert m["test"]["chars"] == len(test)
    assert m["test"]["loss"] < math.log(vocab["size"])
    assert m["test"]["loss"] < unigram_loss(train, test, vocab["size"]) - 0.5
    assert m["test"]["bits_per_char"] == pytest.approx(m["test"]["loss"] / math.log(2))
    samples = (repo / "reports/charlm/samples.md").read_text()
    assert samples.count("## temperature") == 3 and "The island" in samples


@pytest.mark.parametrize("project", ["imdb", "charlm"])
def test_train_uses_the_searchs_answer(tiny_pipeline, project):
    """use_tuned (the default): the train run's model params are best_hparams.json's for the
    searched keys and params.yaml's for the others, and the search's report and trial table
    agree with it."""
    repo = tiny_pipeline.repo
    best = read_json(repo, f"models/{project}/best_hparams.json")
    space = yaml.safe_load((repo / "params.yaml").read_text())[project]["tune"]["space"]
    assert best.keys() == space.keys()  # the searched keys alone
    model = yaml.safe_load((repo / "params.yaml").read_text())[project]["train"]["model"]
    assert read_json(repo, f"models/{project}/hparams.json") == model | best
    report = read_json(repo, f"reports/{project}/tuning.json")
    trials = read_json(repo, f"reports/{project}/tuning_trials.json")
    assert report["best_hparams"] == best and report["trials"] == len(trials)
    assert min(t["score"] for t in trials) == pytest.approx(report["best_score"])
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(f"rnnpipe-{project}")
    (run,) = client.search_runs([experiment.experiment_id], f"tags.stage = '{project}_train'")
    assert {k: run.data.params[f"model.{k}"] for k in best} == {k: str(v) for k, v in best.items()}
    (parent,) = client.search_runs([experiment.experiment_id], "tags.stage = 'tune'")
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == len(trials)
    assert all("epochs" in c.data.metrics and "val_loss" in c.data.metrics for c in children)


def test_train_uses_the_hparams_file_and_logs_the_run(tiny_pipeline):
    repo = tiny_pipeline.repo
    hp = read_json(repo, "models/imdb/hparams.json")
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("rnnpipe-imdb")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    expected = {"data/processed/imdb/train.npz", "data/processed/imdb/valid.npz"}
    if hp["pretrained"]:
        expected.add("models/imdb/word_vectors.npy")
    # train's model teaches; the student, trained also on its soft labels, is evaluated
    for stage, inputs in (
        ("imdb_train", expected),
        ("imdb_student", expected | {"data/processed/imdb/unsup_soft.npz"}),
    ):
        runs = client.search_runs([experiment.experiment_id], f"tags.stage = '{stage}'")
        assert len(runs) == 1 and runs[0].info.status == "FINISHED"
        logged = runs[0]
        assert logged.data.params["model.units"] == str(hp["units"])
        assert logged.data.tags["device"].endswith("CPU")
        assert logged.data.tags["cpu"] == machine.cpu()  # the numbers' last digits depend on it
        assert {d.dataset.name.split("@")[0] for d in logged.inputs.dataset_inputs} == inputs
    assert "test_accuracy" in logged.data.metrics and "valid_accuracy" in logged.data.metrics
    taught = read_json(repo, "reports/imdb/teach.json")
    # the tiny profile labels a window of each unlabelled review too (imdb.student.windows)
    assert taught["windows"]["count"] == taught["unsup_reviews"]
    assert set(taught["valid_windows"]) == {"rnn", "nbsvm", "stack"}
    n = taught["unsup_reviews"]
    with np.load(repo / "data/processed/imdb/unsup_soft.npz") as soft:
        assert len(soft["labels"]) == 2 * n
        assert soft["lengths"][n:].mean() < soft["lengths"][:n].mean()  # windows are shorter
    assert logged.data.params["n_unlabelled"] == str(2 * n)  # the student reads both


def test_registered_models_take_raw_input(tiny_pipeline):
    repo = tiny_pipeline.repo
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    for project in ("imdb", "charlm"):
        decision = read_json(repo, f"reports/{project}/promotion.json")
        assert decision["decision"] == "champion" and decision["version"] == 1
        assert decision["metric"].startswith("valid.")
    model = mlflow.pyfunc.load_model("models:/imdb-sentiment@champion")
    reviews = [
        "Wonderful, brilliant, I loved it!<br /><br />Best film.",
        "Awful. Boring and stupid; the worst waste of time.",
    ]
    out = model.predict(pd.DataFrame({"text": reviews}))
    assert list(out.columns) == ["probability", "label"]
    assert list(out["label"]) == [1, 0]
    lm = mlflow.pyfunc.load_model("models:/mysterious-island-charlm@champion")
    out = lm.predict(
        pd.DataFrame(
            [
                {"prompt": "The island", "length": 30, "temperature": 0.5, "seed": 1},
                {"prompt": "Zebra ~", "length": 10, "temperature": 1.5, "seed": 2},
            ]
        )
    )
    assert out["text"][0].startswith("The island") and len(out["text"][0]) == 40
    assert out["text"][1].startswith("Zebra ~") and len(out["text"][1]) == 17


def test_offline_scoring_takes_any_number_of_reviews(tiny_pipeline, monkeypatch):
    monkeypatch.delenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tiny_pipeline.repo / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/imdb-sentiment@champion")
    reviews = ["Wonderful, brilliant, I loved it!", "Awful. Boring, the worst."] * 5000
    out = model.predict(pd.DataFrame({"text": reviews}))  # more than one chunk of 4096
    assert len(out) == 10_000
    assert (out["probability"][::2].to_numpy() == out["probability"][0]).all()
    assert list(out["label"][:2]) == [1, 0]
    lm = mlflow.pyfunc.load_model("models:/mysterious-island-charlm@champion")
    rows = [
        {"prompt": "The island", "length": 3, "temperature": 1.0, "seed": i} for i in range(100)
    ]  # over the server's 64 rows
    assert len(lm.predict(pd.DataFrame(rows))) == 100


def test_generate_from_the_saved_model(tiny_pipeline):
    repo, env = tiny_pipeline.repo, tiny_pipeline.env
    cmd = [
        str(RNNPIPE),
        "charlm",
        "generate",
        "--prompt",
        "The island",
        "--length",
        "40",
        "--temperature",
        "0.8",
        "--seed",
        "3",
        "--model",
        "models/charlm/model.keras",
    ]
    first = run(cmd, repo, env).stdout
    assert first.startswith("The island") and len(first.rstrip("\n")) == len("The island") + 40
    assert run(cmd, repo, env).stdout == first


def test_compare_reports_both_rows_with_the_same_budget(tiny_pipeline):
    repo = tiny_pipeline.repo
    vocab = read_json(repo, "data/processed/charlm/vocab.json")
    with np.load(repo / "data/processed/charlm/train.npz") as z:
        train = z["ids"]
    with np.load(repo / "data/processed/charlm/test.npz") as z:
        test = z["ids"]
    for project, budget in (("imdb", 2), ("charlm", 2)):  # compare.epochs in params_tiny
        rows = read_json(repo, f"reports/{project}/compare.json")
        assert set(rows) == {"recurrent", "attention"}
        hp = read_json(repo, f"models/{project}/hparams.json")
        assert rows["recurrent"]["model"].removeprefix("Bi").startswith(hp["cell"])
        assert rows["attention"]["model"].startswith("Transformer-")
        for row in rows.values():
            assert 1 <= row["epochs"] <= budget and row["cut_by_budget"] is False
            assert row["params"] > 0 and row["train_minutes"] >= 0
        table = (repo / f"reports/{project}/compare.md").read_text()
        assert "| recurrent | " in table and "| attention | Transformer-" in table
    imdb = read_json(repo, "reports/imdb/compare.json")
    for row in imdb.values():
        assert 0.5 <= row["test_accuracy"] <= 1 and row["reviews_per_second"] > 0
    charlm = read_json(repo, "reports/charlm/compare.json")
    for row in charlm.values():
        # both learn the tiny novel: below a uniform and a unigram guess on held-out text
        assert row["test_loss"] < unigram_loss(train, test, vocab["size"]) < math.log(vocab["size"])
        assert row["test_bits_per_char"] == pytest.approx(row["test_loss"] / math.log(2))
        assert row["chars_per_second"] > 0
    # the recurrent row is the tuned model retrained with the same seed: the train stage's
    # model with train's own budget is another run, which the comparison did not touch
    assert "charlm_train" in tiny_pipeline.log and "imdb_compare" in tiny_pipeline.log
    runs = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").search_runs(
        [
            mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
            .get_experiment_by_name("rnnpipe-charlm")
            .experiment_id
        ],
        "tags.stage = 'charlm_compare'",
    )
    assert sorted(r.data.tags.get("row", "parent") for r in runs) == [
        "attention",
        "parent",
        "recurrent",
    ]
