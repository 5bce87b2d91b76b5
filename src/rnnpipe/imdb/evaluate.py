"""evaluate: validation and test metrics of the trained model at the decision threshold
(imdb.evaluate.threshold, or the best on validation when null), plots, and the pyfunc saved to
models/imdb/pyfunc (a DVC output, deterministic bytes) and logged, those same files, into the
train run, with figures of the test split and the learning curves (figures/*.png)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from rnnpipe.core import figures
from rnnpipe.core.atomic import atomic_path, write_json
from rnnpipe.core.commands import arg, command
from rnnpipe.core.params import Params
from rnnpipe.imdb.inputs import read_split
from rnnpipe.imdb.metrics import best_threshold, binary_metrics

log = logging.getLogger(__name__)


def write_csv(path: Path, df: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


@command(
    "imdb",
    "evaluate",
    arg("processed", type=Path, help="folder with valid.npz and test.npz"),
    arg("modeldir", type=Path, help="models/imdb (model.keras, vocab.json, history.json)"),
    arg("metrics", type=Path, help="reports/imdb/metrics.json"),
    arg("plots", type=Path, help="folder for the plot files"),
    arg(
        "pyfunc_dir",
        type=Path,
        help="models/imdb/pyfunc: the folder to save the served model (MLflow pyfunc) in",
    ),
    help="validation and test metrics (at imdb.evaluate.threshold), plots; save the "
    "pyfunc model; log them and the pyfunc into the train run",
)
def evaluate(
    params: Params, processed: Path, modeldir: Path, metrics: Path, plots: Path, pyfunc_dir: Path
) -> None:
    import mlflow
    from sklearn.metrics import roc_curve

    from rnnpipe.core import tracking
    from rnnpipe.imdb import pyfunc
    from rnnpipe.imdb.model import load_model, predict_proba

    model = load_model(modeldir / "model.keras")
    run_id = tracking.evaluation_run("imdb", modeldir / "model.keras")  # before writing anything
    proba, labels = {}, {}
    for split in ("valid", "test"):
        data = read_split(processed, split)
        labels[split] = data["labels"].astype(int)
        proba[split] = predict_proba(model, data["ids"], data["lengths"])
    # the threshold is a model choice: made on validation, never on test
    thr = params.imdb.evaluate.threshold
    if thr is None:
        thr = best_threshold(labels["valid"], proba["valid"])
    result = {s: binary_metrics(labels[s], proba[s], thr) for s in ("valid", "test")}
    fpr, tpr, _ = roc_curve(labels["test"], proba["test"])
    history = json.loads((modeldir / "history.json").read_text())
    write_csv(
        plots / "confusion.csv",
        pd.DataFrame({"actual": labels["test"], "predicted": (proba["test"] >= thr).astype(int)}),
    )
    # a few hundred points draw the curve; thousands make the plot file heavy
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 400)).astype(int))
    write_csv(plots / "roc.csv", pd.DataFrame({"fpr": fpr[keep], "tpr": tpr[keep]}))
    write_csv(
        plots / "history.csv",
        pd.DataFrame(history)[
            [
                c
                for c in ("epoch", "loss", "val_loss", "accuracy", "val_accuracy")
                if c in history[0]
            ]
        ],
    )
    with mlflow.start_run(run_id=run_id):
        for split, values in result.items():
            mlflow.log_metrics({f"{split}_{k}": v for k, v in values.items() if v is not None})
        mlflow.log_artifacts(str(plots), "plots")
        pyfunc.log_model(modeldir, params.imdb.encode, thr, pyfunc_dir)
        figures.log(figures.roc_pr_confusion(labels["test"], proba["test"], thr))
        curves = {"loss": "loss (cross-entropy)"}
        if "accuracy" in history[0]:
            curves["accuracy"] = "accuracy"
        figures.log({"learning_curves": figures.learning_curves(history, curves)})
    write_json(metrics, result)
    log.info(
        "threshold %.3f; valid accuracy %.4f; test accuracy %.4f",
        thr,
        result["valid"]["accuracy"],
        result["test"]["accuracy"],
    )
