"""baseline: TF-IDF (word n-grams) + logistic regression on the same splits, the bar every RNN
must beat. Also NBSVM, the linear half of self-training's stack teacher (teach.py)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rnnpipe.core.atomic import write_json
from rnnpipe.core.commands import arg, command
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import Params
from rnnpipe.imdb.metrics import binary_metrics
from rnnpipe.imdb.params import ImdbBaselineParams, ImdbNbsvmParams
from rnnpipe.imdb.prepare import SPLITS, read_reviews

log = logging.getLogger(__name__)


@command(
    "imdb",
    "baseline",
    arg("reviews", type=Path, help="reviews.parquet"),
    arg("out", type=Path, help="reports/imdb/baseline.json"),
    help="TF-IDF (word n-grams) + logistic regression on the same splits",
)
def baseline(params: Params, reviews: Path, out: Path) -> None:
    df = read_reviews(reviews)
    text = {s: plain_text(df.loc[df["split"] == s, "text"]) for s in SPLITS}
    labels = {s: df.loc[df["split"] == s, "label"].to_numpy().astype(int) for s in SPLITS}
    t = time.perf_counter()
    vec, clf = fit(params.imdb.baseline, text["train"], labels["train"])
    result = {"fit_seconds": time.perf_counter() - t, "features": len(vec.vocabulary_)}
    for s in ("valid", "test"):
        proba = clf.predict_proba(vec.transform(text[s]))[:, 1]
        result[s] = binary_metrics(labels[s], proba, 0.5)
    write_json(out, result)
    log.info(
        "baseline: valid accuracy %.4f, test accuracy %.4f",
        result["valid"]["accuracy"],
        result["test"]["accuracy"],
    )


def plain_text(text: pd.Series) -> pd.Series:
    """Reviews with their HTML line breaks as spaces."""
    return text.str.replace("<br />", " ", regex=False)


def features(vec, text: pd.Series, key: str):
    """vec fit on text and its matrix of text, or a PipelineError that names the params
    section (key) when min_df leaves no n-gram: scikit-learn's own message does not."""
    try:
        return vec.fit_transform(text)
    except ValueError as e:
        raise PipelineError(
            f"{key}.min_df is {vec.min_df}: no n-gram is in that many of the {len(text)} training "
            f"reviews; lower it (scikit-learn: {e})"
        ) from e


def fit_nbsvm(
    p: ImdbNbsvmParams, text: pd.Series, labels: np.ndarray, key: str = "imdb.student.nbsvm"
):
    """NBSVM with logistic regression (Wang & Manning 2012): binary word n-gram features, each
    scaled by log(its share of the positive reviews' features / its share of the negative
    reviews'), add-one smoothed. Returns texts -> probabilities of positive."""
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = CountVectorizer(ngram_range=(1, p.ngram_max), min_df=p.min_df, binary=True)
    x = features(vec, text, key)
    pos = np.asarray(x[labels == 1].sum(axis=0)).ravel() + 1.0
    neg = np.asarray(x[labels == 0].sum(axis=0)).ravel() + 1.0
    ratio = sparse.diags(np.log(pos / pos.sum()) - np.log(neg / neg.sum()))
    clf = LogisticRegression(C=p.C, max_iter=2000, solver="liblinear", random_state=0)
    clf.fit(x @ ratio, labels)
    return lambda texts: clf.predict_proba(vec.transform(texts) @ ratio)[:, 1]


def fit(p: ImdbBaselineParams, text: pd.Series, labels: np.ndarray, key: str = "imdb.baseline"):
    """The TF-IDF vectorizer (word 1..ngram_max-grams) and the logistic regression on its
    features, fit on (text, labels)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(
        ngram_range=(1, p.ngram_max),
        max_features=p.max_features,
        min_df=p.min_df,
        sublinear_tf=True,
    )
    clf = LogisticRegression(C=p.C, max_iter=1000, solver="liblinear")
    clf.fit(features(vec, text, key), labels)
    return vec, clf
