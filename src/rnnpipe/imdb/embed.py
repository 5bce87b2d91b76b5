"""embed: word2vec vectors for the vocabulary's words, learnt without labels from the training
split and the 50,000 unlabelled reviews (never valid or test). The sentiment model's embedding
can start from them (`pretrained: true`), which the 20,000 labelled reviews alone teach poorly.

Row i of the output is the vector of vocabulary id i: the padding row is zeros, and a word that
word2vec did not keep (seen fewer than min_count times in its corpus) gets a small random vector.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import numpy as np

from rnnpipe.core.atomic import atomic_path, write_json
from rnnpipe.core.commands import arg, command
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import Params
from rnnpipe.core.vocab import Vocabulary
from rnnpipe.imdb.prepare import read_reviews
from rnnpipe.imdb.words import tokenize_array

log = logging.getLogger(__name__)


def stable_hash(text: str) -> int:
    # word2vec seeds each word's starting vector with hash(word + seed); Python's hash() of a
    # str changes from process to process, this one does not
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "little")


def corpus(reviews, use_unsup: bool) -> list[str]:
    """The texts word2vec learns from: train, and unsup when asked."""
    texts = list(reviews.loc[reviews["split"] == "train", "text"])
    if use_unsup:
        unsup = list(reviews.loc[reviews["split"] == "unsup", "text"])
        if not unsup:
            raise PipelineError(
                "imdb.embed.use_unsup is true but the reviews hold no unlabelled "
                "(unsup) split: set imdb.ingest.include_unsup to true, or "
                "imdb.embed.use_unsup to false"
            )
        texts += unsup
    if not texts:
        raise PipelineError("no training reviews to learn word vectors from")
    return texts


def word_vectors(sentences: list[list[str]], vocab: Vocabulary, p, seed: int) -> np.ndarray:
    """[len(vocab), p.dim] float32, row i the vector of token id i."""
    from gensim.models import Word2Vec

    w2v = Word2Vec(
        sentences,
        vector_size=p.dim,
        window=p.window,
        min_count=p.min_count,
        sg=int(p.skipgram),
        epochs=p.epochs,
        workers=p.workers,
        seed=seed,
        hashfxn=stable_hash,
    )
    known = w2v.wv
    scale = float(known.vectors.std()) if len(known) else 0.1
    rng = np.random.default_rng(seed)
    out = rng.normal(0.0, scale, (len(vocab), p.dim)).astype(np.float32)
    for i, token in enumerate(vocab.tokens):
        if token in known.key_to_index:
            out[i] = known[token]
    out[vocab.pad_id] = 0.0
    return out


@command(
    "imdb",
    "embed",
    arg("reviews", type=Path, help="reviews.parquet (train, and unsup with use_unsup)"),
    arg("vocab", type=Path, help="vocab.json"),
    arg("out", type=Path, help="word_vectors.npy: [vocabulary size, imdb.embed.dim]"),
    arg("report", type=Path, help="reports/imdb/embed.json: words covered, minutes"),
    help="learn word2vec vectors of the vocabulary's words without labels",
)
def embed(params: Params, reviews: Path, vocab: Path, out: Path, report: Path) -> None:
    p = params.imdb.embed
    start = time.perf_counter()
    v = Vocabulary.load(vocab)
    texts = corpus(read_reviews(reviews), p.use_unsup)
    sentences = tokenize_array(texts).to_pylist()
    log.info(
        "word2vec on %d reviews (%d tokens), %d dimensions, %d epochs",
        len(sentences),
        sum(map(len, sentences)),
        p.dim,
        p.epochs,
    )
    vectors = word_vectors(sentences, v, p, params.seed)
    covered = int(np.count_nonzero(np.any(vectors != 0, axis=1)))
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:  # np.save(path) would add ".npy" to the temporary name
            np.save(f, vectors, allow_pickle=False)
    write_json(
        report,
        {
            "reviews": len(sentences),
            "dim": p.dim,
            "vocabulary": len(v),
            "vectors": covered,
            "minutes": round((time.perf_counter() - start) / 60, 2),
        },
    )
    log.info("wrote %s: %d x %d in %.0f s", out, *vectors.shape, time.perf_counter() - start)
