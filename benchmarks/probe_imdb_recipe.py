"""Try a sentiment recipe quickly: train a bidirectional RNN for a few epochs and print, after
every epoch, validation and test accuracy (at 0.5 and at the threshold best on validation).

The rows of the "IMDb recipes" table in benchmarks/README.md come from this script, run in a
repo where the pipeline has encoded the data:

    python benchmarks/probe_imdb_recipe.py w2v_u128 init=vectors.npy units=128 \
        pooling=maxmean lr=0.002 decay=0.05 emb_dropout=0.3 epochs=3

Settings (key=value): cell, units, emb (without init), init (a .npy of word vectors, one row
per vocabulary id), trainable (0: frozen embedding), freeze_epochs, pooling (max, mean,
maxmean), dropout, emb_dropout, lr, decay (cosine decay to lr x decay over the run; 0:
constant), clip, batch, epochs, max_len (keep the end), seed, data (the encoded folder).
Test accuracy is printed to see how the recipe generalises; the pipeline never chooses on it.
"""

from __future__ import annotations

import json
import sys
import time

import keras
import numpy as np
from keras import layers

from rnnpipe.imdb.inputs import dataset, read_split
from rnnpipe.imdb.metrics import best_threshold
from rnnpipe.imdb.model import CELLS, MaskedPooling, predict_proba

DEFAULTS = dict(
    cell="GRU",
    units=64,
    emb=128,
    init="",
    trainable=1,
    freeze_epochs=0,
    pooling="max",
    dropout=0.5,
    emb_dropout=0.0,
    lr=0.0015,
    decay=0.0,
    clip=1.0,
    batch=64,
    epochs=4,
    max_len=400,
    seed=42,
    data="data/processed/imdb",
)


def keep_end(split: dict, max_len: int) -> dict:
    """Reviews cut to their last max_len tokens (the ids are right-padded)."""
    if max_len >= split["ids"].shape[1]:
        return split
    ids = np.zeros((len(split["ids"]), max_len), "int32")
    for i, (row, n) in enumerate(zip(split["ids"], split["lengths"], strict=True)):
        k = min(n, max_len)
        ids[i, :k] = row[n - k : n]
    return {**split, "ids": ids, "lengths": np.minimum(split["lengths"], max_len)}


def build(cfg: dict, vocab_size: int, vectors) -> tuple[keras.Model, layers.Embedding]:
    ids = keras.Input(shape=(None,), dtype="int32")
    dim = vectors.shape[1] if vectors is not None else cfg["emb"]
    embedding = layers.Embedding(vocab_size, dim, mask_zero=True)
    x = embedding(ids)
    if vectors is not None:
        embedding.set_weights([vectors])
    if cfg["emb_dropout"]:
        x = layers.SpatialDropout1D(cfg["emb_dropout"])(x)
    x = layers.Bidirectional(CELLS[cfg["cell"]](cfg["units"], return_sequences=True))(x)
    if cfg["pooling"] == "maxmean":
        x = layers.Concatenate()([MaskedPooling("max")(x), MaskedPooling("mean")(x)])
    else:
        x = MaskedPooling(cfg["pooling"])(x)
    x = layers.Dropout(cfg["dropout"])(x)
    return keras.Model(ids, layers.Dense(1, activation="sigmoid")(x)), embedding


def main() -> None:
    name, cfg = sys.argv[1], dict(DEFAULTS)
    for item in sys.argv[2:]:
        key, value = item.split("=", 1)
        cfg[key] = type(DEFAULTS[key])(value)
    keras.utils.set_random_seed(cfg["seed"])
    tr, va, te = (
        keep_end(read_split(cfg["data"], s), cfg["max_len"]) for s in ("train", "valid", "test")
    )
    vocab_size = json.loads(open(f"{cfg['data']}/vocab.json").read())["size"]
    vectors = np.load(cfg["init"]) if cfg["init"] else None
    model, embedding = build(cfg, vocab_size, vectors)
    lr = cfg["lr"]
    if cfg["decay"]:
        steps = -(-len(tr["ids"]) // cfg["batch"]) * cfg["epochs"]
        lr = keras.optimizers.schedules.CosineDecay(cfg["lr"], steps, alpha=cfg["decay"])
    embedding.trainable = bool(cfg["trainable"]) and not cfg["freeze_epochs"]

    def compile_() -> None:
        model.compile(
            optimizer=keras.optimizers.Adam(lr, clipnorm=cfg["clip"]),
            loss="binary_crossentropy",
            metrics=["accuracy"],
        )

    compile_()
    train = dataset(tr, cfg["batch"], cfg["max_len"], seed=cfg["seed"])
    start = time.time()
    for epoch in range(cfg["epochs"]):
        if cfg["freeze_epochs"] and epoch == cfg["freeze_epochs"] and cfg["trainable"]:
            embedding.trainable = True
            compile_()
        train.set_epoch(epoch)
        loss = model.fit(train, epochs=1, verbose=0).history["loss"][-1]
        pv = predict_proba(model, va["ids"], va["lengths"])
        pt = predict_proba(model, te["ids"], te["lengths"])
        threshold = best_threshold(va["labels"], pv)
        yv, yt = va["labels"], te["labels"]
        val_loss = -np.mean(yv * np.log(pv + 1e-7) + (1 - yv) * np.log(1 - pv + 1e-7))
        print(
            name,
            json.dumps(
                {
                    "epoch": epoch + 1,
                    "minutes": round((time.time() - start) / 60, 2),
                    "train_loss": round(float(loss), 4),
                    "val_loss": round(float(val_loss), 4),
                    "val_acc": round(float(np.mean((pv > 0.5) == yv)), 4),
                    "test_acc": round(float(np.mean((pt > 0.5) == yt)), 4),
                    "thr": round(threshold, 3),
                    "test_acc_thr": round(float(np.mean((pt > threshold) == yt)), 4),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
