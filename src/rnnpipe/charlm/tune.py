"""tune: a Keras Tuner search over the char LM's builder with the train stage's feed, on the
beginning of the training text, scored on the beginning of the validation text."""

from __future__ import annotations

import logging
from pathlib import Path

from rnnpipe.charlm.feed import load_ids, make_feed
from rnnpipe.core.commands import command
from rnnpipe.core.params import Params
from rnnpipe.core.search import ARGS, HELP
from rnnpipe.core.vocab import Vocabulary

log = logging.getLogger(__name__)


@command("charlm", "tune", *ARGS, help=HELP)
def tune(params: Params, processed: Path, vocab: Path, out: Path, report: Path) -> None:
    from rnnpipe.core import search  # imports Keras Tuner and TensorFlow: only when tuning
    from rnnpipe.core.training import set_seed

    t, p, seed = params.charlm.tune, params.charlm.train, params.seed
    vocab_size = len(Vocabulary.load(vocab))
    seq_length = t.seq_length or p.seq_length
    # contiguous beginnings of the parts: text stays text
    train_ids = load_ids(processed / "train.npz")
    train_ids = train_ids[: round(len(train_ids) * t.train_fraction)]
    valid_ids = load_ids(processed / "valid.npz")
    valid_ids = valid_ids[: round(len(valid_ids) * t.valid_fraction)]
    feed = make_feed(train_ids, valid_ids, p.feed, p.batch_size, seq_length)
    log.info("tune charlm: %d train, %d valid characters, feed %s, windows of %d",
             len(train_ids), len(valid_ids), p.feed, seq_length)
    task = search.Task(
        project="charlm", build=lambda hp: feed.build(hp, vocab_size),
        base=p.model.model_dump(), data=lambda: dict(feed.fit_kwargs),
        fingerprint=search.fingerprint(processed / "train.npz", processed / "valid.npz", vocab,
                                       extra={"feed": p.feed, "batch_size": p.batch_size,
                                              "seq_length": seq_length}),
        callbacks=feed.callbacks)
    set_seed(seed)
    search.run_stage(task, t, seed, out, report)
