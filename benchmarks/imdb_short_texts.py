"""How the sentiment models read short texts (issue 26, goal 2): accuracy on windows of the
test reviews (their first or last K words), on the test reviews that are short anyway, and on
whole reviews, for each served model folder given and the TF-IDF baseline (`--split valid`:
the validation reviews instead, the ones to choose on).

IMDb's reviews are long (230 words on average); a user sends a sentence. The windows keep their
review's label, so they are noisy (a review's first words may say nothing of its verdict): the
figures compare models with each other on the same windows, they are not an accuracy anyone
can reach. Each model scores raw text through its pyfunc (models/imdb/pyfunc, as served), its
labels at its own threshold and at 0.5; the baseline is refit as the baseline stage fits it
(rnnpipe.imdb.baseline.fit, params.yaml's imdb.baseline, the train split). Run in a repo
where the pipeline has run:
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
from rnnpipe.core.params import load_params  # noqa: E402
from rnnpipe.imdb.baseline import fit, plain_text  # noqa: E402
from rnnpipe.imdb.prepare import read_reviews  # noqa: E402


def windows(text: pd.Series, sizes: list[int]) -> dict[str, pd.Series]:
    """The whole texts, then each text's first and last K words for each K."""
    words = text.str.split()
    out = {"whole review": text}
    for k in sizes:
        out[f"first {k} words"] = words.map(lambda w, k=k: " ".join(w[:k]))
        out[f"last {k} words"] = words.map(lambda w, k=k: " ".join(w[-k:]))
    return out


def load_reviews(path: Path, prog: str) -> pd.DataFrame:
    """reviews.parquet with the text as the baseline stage reads it; ends the script with a
    one-line message when it cannot be read."""
    try:
        df = read_reviews(path)
    except PipelineError as e:
        sys.exit(f"{prog}: {e}")
    return df.assign(text=plain_text(df["text"]))


def baseline(train: pd.DataFrame, params_path: Path, prog: str):
    """The baseline stage's model fit on the train split: text -> P(positive)."""
    try:
        params = load_params(params_path, "imdb")
    except PipelineError as e:  # params.yaml missing or invalid
        sys.exit(f"{prog}: {e}")
    vec, clf = fit(params.imdb.baseline, train["text"], train["label"].to_numpy().astype(int))
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
    ap.add_argument(
        "--split", choices=("test", "valid"), default="test", help="whose reviews are cut"
    )
    args = ap.parse_args()
    missing = [str(m) for m in args.models if not (m / "MLmodel").is_file()]
    if missing:
        sys.exit(f"imdb_short_texts: no MLmodel in {', '.join(missing)}")
    if args.n < 1 or min(args.words) < 1 or args.short < 1:
        sys.exit("imdb_short_texts: --n, --words and --short must be at least 1")
    df = load_reviews(args.reviews, "imdb_short_texts")
    reviews = df[df["split"] == args.split].reset_index(drop=True)
    drawn = reviews.sample(min(args.n, len(reviews)), random_state=args.seed)
    drawn = drawn.reset_index(drop=True)
    short = reviews[reviews["text"].str.split().map(len) < args.short].reset_index(drop=True)
    sets = {
        **{k: (v, drawn["label"]) for k, v in windows(drawn["text"], args.words).items()},
        f"{args.split} reviews under {args.short} words": (short["text"], short["label"]),
    }

    import mlflow

    t = time.perf_counter()
    base = baseline(df[df["split"] == "train"], args.params, "imdb_short_texts")
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
