"""Adversarial training on the word embeddings (Miyato, Dai & Goodfellow 2017), tried on the
sentiment model of the train stage (issue 26, goal 1).

Each step also trains on the batch with its embedded words moved by r = eps x |e| x g / |g|:
g the gradient of the loss with respect to the embedded review e (all its words, one vector
per review), so r is the small move that raises the loss most, eps relative to the review's
own embedding norm (word2vec vectors are not normalised as in the paper; its eps 5 on
normalised 256-d vectors of ~400 words is about 0.016 of a review's norm). The loss is the
clean one plus the adversarial one: two forward and backward passes a step.

The model, word vectors, batches, learning-rate schedule and seed are the train stage's (the
searched keys from reports/imdb/tuning.json over imdb.train.model); only the step differs.
eps=0 runs the plain step through the same loop, as the control.

vat=V adds virtual adversarial training (Miyato et al.), which learns from the 50,000 unlabelled
reviews (cut to their last unsup_len tokens): each step also takes a batch of them, finds the
move r (size V x |e|, relative as eps) that changes the model's answer most (one power
iteration from a random direction of size xi x |e|), and adds KL(p(x) || p(x + r)), p(x) the
model's answer held fixed (vat_dropout says which of these passes drop out). Three more passes
a step on the unlabelled batch. Run in a workspace where the pipeline has run through
imdb_encode and imdb_embed:

    python benchmarks/probe_imdb_adversarial.py eps=0.02
    python benchmarks/probe_imdb_adversarial.py eps=0
    python benchmarks/probe_imdb_adversarial.py eps=0 vat=0.005 vat_dropout=none epochs=2

Prints validation and test accuracy after every epoch (test only to see how the idea
generalises; nothing is chosen on it). TensorFlow backend only: it is a probe, not the
pipeline's model code.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import yaml  # noqa: E402
from keras import layers  # noqa: E402

from rnnpipe.core.errors import PipelineError  # noqa: E402
from rnnpipe.core.vocab import Vocabulary  # noqa: E402
from rnnpipe.imdb.inputs import dataset, read_split  # noqa: E402
from rnnpipe.imdb.model import build_sentiment_model, predict_proba, read_vectors  # noqa: E402
from rnnpipe.imdb.prepare import read_reviews  # noqa: E402
from rnnpipe.imdb.words import encode_texts  # noqa: E402

DEFAULTS = dict(
    eps=0.02,
    vat=0.0,
    vat_dropout="last",
    xi=0.001,
    unsup_len=200,
    epochs=4,
    seed=42,
    data="data/processed/imdb",
)
# vat_dropout: which of VAT's three passes drop out as training does. "last": only the pass
# that is trained on (so the fixed answer is also the one without dropout, as served); "none":
# no pass (pure smoothness); "all": every pass (Miyato et al.'s code)
VAT_DROPOUT = {"last": (False, False, True), "none": (False,) * 3, "all": (True,) * 3}


def perturbable(model: keras.Model) -> keras.Model:
    """model's layers as a model of (ids, delta): delta [batch, time, dim] is added to the
    embedded words (the mask still comes from the ids). A chain of layers only (pooling max,
    mean or last), which the tuned model is."""
    chain = [layer for layer in model.layers if not isinstance(layer, layers.InputLayer)]
    if chain[0].name != "embedding" or any(len(lay._inbound_nodes) != 1 for lay in chain):
        raise SystemExit("expected a chain of layers from the embedding (pooling max/mean)")
    ids = keras.Input(shape=(None,), dtype="int32")
    delta = keras.Input(shape=(None, chain[0].output_dim))
    x = layers.Add()([chain[0](ids), delta])
    for layer in chain[1:-1]:
        x = layer(x)
    # logits, not probabilities: KL's gradient at a tiny move is exact in them
    head = chain[-1]
    if head.name != "positive":
        raise SystemExit("expected the Dense layer `positive` last")
    return keras.Model([ids, delta], Logits(head)(x))


class Logits(layers.Layer):
    """The sigmoid Dense layer's logits, with its variables (shared, not copied)."""

    def __init__(self, dense, **kwargs):
        super().__init__(**kwargs)
        self.dense = dense

    def call(self, x):
        return keras.ops.matmul(x, self.dense.kernel) + self.dense.bias


def add(a, b):
    """a + b for gradients, the embedding's sparse ones (IndexedSlices) too."""
    if isinstance(a, tf.IndexedSlices):
        return tf.IndexedSlices(
            tf.concat([a.values, b.values], 0), tf.concat([a.indices, b.indices], 0), a.dense_shape
        )
    return a + b


def key_values(argv: list[str], defaults: dict) -> dict:
    """defaults with argv's key=value items laid over, each of its default's type; a bad item
    ends the probe with a one-line message (also benchmarks/probe_imdb_distill.py's)."""
    cfg = dict(defaults)
    for item in argv:
        key, _, value = item.partition("=")
        if key not in defaults or not value:
            raise SystemExit(f"expected key=value with a key of {sorted(defaults)}, got {item!r}")
        try:
            cfg[key] = type(defaults[key])(value)
        except ValueError:
            raise SystemExit(
                f"{key} must be of type {type(defaults[key]).__name__}, got {value!r}"
            ) from None
    return cfg


def main() -> None:
    cfg = key_values(sys.argv[1:], DEFAULTS)
    if cfg["vat_dropout"] not in VAT_DROPOUT:
        raise SystemExit(f"vat_dropout must be one of {sorted(VAT_DROPOUT)}")
    if (
        min(cfg["eps"], cfg["vat"]) < 0
        or cfg["xi"] <= 0
        or min(cfg["unsup_len"], cfg["epochs"]) < 1
    ):
        raise SystemExit(
            "eps and vat must be at least 0, xi above 0, unsup_len and epochs at least 1"
        )
    drop_target, drop_near, drop_virtual = VAT_DROPOUT[cfg["vat_dropout"]]
    params = yaml.safe_load(open("params.yaml"))["imdb"]
    hp = params["train"]["model"] | json.load(open("reports/imdb/tuning.json"))["best_hparams"]
    keras.utils.set_random_seed(cfg["seed"])
    tr, va, te = (read_split(cfg["data"], s) for s in ("train", "valid", "test"))
    vocab_size = json.load(open("data/processed/imdb/vocab.json"))["size"]
    vectors = read_vectors("models/imdb/word_vectors.npy", vocab_size)
    model = build_sentiment_model(hp, vocab_size, vectors)
    both = perturbable(model)
    opt = model.optimizer
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)
    weights = model.trainable_variables
    eps, vat = cfg["eps"], cfg["vat"]
    embedding = model.get_layer("embedding")

    def move(ids, g, size):
        """g scaled to size x the review's embedding norm, padding left still."""
        mask = tf.cast(ids > 0, "float32")[..., None]
        g *= mask
        norm_g = tf.sqrt(tf.reduce_sum(g**2, axis=[1, 2], keepdims=True)) + 1e-12
        norm_e = tf.sqrt(tf.reduce_sum((embedding(ids) * mask) ** 2, [1, 2], keepdims=True))
        return tf.stop_gradient(size * norm_e * g / norm_g)

    def kl(target, logits):
        """KL(Bernoulli(sigmoid(target)) || Bernoulli(sigmoid(logits))), the batch's mean."""
        p = tf.sigmoid(target)
        return tf.reduce_mean(
            p * (tf.math.softplus(-logits) - tf.math.softplus(-target))
            + (1 - p) * (tf.math.softplus(logits) - tf.math.softplus(target))
        )

    @tf.function(reduce_retracing=True)
    def step(ids, y, unl):
        zeros = tf.zeros([tf.shape(ids)[0], tf.shape(ids)[1], hp["embedding_dim"]])
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(zeros)
            clean = loss_fn(y, both([ids, zeros], training=True))
        grads = tape.gradient(clean, weights)
        if eps > 0:
            r = move(ids, tape.gradient(clean, zeros), eps)
            with tf.GradientTape() as tape2:
                adv = loss_fn(y, both([ids, r], training=True))
            grads = [add(a, b) for a, b in zip(grads, tape2.gradient(adv, weights), strict=True)]
        del tape
        if vat > 0:
            shape = [tf.shape(unl)[0], tf.shape(unl)[1], hp["embedding_dim"]]
            target = tf.stop_gradient(both([unl, tf.zeros(shape)], training=drop_target))
            d = move(unl, tf.random.normal(shape), cfg["xi"])
            with tf.GradientTape() as tape3:
                tape3.watch(d)
                near = kl(target, both([unl, d], training=drop_near))
            r = move(unl, tape3.gradient(near, d), vat)
            with tf.GradientTape() as tape4:
                virtual = kl(target, both([unl, r], training=drop_virtual))
            grads = [
                add(a, b) for a, b in zip(grads, tape4.gradient(virtual, weights), strict=True)
            ]
        opt.apply_gradients(zip(grads, weights, strict=True))
        return clean

    batch = params["train"]["batch_size"]
    train = dataset(tr, batch, tr["ids"].shape[1], seed=cfg["seed"])
    unlabelled = None
    if vat > 0:
        reviews = read_reviews("data/interim/imdb/reviews.parquet")
        vocab = Vocabulary.load("data/processed/imdb/vocab.json")
        texts = reviews.loc[reviews["split"] == "unsup", "text"]
        u_ids, u_len = encode_texts(texts, vocab, cfg["unsup_len"], keep="end")
        u = {"ids": u_ids, "lengths": u_len, "labels": np.zeros(len(u_ids), "int64")}
        unlabelled = dataset(u, batch, cfg["unsup_len"], seed=cfg["seed"] + 1)
    no_unl = tf.zeros([1, 1], "int32")
    start = time.time()
    for epoch in range(cfg["epochs"]):
        opt.learning_rate.assign(hp["learning_rate"] * hp["lr_decay"] ** epoch)
        train.set_epoch(epoch)
        unl = itertools.repeat(no_unl)  # step's third input, read only with vat
        if unlabelled is not None:
            # 781 unlabelled batches against 313 labelled: each epoch reads another part
            unlabelled.set_epoch(epoch)
            unl = (batch_ids for batch_ids, _ in unlabelled)
        losses = [float(step(ids, y, next(unl))) for ids, y in train]
        pv = predict_proba(model, va["ids"], va["lengths"])
        pt = predict_proba(model, te["ids"], te["lengths"])
        yv, yt = va["labels"], te["labels"]
        val_loss = -np.mean(yv * np.log(pv + 1e-7) + (1 - yv) * np.log(1 - pv + 1e-7))
        row = {
            "epoch": epoch + 1,
            "minutes": round((time.time() - start) / 60, 2),
            "train_loss": round(float(np.mean(losses)), 4),
            "val_loss": round(float(val_loss), 4),
            "val_acc": round(float(np.mean((pv > 0.5) == yv)), 4),
            "test_acc": round(float(np.mean((pt > 0.5) == yt)), 4),
        }
        print(f"eps={eps} vat={vat} vat_dropout={cfg['vat_dropout']}", json.dumps(row), flush=True)


if __name__ == "__main__":
    try:
        main()
    except (PipelineError, OSError) as e:  # a missing split, vocabulary, vectors or params
        hint = "run `dvc repro imdb_encode imdb_embed` first"
        raise SystemExit(f"probe_imdb_adversarial: {e} ({hint})") from None
