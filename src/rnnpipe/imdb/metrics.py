"""Binary classification metrics, and the decision threshold chosen on validation."""

from __future__ import annotations

import numpy as np


def binary_metrics(labels: np.ndarray, proba: np.ndarray, threshold: float) -> dict:
    from sklearn import metrics as m

    pred = (proba >= threshold).astype(int)
    return {
        "accuracy": float(m.accuracy_score(labels, pred)),
        "precision": float(m.precision_score(labels, pred, zero_division=0)),
        "recall": float(m.recall_score(labels, pred, zero_division=0)),
        "f1": float(m.f1_score(labels, pred, zero_division=0)),
        "roc_auc": float(m.roc_auc_score(labels, proba)) if len(set(labels)) > 1 else None,
        "loss": float(m.log_loss(labels, np.clip(proba, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "threshold": float(threshold),
        "n": int(len(labels)),
    }


def best_threshold(labels: np.ndarray, proba: np.ndarray) -> float:
    """The threshold with the highest accuracy on (labels, proba): the midpoint between two
    neighbouring distinct probabilities, so a tiny shift of a score does not flip it; ties go to
    the one nearest 0.5."""
    p = np.unique(np.concatenate([[0.0], np.asarray(proba, "float64"), [1.0]]))
    candidates = np.unique(np.concatenate([(p[:-1] + p[1:]) / 2, [0.5]]))
    candidates = candidates[(candidates > 0) & (candidates < 1)]
    labels = np.asarray(labels).astype(bool)
    # accuracy of every candidate at once: sorted scores, then counts on either side
    order = np.sort(np.asarray(proba, "float64"))
    pos_scores = np.sort(np.asarray(proba, "float64")[labels])
    neg_below = np.searchsorted(order, candidates, "left") - np.searchsorted(
        pos_scores, candidates, "left"
    )
    pos_above = len(pos_scores) - np.searchsorted(pos_scores, candidates, "left")
    accuracy = (neg_below + pos_above) / max(len(labels), 1)
    best = np.flatnonzero(accuracy == accuracy.max())
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])
