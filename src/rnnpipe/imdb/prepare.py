"""vocab and encode: the word vocabulary of the training reviews, and every split as padded ids."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from rnnpipe.core.atomic import atomic_path
from rnnpipe.core.commands import arg, command
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import Params
from rnnpipe.core.vocab import Vocabulary
from rnnpipe.imdb import words

log = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


def read_reviews(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_parquet(path)
    except (OSError, ValueError) as e:
        raise PipelineError(f"cannot read reviews {path}: {e}") from None
    missing = {"split", "label", "text"} - set(df.columns)
    if missing:
        raise PipelineError(f"{path}: missing column(s) {sorted(missing)}")
    return df


@command(
    "imdb",
    "vocab",
    arg("reviews", type=Path, help="reviews.parquet"),
    arg("out", type=Path, help="vocab.json"),
    help="word vocabulary of the training split",
)
def vocab(params: Params, reviews: Path, out: Path) -> None:
    p = params.imdb.vocab
    df = read_reviews(reviews)
    train = df.loc[df["split"] == "train", "text"]
    if train.empty:
        raise PipelineError(f"{reviews}: no review in the train split")
    t = time.perf_counter()
    v = words.build_vocabulary(train, p.max_tokens, p.min_count)
    v.save(out)
    log.info(
        "wrote %s: %d tokens from %d reviews in %.2f s",
        out,
        len(v),
        len(train),
        time.perf_counter() - t,
    )


@command(
    "imdb",
    "encode",
    arg("reviews", type=Path, help="reviews.parquet"),
    arg("vocab", type=Path, help="vocab.json"),
    arg("outdir", type=Path, help="folder for train/valid/test .npz"),
    help="token ids, lengths and labels of each split, truncated per params",
)
def encode(params: Params, reviews: Path, vocab: Path, outdir: Path) -> None:
    p = params.imdb.encode
    v = Vocabulary.load(vocab)
    df = read_reviews(reviews)
    df = df[df["split"].isin(SPLITS)]
    t = time.perf_counter()
    ids, lengths = words.encode_tokens(words.tokenize_array(df["text"]), v, p.max_len, p.truncate)
    log.info("encoded %d reviews in %.2f s", len(df), time.perf_counter() - t)
    for split in SPLITS:
        rows = (df["split"] == split).to_numpy()
        if not rows.any():
            raise PipelineError(f"{reviews}: no review in the {split} split")
        with atomic_path(outdir / f"{split}.npz") as tmp:
            np.savez(
                tmp,
                ids=ids[rows],
                lengths=lengths[rows],
                labels=df["label"].to_numpy()[rows].astype(np.int8),
            )
        log.info(
            "wrote %s: %d reviews, %.1f%% truncated",
            outdir / f"{split}.npz",
            rows.sum(),
            100 * np.mean(lengths[rows] == p.max_len),
        )
