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
eps=0 runs the plain step through the same loop, as the control. Run in a workspace where the
pipeline has run through imdb_embed:

    python benchmarks/probe_imdb_adversarial.py eps=0.02
    python benchmarks/probe_imdb_adversarial.py eps=0

Prints validation and test accuracy after every epoch (test only to see how the idea
generalises; nothing is chosen on it). TensorFlow backend only: it is a probe, not the
pipeline's model code.
"""

from __future__ import annotations

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

from rnnpipe.imdb.inputs import dataset, read_split  # noqa: E402
from rnnpipe.imdb.model import build_sentiment_model, predict_proba, read_vectors  # noqa: E402

DEFAULTS = dict(eps=0.02, epochs=4, seed=42, data="data/processed/imdb")


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
    for layer in chain[1:]:
        x = layer(x)
    return keras.Model([ids, delta], x)


def add(a, b):
    """a + b for gradients, the embedding's sparse ones (IndexedSlices) too."""
    if isinstance(a, tf.IndexedSlices):
        return tf.IndexedSlices(
            tf.concat([a.values, b.values], 0), tf.concat([a.indices, b.indices], 0), a.dense_shape
        )
    return a + b


def main() -> None:
    cfg = dict(DEFAULTS)
    for item in sys.argv[1:]:
        key, _, value = item.partition("=")
        if key not in DEFAULTS or not value:
            raise SystemExit(f"expected key=value with a key of {sorted(DEFAULTS)}, got {item!r}")
        cfg[key] = type(DEFAULTS[key])(value)
    params = yaml.safe_load(open("params.yaml"))["imdb"]
    hp = params["train"]["model"] | json.load(open("reports/imdb/tuning.json"))["best_hparams"]
    keras.utils.set_random_seed(cfg["seed"])
    tr, va, te = (read_split(cfg["data"], s) for s in ("train", "valid", "test"))
    vocab_size = json.load(open("data/processed/imdb/vocab.json"))["size"]
    vectors = read_vectors("models/imdb/word_vectors.npy", vocab_size)
    model = build_sentiment_model(hp, vocab_size, vectors)
    both = perturbable(model)
    opt = model.optimizer
    loss_fn = keras.losses.BinaryCrossentropy()
    weights = model.trainable_variables
    eps = cfg["eps"]

    @tf.function(reduce_retracing=True)
    def step(ids, y):
        zeros = tf.zeros([tf.shape(ids)[0], tf.shape(ids)[1], hp["embedding_dim"]])
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(zeros)
            clean = loss_fn(y, both([ids, zeros], training=True))
        grads = tape.gradient(clean, weights)
        if eps > 0:
            g = tape.gradient(clean, zeros)
            e = model.get_layer("embedding")(ids)
            mask = tf.cast(ids > 0, "float32")[..., None]
            g *= mask
            norm_g = tf.sqrt(tf.reduce_sum(g**2, axis=[1, 2], keepdims=True)) + 1e-12
            norm_e = tf.sqrt(tf.reduce_sum((e * mask) ** 2, axis=[1, 2], keepdims=True))
            r = tf.stop_gradient(eps * norm_e * g / norm_g)
            with tf.GradientTape() as tape2:
                adv = loss_fn(y, both([ids, r], training=True))
            grads = [add(a, b) for a, b in zip(grads, tape2.gradient(adv, weights), strict=True)]
        del tape
        opt.apply_gradients(zip(grads, weights, strict=True))
        return clean

    train = dataset(tr, params["train"]["batch_size"], tr["ids"].shape[1], seed=cfg["seed"])
    start = time.time()
    for epoch in range(cfg["epochs"]):
        opt.learning_rate.assign(hp["learning_rate"] * hp["lr_decay"] ** epoch)
        train.set_epoch(epoch)
        losses = [float(step(ids, y)) for ids, y in train]
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
        print(f"eps={eps}", json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
