"""How the sentiment models read short texts (issue 26, goal 2): accuracy on windows of the
test reviews (their first or last K words), on the test reviews that are short anyway, and on
whole reviews, for each served model folder given and the TF-IDF baseline.

IMDb's reviews are long (230 words on average); a user sends a sentence. The windows keep their
review's label, so they are noisy (a review's first words may say nothing of its verdict): the
figures compare models with each other on the same windows, they are not an accuracy anyone
can reach. Each model scores raw text through its pyfunc (models/imdb/pyfunc, as served), its
labels at its own threshold and at 0.5; the baseline is refit as the baseline stage fits it
(params.yaml's imdb.baseline, the train split). Run in a repo where the pipeline has run:
    python benchmarks/imdb_short_texts.py models/imdb/pyfunc /tmp/other/pyfunc [--n 4000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rnnpipe.core.errors import PipelineError  # noqa: E402


def windows(text: pd.Series, sizes: list[int]) -> dict[str, pd.Series]:
    """The whole texts, then each text's first and last K words for each K."""
    words = text.str.split()
    out = {"whole review": text}
    for k in sizes:
        out[f"first {k} words"] = words.map(lambda w, k=k: " ".join(w[:k]))
        out[f"last {k} words"] = words.map(lambda w, k=k: " ".join(w[-k:]))
    return out


def baseline(train: pd.DataFrame, params_path: Path):
    """The baseline stage's TF-IDF + logistic regression, fit on the train split."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from rnnpipe.core.params import load_params

    p = load_params(params_path, "imdb").imdb.baseline
    vec = TfidfVectorizer(
        ngram_range=(1, p.ngram_max), max_features=p.max_features, min_df=p.min_df,
        sublinear_tf=True,
    )  # fmt: skip
    clf = LogisticRegression(C=p.C, max_iter=1000, solver="liblinear")
    clf.fit(vec.fit_transform(train["text"]), train["label"].to_numpy().astype(int))
    return lambda text: clf.predict_proba(vec.transform(text))[:, 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", type=Path, nargs="+", help="pyfunc folders (models/imdb/pyfunc)")
    ap.add_argument("--reviews", type=Path, default=Path("data/interim/imdb/reviews.parquet"))
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--n", type=int, default=4000, help="test reviews drawn for the windows")
    ap.add_argument("--seed", type=int, default=0, help="which test reviews are drawn")
    ap.add_argument("--words", type=int, nargs="+", default=[8, 16, 32, 64])
    ap.add_argument("--short", type=int, default=60, help="a short review: fewer words")
    args = ap.parse_args()
    missing = [str(m) for m in args.models if not (m / "MLmodel").is_file()]
    if missing:
        sys.exit(f"imdb_short_texts: no MLmodel in {', '.join(missing)}")
    if args.n < 1 or min(args.words) < 1 or args.short < 1:
        sys.exit("imdb_short_texts: --n, --words and --short must be at least 1")
    try:
        df = pd.read_parquet(args.reviews, columns=["split", "label", "text"])
    except (OSError, ValueError) as e:
        sys.exit(f"imdb_short_texts: cannot read {args.reviews}: {e}")
    df["text"] = df["text"].str.replace("<br />", " ", regex=False)
    test = df[df["split"] == "test"].reset_index(drop=True)
    drawn = test.sample(min(args.n, len(test)), random_state=args.seed).reset_index(drop=True)
    short = test[test["text"].str.split().map(len) < args.short].reset_index(drop=True)
    sets = {
        **{k: (v, drawn["label"]) for k, v in windows(drawn["text"], args.words).items()},
        f"test reviews under {args.short} words": (short["text"], short["label"]),
    }

    import mlflow

    t = time.perf_counter()
    try:
        base = baseline(df[df["split"] == "train"], args.params)
    except PipelineError as e:  # params.yaml missing or invalid
        sys.exit(f"imdb_short_texts: {e}")
    print(f"baseline fit in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    models = {str(m): mlflow.pyfunc.load_model(str(m)) for m in args.models}
    header = ["texts", "n"]
    for name in models:
        header += [f"{name} (its threshold)", f"{name} (0.5)"]
    print("| " + " | ".join([*header, "TF-IDF baseline"]) + " |")
    print("|" + " --- |" * 2 + " ---: |" * (2 * len(models) + 1))
    for label, (text, y) in sets.items():
        y = y.to_numpy().astype(int)
        cells = [label, f"{len(y):,}"]
        for model in models.values():
            out = model.predict(pd.DataFrame({"text": text}))
            cells.append(f"{np.mean(out['label'].to_numpy() == y):.4f}")
            cells.append(f"{np.mean((out['probability'].to_numpy() >= 0.5) == y):.4f}")
        cells.append(f"{np.mean((base(text) >= 0.5) == y):.4f}")
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
