"""`python -m rnnpipe.verify_serving`: the served champion's labels on the test split give
evaluate's test accuracy exactly (the tiny pipeline, a real `mlflow models serve`); the report
and the exit status when they do not, with the server stood in for (fast)."""

from __future__ import annotations

import inspect
import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnpipe import verify_serving
from rnnpipe.verify_serving import BATCH, PER_REQUEST, main, request_order
from tests.conftest import ROOT, run
from tests.warm_stages import python_module

WIDTH = 6  # the fake test.npz's max_len


def fake_workspace(
    root: Path, labels: list[int], predicted: list[int], accuracy: float | None = None
) -> list[str]:
    """The inputs the check reads, for test reviews of these labels that evaluate labelled
    `predicted`; metrics.json's test accuracy is `accuracy` (default: what `predicted` gives).
    Returns the test reviews."""
    n = len(labels)
    texts = [f"review {i} " + "very " * (i % 9) + "good" for i in range(n)]
    tokens = np.array([3 + i % 9 for i in range(n)])  # "review", the number, "very"s, "good"
    df = pd.DataFrame(
        {
            "split": ["train"] * 3 + ["test"] * n,
            "id": range(n + 3),
            "label": [0, 1, 0] + labels,
            "text": ["a", "b", "c"] + texts,
        }
    )
    (root / "data/interim/imdb").mkdir(parents=True)
    df.to_parquet(root / verify_serving.REVIEWS, index=False)
    (root / "data/processed/imdb").mkdir(parents=True)
    np.savez(
        root / verify_serving.TEST,
        ids=np.ones((n, WIDTH), "int32"),
        lengths=np.minimum(tokens, WIDTH).astype("int32"),
        labels=np.array(labels, "int8"),
    )
    (root / "reports/imdb/plots").mkdir(parents=True)
    right = sum(a == b for a, b in zip(labels, predicted, strict=True))
    metrics = {
        "test": {"accuracy": right / n if accuracy is None else accuracy, "threshold": 0.5, "n": n}
    }
    (root / verify_serving.METRICS).write_text(json.dumps(metrics))
    pd.DataFrame({"actual": labels, "predicted": predicted}).to_csv(
        root / verify_serving.CONFUSION, index=False
    )
    return texts


@pytest.fixture
def fake_server(monkeypatch):
    """Stands in for `mlflow models serve`: answers the probabilities set in `answers` (its
    labels at 0.5), and records what was sent: (reviews, the order they were sent in)."""
    answers, sent = {}, []

    @contextmanager
    def served(model_uri, port, root):
        yield "http://127.0.0.1:1"

    def score(url, texts, order):
        sent.append((texts, order))
        proba = np.asarray(answers["proba"], "float64")
        return proba, (proba >= 0.5).astype(int)

    monkeypatch.setattr(verify_serving, "served", served)
    monkeypatch.setattr(verify_serving, "score", score)
    return answers, sent


LABELS = [0, 0, 1, 1, 0, 1, 1, 0, 1, 0]
PREDICTED = [0, 1, 1, 1, 0, 1, 0, 0, 1, 0]  # evaluate got reviews 1 and 6 wrong: 0.8


def check(*args: str) -> int:
    return main(["--model-uri", "models:/fake@champion", *args])


def test_the_same_labels_give_the_same_accuracy_and_exit_0(
    tmp_path, monkeypatch, capsys, fake_server
):
    fake_workspace(tmp_path, LABELS, PREDICTED)
    monkeypatch.chdir(tmp_path)
    fake_server[0]["proba"] = [0.9 if p else 0.1 for p in PREDICTED]
    assert check() == 0
    out = capsys.readouterr().out
    assert "served accuracy:   0.8 (8 of 10 reviews right)" in out
    assert "evaluate accuracy: 0.8 (reports/imdb/metrics.json test.accuracy)" in out
    assert "labels unlike evaluate's: 0 of 10" in out
    assert out.rstrip().endswith("verify-serving: same accuracy")


def test_it_fails_when_metrics_json_says_otherwise(tmp_path, monkeypatch, capsys, fake_server):
    fake_workspace(tmp_path, LABELS, PREDICTED, accuracy=0.9)
    monkeypatch.chdir(tmp_path)
    fake_server[0]["proba"] = [0.9 if p else 0.1 for p in PREDICTED]
    assert check() == 1
    out = capsys.readouterr().out
    assert "served accuracy:   0.8 (8 of 10" in out and "evaluate accuracy: 0.9 (" in out
    assert out.rstrip().endswith("the accuracies DIFFER")


def test_the_reviews_labelled_unlike_evaluate_are_listed(
    tmp_path, monkeypatch, capsys, fake_server
):
    fake_workspace(tmp_path, LABELS, PREDICTED)
    monkeypatch.chdir(tmp_path)
    proba = [0.9 if p else 0.1 for p in PREDICTED]
    proba[1] = 0.4999999  # served: review 1 now right (evaluate had it wrong), 3 now wrong
    proba[3] = 0.25
    fake_server[0]["proba"] = proba
    assert check() == 0  # one more right, one more wrong: the same accuracy
    out = capsys.readouterr().out
    assert (
        "labels unlike evaluate's: 2 of 10; the served probability nearest the threshold "
        "0.5 is 1e-07 from it" in out
    )
    assert (
        "  review 1: served probability 0.499999900, label 0; evaluate's label 1; "
        "true label 0" in out
    )
    assert "  review 3: served probability 0.250000000, label 0; evaluate's label 1" in out


def test_limit_compares_with_evaluate_on_those_reviews(tmp_path, monkeypatch, capsys, fake_server):
    fake_workspace(tmp_path, LABELS, PREDICTED)
    monkeypatch.chdir(tmp_path)
    fake_server[0]["proba"] = [0.9 if p else 0.1 for p in PREDICTED[:4]]
    assert check("--limit", "4") == 0
    out = capsys.readouterr().out
    assert "4 test reviews as raw text" in out
    assert "served accuracy:   0.75 (3 of 4" in out
    assert "evaluate accuracy: 0.75 (reports/imdb/plots/confusion.csv, first 4 rows)" in out


def test_reviews_are_sent_in_evaluates_order_or_the_splits(tmp_path, monkeypatch, fake_server):
    texts = fake_workspace(tmp_path, LABELS, PREDICTED)
    monkeypatch.chdir(tmp_path)
    answers, sent = fake_server
    answers["proba"] = [0.9 if p else 0.1 for p in PREDICTED]
    lengths = np.minimum([3 + i % 9 for i in range(10)], WIDTH)
    check()
    check("--order", "split")
    assert sent[0][0] == sent[1][0] == texts  # the raw reviews, in the split's order
    assert sent[0][1].tolist() == np.argsort(lengths, kind="stable").tolist()
    assert sent[1][1].tolist() == list(range(10))


def predict_proba_batches(lengths: np.ndarray) -> set[tuple[int, ...]]:
    """The batches rnnpipe.imdb.model.predict_proba scores: rows sorted by length, BATCH a
    batch."""
    order = np.argsort(lengths, kind="stable")
    return {tuple(order[i : i + BATCH]) for i in range(0, len(order), BATCH)}


def test_in_evaluates_order_every_batch_the_server_scores_is_one_of_evaluates():
    from rnnpipe.imdb.model import predict_proba

    assert inspect.signature(predict_proba).parameters["batch_size"].default == BATCH
    assert PER_REQUEST % BATCH == 0
    lengths = np.random.default_rng(0).integers(1, 400, 5000)
    for order, same in (("evaluate", True), ("split", False)):
        sent = request_order(lengths, order)
        served = set()
        for start in range(0, len(sent), PER_REQUEST):
            rows = sent[start : start + PER_REQUEST]  # one request: the pyfunc's predict_proba
            served |= {tuple(rows[list(b)]) for b in predict_proba_batches(lengths[rows])}
        assert (served == predict_proba_batches(lengths)) is same


def test_a_test_split_unlike_test_npz_is_an_error(tmp_path, monkeypatch, capsys, fake_server):
    fake_workspace(tmp_path, LABELS, PREDICTED)
    monkeypatch.chdir(tmp_path)
    df = pd.read_parquet(tmp_path / verify_serving.REVIEWS)
    df.iloc[:-1].to_parquet(tmp_path / verify_serving.REVIEWS, index=False)
    assert check() == 2
    assert capsys.readouterr().err.strip() == (
        "verify-serving: error: data/interim/imdb/reviews.parquet has 9 test reviews, "
        "data/processed/imdb/test.npz 10: rerun encode (dvc repro imdb_encode)"
    )
    df.loc[df.index[-1], "text"] = "a review of other words than evaluate encoded"
    df.to_parquet(tmp_path / verify_serving.REVIEWS, index=False)
    assert check() == 2
    assert (
        "test review 9 of data/interim/imdb/reviews.parquet is not the one of "
        "data/processed/imdb/test.npz" in capsys.readouterr().err
    )


def test_missing_or_other_results_of_evaluate_are_an_error(
    tmp_path, monkeypatch, capsys, fake_server
):
    fake_workspace(tmp_path, LABELS, PREDICTED)
    monkeypatch.chdir(tmp_path)
    metrics = json.loads((tmp_path / verify_serving.METRICS).read_text())
    metrics["test"]["n"] = 25000
    (tmp_path / verify_serving.METRICS).write_text(json.dumps(metrics))
    assert check() == 2
    assert capsys.readouterr().err.strip() == (
        "verify-serving: error: reports/imdb/metrics.json (test.n 25000) and "
        "reports/imdb/plots/confusion.csv (10 rows) are not of the 10 test reviews of "
        "data/processed/imdb/test.npz: rerun evaluate"
    )
    (tmp_path / verify_serving.CONFUSION).write_text("actual\n0\n")
    assert check() == 2
    assert capsys.readouterr().err.strip() == (
        "verify-serving: error: no 'predicted' in reports/imdb/metrics.json (test section) or "
        "reports/imdb/plots/confusion.csv: rerun evaluate"
    )
    (tmp_path / verify_serving.CONFUSION).unlink()
    assert check() == 2
    assert capsys.readouterr().err.strip() == (
        f"verify-serving: error: no reports/imdb/plots/confusion.csv in {tmp_path}: dvc pull "
        "fetches them, or dvc repro imdb_evaluate makes them"
    )


@pytest.mark.slow
def test_the_served_champion_gives_the_tiny_test_accuracy_exactly(tiny_pipeline):
    repo = tiny_pipeline.repo
    metrics = json.loads((repo / "reports/imdb/metrics.json").read_text())["test"]
    env = tiny_pipeline.env | {"PYTHONPATH": str(ROOT)}  # python -m tests.warm_stages, in repo
    proc = run(python_module("rnnpipe.verify_serving"), repo, env, check=False, timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-3000:]
    assert (
        f"verify-serving: models:/imdb-sentiment@champion, {metrics['n']} test reviews "
        "as raw text, 1 request(s) in evaluate order" in out
    )
    right = round(metrics["accuracy"] * metrics["n"])
    assert f"served accuracy:   {metrics['accuracy']!r} ({right} of {metrics['n']}" in out
    assert f"labels unlike evaluate's: 0 of {metrics['n']}" in out
    # in evaluate's batches the served probabilities are evaluate's, to the last bit
    assert (
        "max |p_served - p_evaluate|: 0 (p_evaluate recomputed from "
        "models/imdb/student/model.keras)" in out
    )
    assert out.rstrip().endswith("verify-serving: same accuracy")
