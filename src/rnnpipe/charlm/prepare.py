"""vocab and encode: the character vocabulary of the training part, and the corpus as ids split by
position into train, valid and test (the held-out text is text the model never saw)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from rnnpipe.charlm import chars
from rnnpipe.core.atomic import atomic_path
from rnnpipe.core.commands import arg, command
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import Params
from rnnpipe.core.vocab import Vocabulary, char_vocabulary

log = logging.getLogger(__name__)


def read_corpus(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise PipelineError(f"{path} is not UTF-8 text: {e}") from None
    if not text:
        raise PipelineError(f"{path} is empty")
    return text


@command(
    "charlm",
    "vocab",
    arg("corpus", type=Path, help="data/interim/charlm/corpus.txt"),
    arg("out", type=Path, help="vocab.json"),
    help="character vocabulary of the training part of the corpus (id 0: unseen)",
)
def vocab(params: Params, corpus: Path, out: Path) -> None:
    text = chars.train_part(read_corpus(corpus), params.charlm.encode.train_fraction)
    v = char_vocabulary(text)
    v.save(out)
    log.info("wrote %s: %d ids", out, len(v))


@command(
    "charlm",
    "encode",
    arg("corpus", type=Path, help="data/interim/charlm/corpus.txt"),
    arg("vocab", type=Path, help="vocab.json"),
    arg("outdir", type=Path, help="folder for train/valid/test.npz"),
    help="the corpus as int32 ids, split by position into train, valid, test",
)
def encode(params: Params, corpus: Path, vocab: Path, outdir: Path) -> None:
    p = params.charlm.encode
    ids = chars.encode(read_corpus(corpus), Vocabulary.load(vocab))
    for part, (start, stop) in chars.split_by_position(
        len(ids), p.train_fraction, p.valid_fraction
    ).items():
        with atomic_path(outdir / f"{part}.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, ids=ids[start:stop], start=np.int64(start))
        log.info("%s: characters %d..%d", part, start, stop)
