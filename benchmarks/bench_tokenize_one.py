"""Encode of a few reviews, as the served model does per request: words.encode_texts against
served_tokens.ServedEncoder, side by side in one run (alternating, best of --repeat).

    python benchmarks/bench_tokenize_one.py [--repeat 30]

For 1 and 64 reviews, with a vocabulary of 20,000 tokens (max_len 400, truncate end, as in
params.yaml): milliseconds of each and the ratio, after checking both give the same ids.
Reviews come from the test split of data/interim/imdb/reviews.parquet (vocabulary from the train
split) when it exists, else synthetic ones of ~1,300 characters.
"""

from __future__ import annotations

import argparse
import random
import time
from functools import partial
from itertools import accumulate
from pathlib import Path

import numpy as np

from rnnpipe.imdb import words
from rnnpipe.imdb.served_tokens import ServedEncoder

MAX_TOKENS, MIN_COUNT, MAX_LEN, TRUNCATE = 20_000, 2, 400, "end"


def synthetic(n: int, rng: random.Random) -> list[str]:
    # made-up words drawn by a Zipf law, with punctuation, apostrophes and breaks
    lexicon = [
        "".join(rng.choices("etaoinshrdlucmfwyp", k=rng.randint(2, 9))) for _ in range(40_000)
    ]
    cum = list(accumulate(1 / (i + 1) for i in range(len(lexicon))))
    extras = [",", ".", "!", "don't", "it's", "<br /><br />", "\u2019s", '"', "(", ")"]

    def review():
        tokens = rng.choices(lexicon, cum_weights=cum, k=300)
        text = " ".join(rng.choice(extras) if rng.random() < 0.1 else t for t in tokens)
        return text[: text.rfind(" ", 0, 1300)].capitalize()

    return [review() for _ in range(n)]


def load(rng: random.Random) -> tuple[list[str], list[str], str]:
    path = Path("data/interim/imdb/reviews.parquet")
    if path.exists():
        import pandas as pd

        df = pd.read_parquet(path, columns=["split", "text"])
        test = df.loc[df["split"] == "test", "text"].tolist()
        return df.loc[df["split"] == "train", "text"], rng.sample(test, 64), "IMDb test reviews"
    texts = synthetic(4064, rng)
    return texts[64:], texts[:64], "synthetic reviews"


def best_of(repeat: int, fns: dict) -> dict:
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():  # alternating: both see the same load
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30)
    args = ap.parse_args()
    train, reviews, source = load(random.Random(0))
    vocab = words.build_vocabulary(train, MAX_TOKENS, MIN_COUNT)
    t = time.perf_counter()
    encoder = ServedEncoder(vocab, MAX_LEN, TRUNCATE)
    made = time.perf_counter() - t
    print(f"{source}, vocabulary of {len(vocab)}; ServedEncoder made in {made * 1e3:.0f} ms")
    for n in (1, 64):
        texts = reviews[:n]
        ours, theirs = encoder.encode(texts), words.encode_texts(texts, vocab, MAX_LEN, TRUNCATE)
        assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))
        best = best_of(
            args.repeat,
            {
                "words.encode_texts": partial(words.encode_texts, texts, vocab, MAX_LEN, TRUNCATE),
                "ServedEncoder.encode": partial(encoder.encode, texts),
            },
        )
        chars = sum(map(len, texts)) / n
        print(f"{n} review(s) of {chars:.0f} characters on average, best of {args.repeat}:")
        for name, s in best.items():
            print(f"  {name:<22} {s * 1e3:8.2f} ms")
        print(f"  ratio {best['words.encode_texts'] / best['ServedEncoder.encode']:.1f}x")


if __name__ == "__main__":
    main()
