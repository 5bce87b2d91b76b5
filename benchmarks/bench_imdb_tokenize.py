"""Tokenize + encode of the 50,000 labelled IMDb reviews: ours vs the textbook's way.

Ours (rnnpipe.imdb.words): Arrow compute kernels over the whole column (two threads), Arrow
hash counting and lookup, NumPy padding. It does what the vocab and encode stages do: the
vocabulary from the train split, then every labelled review to padded ids.
The textbook's way: a Python tokenizer called per review, a Counter, a dict lookup per token
and a padded row per review in Python (without the tf.py_function overhead the textbook adds,
so the ratio below is a conservative one). Timed on a sample, scaled to all reviews.

    flock /tmp/rnnpipe-heavy.lock python benchmarks/bench_imdb_tokenize.py \
        data/interim/imdb/reviews.parquet
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter

import numpy as np
import pandas as pd

from rnnpipe.core.vocab import word_vocabulary
from rnnpipe.imdb import words

MAX_TOKENS, MIN_COUNT, MAX_LEN = 20_000, 2, 400


def ours(train: pd.Series, labelled: pd.Series):
    vocab = words.build_vocabulary(train, MAX_TOKENS, MIN_COUNT)
    return words.encode_tokens(words.tokenize_array(labelled), vocab, MAX_LEN, "end")


_TEXTBOOK = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[^\w\s]")


def textbook_tokenize(text: str) -> list[str]:
    return _TEXTBOOK.findall(text.lower().replace("<br />", " "))


def textbook(train: list[str], labelled: list[str]):
    counts = Counter()
    for t in train:
        counts.update(textbook_tokenize(t))
    index = word_vocabulary(counts, MAX_TOKENS, MIN_COUNT).index
    ids = np.zeros((len(labelled), MAX_LEN), dtype=np.int32)
    for i, t in enumerate(labelled):
        row = [index.get(tok, 1) for tok in textbook_tokenize(t)][-MAX_LEN:]
        ids[i, : len(row)] = row
    return ids


def best_of(n, f, *args):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f(*args)
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reviews", help="data/interim/imdb/reviews.parquet")
    ap.add_argument("--sample", type=int, default=5000, help="reviews for the textbook's way")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    df = pd.read_parquet(args.reviews)
    df = df[df["label"] >= 0]
    train, labelled = df.loc[df["split"] == "train", "text"], df["text"]
    t_ours = best_of(args.repeat, ours, train, labelled)
    frac = args.sample / len(labelled)
    sample = labelled.sample(args.sample, random_state=0)
    t_book = (
        best_of(1, textbook, train.sample(frac=frac, random_state=0).tolist(), sample.tolist())
        / frac
    )
    print(f"reviews: {len(labelled)} labelled, {len(train)} train")
    print(f"ours (vocab + encode, best of {args.repeat}): {t_ours:.2f} s")
    print(f"textbook (per-review Python, {args.sample} sampled, scaled): {t_book:.1f} s")
    print(f"speed-up: {t_book / t_ours:.1f}x")


if __name__ == "__main__":
    main()
