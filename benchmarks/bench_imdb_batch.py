"""Training speed of the sentiment model by batch size: reviews per second, side by side.

    python benchmarks/bench_imdb_batch.py [--reviews 6400] [--sizes 64,128,256] [--rounds 2]

Run in a repo where the pipeline has run (data/processed/imdb, models/imdb/hparams.json and
word_vectors.npy). The model and feed are the train stage's (hparams.json, bucketed batches of
similar length); each batch size trains on the same first `--reviews` training reviews, once
to trace the step (not timed), then `--rounds` timed epochs, the sizes taking turns so that a
machine that slows down slows them alike; speeds are of the median round. It measures speed
only: what another batch size does to the model's accuracy is for a train run to say.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from rnnpipe.core import training  # noqa: E402
from rnnpipe.core.vocab import Vocabulary  # noqa: E402
from rnnpipe.imdb.inputs import dataset, read_split  # noqa: E402
from rnnpipe.imdb.model import build_sentiment_model, read_vectors  # noqa: E402

DATA, MODELS = Path("data/processed/imdb"), Path("models/imdb")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reviews", type=int, default=6400)
    ap.add_argument("--sizes", default="64,128,256")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.reviews < max(sizes) or args.rounds < 1 or min(sizes) < 1:
        raise SystemExit("--reviews must hold a batch of the largest size; --rounds at least 1")
    for p in (DATA / "train.npz", DATA / "vocab.json", MODELS / "hparams.json"):
        if not p.is_file():
            raise SystemExit(f"missing {p}: run `dvc repro imdb_hparams` first")

    split = read_split(DATA, "train")
    split = {k: v[: args.reviews] for k, v in split.items()}
    hp = json.loads((MODELS / "hparams.json").read_text())
    vocab = len(Vocabulary.load(DATA / "vocab.json"))
    vectors = read_vectors(MODELS / "word_vectors.npy", vocab) if hp.get("pretrained") else None
    models, feeds = {}, {}
    for size in sizes:
        training.set_seed(0)
        models[size] = build_sentiment_model(hp, vocab, vectors)
        feeds[size] = dataset(split, size, split["ids"].shape[1], seed=0)
        models[size].fit(feeds[size].take(3), epochs=1, verbose=0)  # trace the step
    seconds = {size: [] for size in sizes}
    for _ in range(args.rounds):
        for size in sizes:
            t = time.perf_counter()
            models[size].fit(feeds[size], epochs=1, verbose=0)
            seconds[size].append(time.perf_counter() - t)
    base = statistics.median(seconds[sizes[0]])
    for size in sizes:
        median = statistics.median(seconds[size])  # the best of a few rounds flatters the noisy
        print(
            json.dumps(
                {
                    "batch_size": size,
                    "reviews": len(split["ids"]),
                    "seconds": [round(s, 1) for s in seconds[size]],
                    "reviews_per_second": round(len(split["ids"]) / median, 1),
                    "speed_vs_first": round(base / median, 2),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
