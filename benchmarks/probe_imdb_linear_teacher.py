"""A stronger linear half for the stack teacher (issue 26, goal 1)? The teach stage mixes the
RNN's logits with the TF-IDF baseline's; this probe fits other linear models on the training
reviews and scores them alone and stacked with the teacher RNN's validation probabilities (the
cache of benchmarks/probe_imdb_distill.py), each stack's weight chosen on validation as the
teach stage does. Test accuracy of the linear model alone is printed too, to see how it
generalises; nothing is chosen on it.

    python benchmarks/probe_imdb_distill.py teacher=rnn epochs=1   # fills the cache first
    python benchmarks/probe_imdb_linear_teacher.py seed=42
    python benchmarks/probe_imdb_linear_teacher.py only=nbsvm C=0.3

Models: tfidf (the baseline stage's params), tfidf3 (word 1-3-grams, no feature cap), nbsvm
(the teach stage's, baseline.fit_nbsvm: Wang & Manning 2012, binary word 1-3-grams scaled by
their naive Bayes log-count ratios, then logistic regression; 0.918 test on the full 25,000 in
Mesnil et al. 2014), with C given.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import yaml
from probe_imdb_adversarial import key_values

from rnnpipe.imdb.baseline import fit, fit_nbsvm, plain_text
from rnnpipe.imdb.params import ImdbBaselineParams, ImdbNbsvmParams
from rnnpipe.imdb.prepare import read_reviews
from rnnpipe.imdb.teach import best_weight, log_loss, stacked

DEFAULTS = dict(seed=42, teacher_epochs=4, cache="models/imdb/distill_teacher.npz", C=0.1, only="")


def main() -> None:
    cfg = key_values(sys.argv[1:], DEFAULTS)
    params = yaml.safe_load(open("params.yaml"))["imdb"]
    reviews = read_reviews("data/interim/imdb/reviews.parquet")
    split = {s: reviews[reviews["split"] == s] for s in ("train", "valid", "test")}
    text = {s: plain_text(d["text"]) for s, d in split.items()}
    y = {s: d["label"].to_numpy().astype(int) for s, d in split.items()}
    rnn = np.load(cfg["cache"])[f"seed{cfg['seed']}_epochs{cfg['teacher_epochs']}_valid"]

    def tfidf(ngram_max: int, max_features):
        p = ImdbBaselineParams(
            **params["baseline"] | {"ngram_max": ngram_max, "max_features": max_features}
        )
        vec, clf = fit(p, text["train"], y["train"])
        return lambda t: clf.predict_proba(vec.transform(t))[:, 1]

    models = {
        "tfidf": lambda: tfidf(params["baseline"]["ngram_max"], params["baseline"]["max_features"]),
        "tfidf3": lambda: tfidf(3, None),
        "nbsvm": lambda: fit_nbsvm(ImdbNbsvmParams(C=cfg["C"]), text["train"], y["train"]),
    }
    rv = float(np.mean((rnn > 0.5) == y["valid"]))
    print(json.dumps({"model": "rnn", "val_acc": round(rv, 4)}), flush=True)
    for name, make in models.items():
        if cfg["only"] and name not in cfg["only"].split(","):
            continue
        t = time.time()
        predict = make()
        pv, pt = predict(text["valid"]), predict(text["test"])
        w = best_weight(y["valid"], rnn, pv)
        sv = stacked(w, rnn, pv)
        row = {
            "model": name,
            "seconds": round(time.time() - t, 1),
            "val_acc": round(float(np.mean((pv > 0.5) == y["valid"])), 4),
            "val_loss": round(log_loss(y["valid"], pv), 4),
            "test_acc": round(float(np.mean((pt > 0.5) == y["test"])), 4),
            "stack_w": w,
            "stack_val_acc": round(float(np.mean((sv > 0.5) == y["valid"])), 4),
            "stack_val_loss": round(log_loss(y["valid"], sv), 4),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
