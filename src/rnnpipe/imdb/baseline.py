"""baseline: TF-IDF (word n-grams) + logistic regression on the same splits, the bar every RNN
must beat."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rnnpipe.core.atomic import write_json
from rnnpipe.core.commands import arg, command
from rnnpipe.core.params import Params
from rnnpipe.imdb.metrics import binary_metrics
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
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    p = params.imdb.baseline
    df = read_reviews(reviews)
    text = {
        s: df.loc[df["split"] == s, "text"].str.replace("<br />", " ", regex=False) for s in SPLITS
    }
    labels = {s: df.loc[df["split"] == s, "label"].to_numpy().astype(int) for s in SPLITS}
    t = time.perf_counter()
    vec = TfidfVectorizer(
        ngram_range=(1, p.ngram_max),
        max_features=p.max_features,
        min_df=p.min_df,
        sublinear_tf=True,
    )
    x_train = vec.fit_transform(text["train"])
    clf = LogisticRegression(C=p.C, max_iter=1000, solver="liblinear")
    clf.fit(x_train, labels["train"])
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
