"""A first probe of issue 26's goal 1: pretrain the sentiment model's recurrent layer on the
unlabelled reviews, then fine-tune it as the classifier, and compare with the same model from
word2vec alone.

    python benchmarks/probe_imdb_pretrain.py [--lm-epochs 1] [--lm-len 200] [--seed 42]
    python benchmarks/probe_imdb_pretrain.py --head softmax --lm-vocab 2000

Run in a repo where the pipeline has run (data/interim/imdb/reviews.parquet,
data/processed/imdb, models/imdb: hparams.json, word_vectors.npy). Test is printed to see how
the recipe generalises; nothing is chosen on it.

Pretraining: the champion's bidirectional layer as two language models over the training and
unlabelled reviews (never valid or test), each review's first --lm-len tokens: the forward GRU
predicts the next word and the backward GRU the word before, each as a direction in word2vec's
space (loss: 1 - cosine with the word's unit vector). A softmax over the 20,000 words would
take about 26 times the recurrent layer's multiply-adds; the cosine head costs little. The
embedding starts from word2vec and learns too; the word2vec targets stay fixed.
`--head softmax` predicts the word itself instead (cross-entropy), among the --lm-vocab most
frequent words and one class for all the others (Dai & Le's language model, on a smaller
output vocabulary).

Fine-tuning: the train stage's model (hparams.json), feed (imdb.train.batch_size), seed,
schedule and early stopping (imdb.train.patience), its embedding and both directions of its
GRU started from the pretrained ones. Prints valid and test accuracy at the threshold best on
validation, after each epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers, ops  # noqa: E402

from rnnpipe.core import training  # noqa: E402
from rnnpipe.core.errors import PipelineError  # noqa: E402
from rnnpipe.core.params import load_params  # noqa: E402
from rnnpipe.core.vocab import Vocabulary  # noqa: E402
from rnnpipe.imdb.inputs import dataset, read_split  # noqa: E402
from rnnpipe.imdb.metrics import best_threshold, binary_metrics  # noqa: E402
from rnnpipe.imdb.model import build_sentiment_model, predict_proba, read_vectors  # noqa: E402
from rnnpipe.imdb.prepare import read_reviews  # noqa: E402
from rnnpipe.imdb.words import encode_texts  # noqa: E402

DATA, MODELS = Path("data/processed/imdb"), Path("models/imdb")
REVIEWS = Path("data/interim/imdb/reviews.parquet")


class TwoWayLM(layers.Layer):
    """Mean over a batch's real positions of a per-word loss, for the forward model (next word)
    and the backward model (word before). A subclass says what a word's target is and the loss
    of a prediction against it."""

    def target(self, ids):
        raise NotImplementedError

    def word_loss(self, pred, target):
        raise NotImplementedError

    def call(self, ids, forward, backward):
        real = ops.cast(ops.not_equal(ids, 0), "float32")
        target = self.target(ids)

        def loss(pred, tgt, mask):
            return ops.sum(self.word_loss(pred, tgt) * mask)

        # forward at t predicts t + 1; backward at t predicts t - 1 (both positions real)
        both = real[:, 1:] * real[:, :-1]
        total = loss(forward[:, :-1], target[:, 1:], both) + loss(
            backward[:, 1:], target[:, :-1], both
        )
        mean = total / ops.maximum(ops.sum(both) * 2.0, 1.0)
        return mean * ops.ones_like(real[:, 0])  # one value per row, as Keras expects


class CosineLM(TwoWayLM):
    """1 - cos(prediction, the target word's unit vector)."""

    def __init__(self, unit_vectors: np.ndarray, **kwargs):
        super().__init__(**kwargs)
        self.targets = layers.Embedding(
            *unit_vectors.shape, weights=[unit_vectors], trainable=False, name="targets"
        )

    def target(self, ids):
        return self.targets(ids)

    def word_loss(self, pred, target):
        pred = pred / (ops.norm(pred, axis=-1, keepdims=True) + 1e-6)
        return 1.0 - ops.sum(pred * target, axis=-1)


class SoftmaxLM(TwoWayLM):
    """Cross-entropy of the word among the `words` most frequent words (ids below `words`) and
    one class for all the others."""

    def __init__(self, words: int, **kwargs):
        super().__init__(**kwargs)
        self.words = words

    def target(self, ids):
        return ops.minimum(ids, self.words)

    def word_loss(self, pred, target):
        return ops.sparse_categorical_crossentropy(target, pred, from_logits=True)


def language_model(hp: dict, vectors: np.ndarray, head: str, words: int) -> keras.Model:
    """The two directions of the champion's GRU layer over its embedding, with cosine or
    softmax heads."""
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = layers.Embedding(*vectors.shape, weights=[vectors], mask_zero=True, name="embedding")(ids)
    units = hp["units"]
    forward = layers.GRU(units, return_sequences=True, name="forward")(x)
    backward = layers.GRU(units, return_sequences=True, go_backwards=True, name="backward")(x)
    backward = ops.flip(backward, axis=1)  # back in reading order
    if head == "softmax":
        out, lm = words + 1, SoftmaxLM(words, name="softmax")
    else:
        unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)
        out, lm = vectors.shape[1], CosineLM(unit.astype("float32"), name="cosine")
    loss = lm(
        ids, layers.Dense(out, name="next")(forward), layers.Dense(out, name="before")(backward)
    )
    model = keras.Model(ids, loss)
    model.compile(
        optimizer=keras.optimizers.Adam(hp["learning_rate"], clipnorm=hp["clipnorm"]),
        loss=lambda y_true, y_pred: y_pred,  # the model's output is its loss
    )
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lm-epochs", type=int, default=1)
    ap.add_argument("--lm-len", type=int, default=200, help="tokens of each review pretrained on")
    ap.add_argument("--head", choices=["cosine", "softmax"], default="cosine")
    ap.add_argument("--lm-vocab", type=int, default=2000, help="softmax head: words predicted")
    ap.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs, at most")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    if min(args.lm_epochs, args.lm_len, args.epochs) < 1:
        raise SystemExit("--lm-epochs, --lm-len and --epochs must be at least 1")
    if args.lm_vocab < 2:
        raise SystemExit("--lm-vocab must be at least 2")
    needed = [REVIEWS, DATA / "vocab.json", MODELS / "hparams.json", MODELS / "word_vectors.npy"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: run `dvc repro imdb_hparams` first")
    try:
        probe(args)
    except PipelineError as e:  # an unreadable split, reviews or word vectors
        raise SystemExit(f"probe_imdb_pretrain: {e}") from None


def probe(args) -> None:
    p = load_params("params.yaml", "imdb").imdb.train  # the train stage's feed and patience
    hp = json.loads((MODELS / "hparams.json").read_text())
    if hp["cell"] != "GRU" or not hp["bidirectional"] or hp["layers"] != 1:
        raise SystemExit("the probe pretrains one bidirectional GRU layer")
    vocab = Vocabulary.load(DATA / "vocab.json")
    vectors = read_vectors(MODELS / "word_vectors.npy", len(vocab))
    training.set_seed(args.seed)

    reviews = read_reviews(REVIEWS)
    texts = reviews.loc[reviews["split"].isin(["train", "unsup"]), "text"]
    ids, lengths = encode_texts(texts, vocab, args.lm_len, keep="start")
    unlabelled = {"ids": ids, "lengths": lengths, "labels": np.zeros(len(ids), "int64")}
    lm = language_model(hp, vectors, args.head, min(args.lm_vocab, len(vocab)))
    feed = dataset(unlabelled, p.batch_size, args.lm_len, seed=args.seed)
    start = time.perf_counter()
    for epoch in range(args.lm_epochs):
        feed.set_epoch(epoch)
        lm.fit(feed, initial_epoch=epoch, epochs=epoch + 1, verbose=2)
    lm_minutes = (time.perf_counter() - start) / 60
    print(json.dumps({"pretrained_on": len(ids), "tokens": int(lengths.sum()), "min": lm_minutes}))

    training.set_seed(args.seed)
    model = build_sentiment_model(hp, len(vocab), vectors)
    model.get_layer("embedding").set_weights(lm.get_layer("embedding").get_weights())
    bi = model.get_layer("bi_0")
    bi.forward_layer.set_weights(lm.get_layer("forward").get_weights())
    bi.backward_layer.set_weights(lm.get_layer("backward").get_weights())

    tr, va, te = (read_split(DATA, s) for s in ("train", "valid", "test"))
    train = dataset(tr, p.batch_size, tr["ids"].shape[1], seed=args.seed)
    valid = dataset(va, p.batch_size, va["ids"].shape[1])
    best, waited, start = None, 0, time.perf_counter()
    schedule = training.schedule(hp)
    for epoch in range(args.epochs):
        train.set_epoch(epoch)
        history = model.fit(
            train,
            validation_data=valid,
            initial_epoch=epoch,
            epochs=epoch + 1,
            verbose=2,
            callbacks=schedule,
        ).history
        pv, pt = (predict_proba(model, s["ids"], s["lengths"]) for s in (va, te))
        threshold = best_threshold(va["labels"], pv)
        row = {
            "epoch": epoch + 1,
            "val_loss": round(history["val_loss"][-1], 4),
            "valid_acc": round(binary_metrics(va["labels"], pv, threshold)["accuracy"], 4),
            "test_acc": round(binary_metrics(te["labels"], pt, threshold)["accuracy"], 4),
            "threshold": round(threshold, 3),
            "min": round((time.perf_counter() - start) / 60, 2),
        }
        print(json.dumps(row), flush=True)
        if best is None or row["val_loss"] < best["val_loss"]:
            best, waited = row, 0
        else:
            waited += 1
            if waited >= p.patience:
                break
    print(json.dumps({"best_by_val_loss": best, "lm_minutes": round(lm_minutes, 2)}))


if __name__ == "__main__":
    main()
