"""Offline batch scoring through the sentiment pyfunc: every test review in one predict call.

    python benchmarks/bench_batch_scoring.py [--model-uri models:/imdb-sentiment@champion]

Reviews per second and the process's peak resident memory; the pyfunc scores in chunks of
`rnnpipe.imdb.pyfunc.CHUNK` reviews, so memory stays bounded however many come.
"""

from __future__ import annotations

import argparse
import resource
import time

import mlflow
import pandas as pd

from rnnpipe.core import tracking


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model-uri", default="models:/imdb-sentiment@champion")
    ap.add_argument("--reviews", default="data/interim/imdb/reviews.parquet")
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    mlflow.set_tracking_uri(tracking.tracking_uri())
    df = pd.read_parquet(args.reviews, columns=["split", "label", "text"])
    df = df[df["split"] == args.split]
    model = mlflow.pyfunc.load_model(args.model_uri)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    out = model.predict(pd.DataFrame({"text": df["text"].tolist()}))
    seconds = time.perf_counter() - t
    accuracy = (out["label"].to_numpy() == df["label"].to_numpy()).mean()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{len(df)} reviews in {seconds:.1f} s: {len(df) / seconds:.0f} reviews/s; "
        f"accuracy {accuracy:.4f}; peak RSS {peak:.0f} MiB (before predict {rss_before:.0f})"
    )


if __name__ == "__main__":
    main()
