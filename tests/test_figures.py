"""The figures evaluate logs: drawn from small arrays, and found in each champion's run after
the tiny pipeline."""

from __future__ import annotations

import io

import mlflow
import numpy as np
import pytest
from PIL import Image

from rnnpipe.core import figures

LABELS = np.array([0, 0, 1, 1, 0, 1, 1, 0])
PROBA = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.7, 0.6])
HISTORY = [
    {
        "epoch": i,
        "loss": 1 / (i + 1),
        "val_loss": 1.2 / (i + 1),
        "accuracy": 0.5 + i / 10,
        "val_accuracy": 0.5 + i / 12,
    }
    for i in range(4)
]


def png(fig) -> Image.Image:
    data = figures.png_bytes(fig)
    assert data.startswith(b"\x89PNG")
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_roc_pr_confusion_titles_legends_and_size():
    figs = figures.roc_pr_confusion(LABELS, PROBA, 0.5)
    assert set(figs) == {"roc", "precision_recall", "confusion"}
    roc, pr, confusion = (figs[k].axes[0] for k in ("roc", "precision_recall", "confusion"))
    assert roc.get_title() == "ROC curve" and "False Positive Rate" in roc.get_xlabel()
    assert "AUC = 0.88" in roc.get_legend().get_texts()[0].get_text()  # 14 of 16 pairs
    assert pr.get_xlabel().startswith("Recall") and pr.get_ylabel().startswith("Precision")
    assert "AP = " in pr.get_legend().get_texts()[0].get_text()
    assert confusion.get_title() == "Confusion matrix at threshold 0.500"
    cells = sorted(t.get_text() for t in confusion.texts)
    assert cells == ["1", "1", "3", "3"]  # one false positive (0.6), one false negative (0.35)
    for fig in figs.values():
        assert png(fig).size == (500, 400)


def test_one_class_draws_only_the_confusion_matrix():
    figs = figures.roc_pr_confusion(np.ones(5, int), np.linspace(0.1, 0.9, 5), 0.25)
    assert set(figs) == {"confusion"}
    assert figs["confusion"].axes[0].get_title().endswith("0.250")


def test_learning_curves_one_panel_per_metric():
    fig = figures.learning_curves(HISTORY, {"loss": "loss", "accuracy": "accuracy"})
    loss, accuracy = fig.axes
    assert [loss.get_ylabel(), accuracy.get_ylabel()] == ["loss", "accuracy"]
    assert accuracy.get_xlabel() == "epoch" and loss.get_title() == "Learning curves"
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["train", "validation"]
    assert list(loss.lines[1].get_ydata()) == [r["val_loss"] for r in HISTORY]
    assert png(fig).size == (500, 400)


def test_learning_curves_without_validation_or_epoch():
    rows = [{"loss": 2.0}, {"loss": 1.0}]
    (ax,) = figures.learning_curves(rows, {"loss": "loss (nats/char)"}).axes
    assert len(ax.lines) == 1 and list(ax.lines[0].get_xdata()) == [0, 1]


def test_same_figure_same_bytes():
    def draw():
        figs = figures.roc_pr_confusion(LABELS, PROBA, 0.5)
        figs["learning_curves"] = figures.learning_curves(HISTORY, {"loss": "loss"})
        return {k: figures.png_bytes(f) for k, f in figs.items()}

    first = draw()
    assert draw() == first
    assert b"Matplotlib" not in b"".join(first.values())  # no version in the file


def test_log_writes_pngs_under_figures(tmp_path, copy_empty_store):
    client = mlflow.MlflowClient(copy_empty_store(tmp_path))
    mlflow.set_tracking_uri(client.tracking_uri)
    experiment = client.create_experiment("figures", (tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=experiment) as run:
        figures.log(figures.roc_pr_confusion(LABELS, PROBA, 0.5))
    names = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert names == {"figures/roc.png", "figures/precision_recall.png", "figures/confusion.png"}
    path = client.download_artifacts(run.info.run_id, "figures/roc.png", str(tmp_path))
    with open(path, "rb") as f:
        assert f.read() == figures.png_bytes(figures.roc_pr_confusion(LABELS, PROBA, 0.5)["roc"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "stage", "expected"),
    [
        (
            "imdb-sentiment",
            "imdb_student",
            {
                "figures/roc.png",
                "figures/precision_recall.png",
                "figures/confusion.png",
                "figures/learning_curves.png",
            },
        ),
        (
            "mysterious-island-charlm",
            "charlm_train",
            {
                "figures/learning_curves.png",
                "samples/temperature_0.5.txt",
                "samples/temperature_1.txt",
                "samples/temperature_1.5.txt",
            },
        ),
    ],
)
def test_evaluate_logs_figures_into_the_champions_train_run(
    tiny_pipeline, tmp_path, model, stage, expected
):
    repo = tiny_pipeline.repo
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    run_id = client.get_model_version_by_alias(model, "champion").run_id
    assert client.get_run(run_id).data.tags["stage"] == stage
    found = {
        a.path for folder in ("figures", "samples") for a in client.list_artifacts(run_id, folder)
    }
    assert expected <= found
    for name in expected:
        path = client.download_artifacts(run_id, name, str(tmp_path))
        if name.endswith(".png"):
            with Image.open(path) as image:
                assert image.format == "PNG" and image.size == (500, 400)
        else:  # one sample of samples.md
            with open(path) as f:
                text = f.read()
            assert text.strip() and text in (repo / "reports/charlm/samples.md").read_text()
