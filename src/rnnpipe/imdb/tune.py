"""tune: a Keras Tuner search over the sentiment model's builder and input pipeline, on a share
of the encoded training reviews, scored on the validation split (see rnnpipe.core.search)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rnnpipe.core import progress
from rnnpipe.core.commands import arg, command
from rnnpipe.core.params import Params
from rnnpipe.core.search import ARGS, HELP, fixed_keys
from rnnpipe.core.vocab import Vocabulary
from rnnpipe.imdb.inputs import read_split


def rows(split: dict, index: np.ndarray) -> dict:
    return {k: v[index] for k, v in split.items()}


def crop(split: dict, seq_length: int | None) -> dict:
    """Reviews cut to their first seq_length tokens (ids right-padded, so the start stays)."""
    if seq_length is None or seq_length >= split["ids"].shape[1]:
        return split
    return {
        **split,
        "ids": split["ids"][:, :seq_length],
        "lengths": np.minimum(split["lengths"], seq_length),
    }


@command(
    "imdb",
    "tune",
    *ARGS,
    arg("vectors", type=Path, help="models/imdb/word_vectors.npy (the embed stage's)"),
    help=HELP,
)
def tune(
    params: Params,
    processed: Path,
    vocab: Path,
    out: Path,
    report: Path,
    trials: Path,
    vectors: Path,
) -> None:
    from rnnpipe.core import search  # imports Keras Tuner and TensorFlow: only when tuning
    from rnnpipe.core.training import batches, set_seed
    from rnnpipe.imdb.inputs import dataset
    from rnnpipe.imdb.model import build_sentiment_model, read_vectors

    t, seed = params.imdb.tune, params.seed
    vocab_size = len(Vocabulary.load(vocab))
    tr, va = read_split(processed, "train"), read_split(processed, "valid")
    # a seeded random share: the rows are in the order of the archive, grouped by label
    tr = crop(rows(tr, search.subsample(len(tr["ids"]), t.train_fraction, seed)), t.seq_length)
    va = crop(rows(va, search.subsample(len(va["ids"]), t.valid_fraction, seed)), t.seq_length)
    max_len = tr["ids"].shape[1]
    weights = read_vectors(vectors, vocab_size) if True in t.space.get("pretrained", ()) else None
    n = batches(dataset(tr, t.batch_size, max_len))
    progress.announce(
        "imdb tune",
        f"up to {t.max_trials} trials ({t.tuner}) of up to "
        f"{t.epochs} epochs of {n} batches (batch {t.batch_size}, "
        f"{len(tr['ids']):,} reviews of up to {max_len} tokens, "
        f"{len(va['ids']):,} to validate)",
        report,
        count="trials",
    )
    task = search.Task(
        project="imdb",
        build=lambda hp: build_sentiment_model(hp, vocab_size, weights),
        base=fixed_keys(params.imdb.train.model, t.space),
        data=lambda hp: {
            "x": dataset(tr, t.batch_size, max_len, seed=seed),
            "validation_data": dataset(va, t.batch_size, max_len),
        },
        fingerprint=search.fingerprint(
            processed / "train.npz",
            processed / "valid.npz",
            vocab,
            *([vectors] if weights is not None else []),
        ),
    )
    set_seed(seed)
    search.run_stage(task, t, seed, out, report, trials)
