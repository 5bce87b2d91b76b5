"""The sentiment RNN and the TF-IDF baseline stacked (issue 26, goal 1's "fair extra row"):
p = sigmoid(w * logit(p_rnn) + (1 - w) * logit(p_tfidf)), w chosen on validation (log loss,
w in 0, 0.05, ..., 1), labels at 0.5. Scored on the whole test split and on the short-text
windows of benchmarks/imdb_short_texts.py, beside each model alone. Run in a repo where the
pipeline has run:
    python benchmarks/imdb_stack.py models/imdb/pyfunc [--n 4000]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from imdb_short_texts import baseline, load_reviews, windows  # noqa: E402  (benchmarks/ first)

from rnnpipe.imdb.teach import best_weight, log_loss, stacked  # noqa: E402  (the teach stage's stack)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, help="a pyfunc folder (models/imdb/pyfunc)")
    ap.add_argument("--reviews", type=Path, default=Path("data/interim/imdb/reviews.parquet"))
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--n", type=int, default=4000, help="test reviews drawn for the windows")
    ap.add_argument("--seed", type=int, default=0, help="which test reviews are drawn")
    ap.add_argument("--words", type=int, nargs="+", default=[8, 16, 32, 64])
    args = ap.parse_args()
    if not (args.model / "MLmodel").is_file():
        sys.exit(f"imdb_stack: no MLmodel in {args.model}")
    if args.n < 1 or min(args.words) < 1:
        sys.exit("imdb_stack: --n and --words must be at least 1")
    df = load_reviews(args.reviews, "imdb_stack")
    split = {s: df[df["split"] == s].reset_index(drop=True) for s in ("train", "valid", "test")}

    import mlflow

    # first: loading the pyfunc puts its own code/rnnpipe in place of the package
    tfidf = baseline(split["train"], args.params, "imdb_stack")
    model = mlflow.pyfunc.load_model(str(args.model))

    def both(text: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        rnn = model.predict(pd.DataFrame({"text": text}))["probability"].to_numpy()
        return rnn.astype("float64"), tfidf(text)

    y_valid = split["valid"]["label"].to_numpy().astype(int)
    valid = both(split["valid"]["text"])
    w = best_weight(y_valid, *valid)
    loss = log_loss(y_valid, stacked(w, *valid))
    print(f"w = {w} (RNN's weight; validation log loss {loss:.4f})", file=sys.stderr)

    drawn = split["test"].sample(min(args.n, len(split["test"])), random_state=args.seed)
    sets = {"whole test split": (split["test"]["text"], split["test"]["label"])}
    for name, text in windows(drawn["text"].reset_index(drop=True), args.words).items():
        if name != "whole review":
            sets[name] = (text, drawn["label"].reset_index(drop=True))
    print(f"| texts | n | RNN | TF-IDF | stacked (w = {w}) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, (text, y) in sets.items():
        y = y.to_numpy().astype(int)
        rnn, lin = both(text)
        accs = [np.mean((p >= 0.5) == y) for p in (rnn, lin, stacked(w, rnn, lin))]
        print(f"| {name} | {len(y):,} | " + " | ".join(f"{a:.4f}" for a in accs) + " |", flush=True)


if __name__ == "__main__":
    main()
