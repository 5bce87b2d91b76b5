"""tune, for both projects: a Keras Tuner search over the project's own model builder and
input pipeline, on a share of its encoded data (see rnnpipe.tuning)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from rnnpipe.params import Params
from rnnpipe.stages import arg, command
from rnnpipe.text.vocab import Vocabulary

log = logging.getLogger(__name__)

TUNER_ROOT = Path(".tuner")  # outside DVC's outputs, which DVC deletes before a stage runs

ARGS = (arg("processed", type=Path, help="folder with train/valid .npz"),
        arg("vocab", type=Path, help="vocab.json"),
        arg("out", type=Path, help="best_hparams.json (written by the chief or a lone search)"))
HELP = ("search cell type, units, clip norm (params <project>.tune) with Keras Tuner; each "
        "trial a nested MLflow run. With KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and "
        "KERASTUNER_ORACLE_PORT set: the chief oracle or a worker of a distributed search")


def rows(split: dict, index: np.ndarray) -> dict:
    return {k: v[index] for k, v in split.items()}


def crop(split: dict, seq_length: int | None) -> dict:
    """Reviews cut to their first seq_length tokens (ids right-padded, so the start stays)."""
    if seq_length is None or seq_length >= split["ids"].shape[1]:
        return split
    return {**split, "ids": split["ids"][:, :seq_length],
            "lengths": np.minimum(split["lengths"], seq_length)}


@command("imdb", "tune", *ARGS, help=HELP)
def tune_imdb(params: Params, processed: Path, vocab: Path, out: Path) -> None:
    from rnnpipe import tuning  # imports Keras Tuner and TensorFlow: only when tuning
    from rnnpipe.models.sentiment import build_sentiment_model
    from rnnpipe.stages.imdb import dataset, read_split
    from rnnpipe.training import set_seed

    t, p, seed = params.imdb.tune, params.imdb.train, params.seed
    vocab_size = len(Vocabulary.load(vocab))
    tr, va = read_split(processed, "train"), read_split(processed, "valid")
    # a seeded random share: the rows are in the order of the archive, grouped by label
    tr = crop(rows(tr, tuning.subsample(len(tr["ids"]), t.train_fraction, seed)), t.seq_length)
    va = crop(rows(va, tuning.subsample(len(va["ids"]), t.valid_fraction, seed)), t.seq_length)
    max_len = tr["ids"].shape[1]
    log.info("tune imdb: %d train, %d valid reviews of up to %d tokens", len(tr["ids"]),
             len(va["ids"]), max_len)
    task = tuning.Task(
        project="imdb",
        build=lambda hp: build_sentiment_model(hp, vocab_size),
        base=p.model.model_dump(),
        data=lambda: {"x": dataset(tr, p.batch_size, max_len, seed=seed),
                      "validation_data": dataset(va, p.batch_size, max_len)},
        fingerprint=tuning.fingerprint(processed / "train.npz", processed / "valid.npz", vocab,
                                       extra={"batch_size": p.batch_size}))
    set_seed(seed)
    _run(task, t, seed, out)


@command("charlm", "tune", *ARGS, help=HELP)
def tune_charlm(params: Params, processed: Path, vocab: Path, out: Path) -> None:
    from rnnpipe import tuning
    from rnnpipe.models import charlm
    from rnnpipe.stages.charlm import _load_ids
    from rnnpipe.training import set_seed

    t, p, seed = params.charlm.tune, params.charlm.train, params.seed
    vocab_size = len(Vocabulary.load(vocab))
    seq_length = t.seq_length or p.seq_length
    # contiguous beginnings of the parts: text stays text
    train_ids = _load_ids(processed / "train.npz")
    train_ids = train_ids[: round(len(train_ids) * t.train_fraction)]
    valid_ids = _load_ids(processed / "valid.npz")
    valid_ids = valid_ids[: round(len(valid_ids) * t.valid_fraction)]
    # the train stage's feed (params charlm.train.feed), with its model settings
    if p.feed == "tbptt":
        x, y = charlm.stream_batches(train_ids, p.batch_size, seq_length)
        xv, yv = charlm.stream_batches(valid_ids, p.batch_size, seq_length)
        build = lambda hp: charlm.build_char_lm(hp, vocab_size, stateful=True,  # noqa: E731
                                                batch_size=p.batch_size)
        callbacks, shuffle = [charlm.ResetStates()], False
    else:
        x, y = charlm.window_batches(train_ids, seq_length)
        xv, yv = charlm.window_batches(valid_ids, seq_length)
        build = lambda hp: charlm.build_char_lm(hp, vocab_size)  # noqa: E731
        callbacks, shuffle = [], True
    log.info("tune charlm: %d train, %d valid characters, feed %s, windows of %d",
             len(train_ids), len(valid_ids), p.feed, seq_length)
    task = tuning.Task(
        project="charlm", build=build, base=p.model.model_dump(),
        data=lambda: {"x": x, "y": y, "validation_data": (xv, yv), "batch_size": p.batch_size,
                      "shuffle": shuffle},
        fingerprint=tuning.fingerprint(processed / "train.npz", processed / "valid.npz", vocab,
                                       extra={"feed": p.feed, "batch_size": p.batch_size,
                                              "seq_length": seq_length}),
        callbacks=callbacks)
    set_seed(seed)
    _run(task, t, seed, out)


def _run(task: tuning.Task, tune, seed: int, out: Path) -> None:  # noqa: F821 (lazy import)
    from rnnpipe import tuning
    start = time.perf_counter()
    result = tuning.run_search(task, tune, seed, tuner_root=TUNER_ROOT)
    if result is None:
        log.info("worker done in %.0f s (the chief writes %s)", time.perf_counter() - start, out)
        return
    tuning.write_result(out, result)
    log.info("wrote %s in %.0f s: %s = %.4f with %s", out, time.perf_counter() - start,
             result["objective"], result["score"], result["hparams"])
