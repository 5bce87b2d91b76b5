import json

import mlflow
import pandas as pd
import pytest

from tests.conftest import BIN, run

STAGES = ["imdb_evaluate", "imdb_baseline"]


@pytest.mark.slow
def test_repro_trains_evaluates_and_logs_a_raw_text_model(pipeline_repo):
    repo, env = pipeline_repo
    run([str(BIN / "dvc"), "repro", *STAGES], repo, env)
    metrics = json.loads((repo / "reports/imdb/metrics.json").read_text())
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "loss"):
        assert 0 <= metrics[key] <= max(1.0, metrics["loss"])
    assert metrics["n"] == 40
    baseline = json.loads((repo / "reports/imdb/baseline.json").read_text())
    assert baseline["test"]["accuracy"] > 0.7  # tinydata's sentiment words are easy
    roc = pd.read_csv(repo / "reports/imdb/plots/roc.csv")
    assert list(roc.columns) == ["fpr", "tpr"]
    history = pd.read_csv(repo / "reports/imdb/plots/history.csv")
    assert list(history["epoch"]) == list(range(len(history)))
    shown = run([str(BIN / "dvc"), "metrics", "show"], repo, env).stdout
    assert "baseline.json" in shown and "metrics.json" in shown

    # the registered pyfunc takes raw text and carries its own tokenizer and vocabulary
    mlflow.set_tracking_uri(f"sqlite:///{repo}/mlflow.db")
    model = mlflow.pyfunc.load_model("models:/imdb-sentiment/latest")
    reviews = ["Wonderful, brilliant, I loved it!<br /><br />Best film.",
               "Awful. Boring and stupid; the worst waste of time."]
    out = model.predict(pd.DataFrame({"text": reviews}))
    assert list(out.columns) == ["probability", "label"]
    assert ((out["probability"] >= 0) & (out["probability"] <= 1)).all()
    assert set(out["label"]) <= {0, 1}
    assert len(model.predict(reviews)) == 2
    run_id = (repo / "models/imdb/run_id.txt").read_text().strip()
    logged = mlflow.get_run(run_id)
    assert "test_accuracy" in logged.data.metrics and "val_loss" in logged.data.metrics
    assert logged.data.tags["device"].endswith("CPU")
