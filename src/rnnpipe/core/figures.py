"""Figures that evaluate logs to MLflow: ROC, precision-recall and confusion matrix, and
learning curves. Plain `matplotlib.figure.Figure`s, never pyplot's: no backend to choose, no
display, and nothing global keeps them alive once the caller drops them. matplotlib is
imported inside the functions (it takes about a second)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np

SIZE = (5, 4)  # inches; at DPI, 500 x 400 pixels
DPI = 100
# for savefig and mlflow.log_figure: no matplotlib version in the file, so the same figure
# gives the same bytes
PNG = {"format": "png", "dpi": DPI, "metadata": {"Software": None}}


def figure(rows: int = 1):
    from matplotlib.figure import Figure

    # "compressed", not "constrained": constrained moves the confusion matrix's square axes a
    # little on every draw, so each savefig gave other bytes
    fig = Figure(figsize=SIZE, dpi=DPI, layout="compressed")
    return fig, fig.subplots(rows, 1, squeeze=False, sharex=True)[:, 0]


def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, **PNG)
    return buf.getvalue()


def roc_pr_confusion(labels: np.ndarray, proba: np.ndarray, threshold: float) -> dict:
    """{"roc", "precision_recall", "confusion"} -> Figure, of scores `proba` of the positive
    class against 0/1 `labels`; the confusion matrix at `threshold`. The two curves need both
    classes; with one, only the confusion matrix."""
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    labels, proba = np.asarray(labels).astype(int), np.asarray(proba, "float64")
    out = {}
    if len(np.unique(labels)) == 2:
        fig, (ax,) = figure()
        RocCurveDisplay.from_predictions(labels, proba, ax=ax, name="test", plot_chance_level=True)
        ax.set_title("ROC curve")
        out["roc"] = fig
        fig, (ax,) = figure()
        PrecisionRecallDisplay.from_predictions(
            labels, proba, ax=ax, name="test", drop_intermediate=True, plot_chance_level=True
        )
        ax.set_title("Precision-recall curve")
        out["precision_recall"] = fig
    fig, (ax,) = figure()
    ConfusionMatrixDisplay.from_predictions(
        labels,
        (proba >= threshold).astype(int),
        labels=[0, 1],
        display_labels=["negative", "positive"],
        ax=ax,
        colorbar=False,
        cmap="Blues",
    )
    ax.set_title(f"Confusion matrix at threshold {threshold:.3f}")
    out["confusion"] = fig
    return out


def learning_curves(rows: Sequence[Mapping], metrics: Mapping[str, str]):
    """One panel per metric of `metrics` (name -> axis label), the training value and, where
    the rows have it, `val_<name>`, per epoch. `rows`: one mapping per epoch, with `epoch`
    (else counted from 0) and the metrics."""
    from matplotlib.ticker import MaxNLocator

    fig, axes = figure(len(metrics))
    epochs = [r.get("epoch", i) for i, r in enumerate(rows)]
    for ax, (name, label) in zip(axes, metrics.items(), strict=True):
        for key, kind in ((name, "train"), (f"val_{name}", "validation")):
            if rows and key in rows[0]:
                ax.plot(epochs, [r[key] for r in rows], marker="o", markersize=3, label=kind)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    axes[-1].set_xlabel("epoch")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_title("Learning curves")
    return fig


def log(figs: Mapping) -> None:
    """Log each figure of {name: Figure} into the active MLflow run as figures/<name>.png."""
    import mlflow

    for name, fig in figs.items():
        mlflow.log_figure(fig, f"figures/{name}.png", save_kwargs=PNG)
