"""Latency and throughput of a running sentiment server (`make serve-imdb`).

    python benchmarks/bench_serving.py --url http://127.0.0.1:5001

One review per request (sequential): median and 95th-percentile latency. Batches of 64
reviews per request (sequential): reviews per second. Reviews come from the test split of
data/interim/imdb/reviews.parquet when it exists, else synthetic ones of the median IMDb length.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import requests

WORDS = (
    "the film movie plot actors story was and it a of this to in is that with but "
    "great awful wonderful boring characters scene end good bad acting"
).split()


def load_reviews(n: int, seed: int = 0) -> list[str]:
    path = Path("data/interim/imdb/reviews.parquet")
    rng = random.Random(seed)
    if path.exists():
        import pandas as pd

        df = pd.read_parquet(path, columns=["split", "text"])
        texts = df.loc[df["split"] == "test", "text"].tolist()
        return rng.sample(texts, min(n, len(texts)))
    return [" ".join(rng.choice(WORDS) for _ in range(230)) for _ in range(n)]


def timed_post(session: requests.Session, url: str, reviews: list[str]) -> float:
    t = time.perf_counter()
    r = session.post(f"{url}/invocations", json={"inputs": reviews}, timeout=300)
    r.raise_for_status()
    assert len(r.json()["predictions"]) == len(reviews)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:5001")
    ap.add_argument("--single", type=int, default=200, help="one-review requests")
    ap.add_argument("--batches", type=int, default=20, help="requests of --batch-size reviews")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    reviews = load_reviews(max(args.single, args.batch_size * 4))
    with requests.Session() as s:
        for r in reviews[:5]:  # warm up: first calls trace the model
            timed_post(s, args.url, [r])
        timed_post(s, args.url, reviews[: args.batch_size])
        single = [timed_post(s, args.url, [reviews[i % len(reviews)]]) for i in range(args.single)]
        batch_times = []
        for i in range(args.batches):
            start = (i * args.batch_size) % (len(reviews) - args.batch_size + 1)
            batch_times.append(timed_post(s, args.url, reviews[start : start + args.batch_size]))
    single_ms = sorted(t * 1000 for t in single)
    result = {
        "single_requests": len(single),
        "single_median_ms": round(statistics.median(single_ms), 1),
        "single_p95_ms": round(single_ms[int(0.95 * (len(single_ms) - 1))], 1),
        "batch_size": args.batch_size,
        "batch_requests": len(batch_times),
        "batch_median_ms": round(statistics.median(batch_times) * 1000, 1),
        "batch_reviews_per_s": round(args.batch_size * len(batch_times) / sum(batch_times), 1),
        "single_reviews_per_s": round(len(single) / sum(single), 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
