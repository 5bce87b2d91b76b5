"""Seconds of training until the sentiment model first reaches a validation accuracy (issue 26,
goal 4: 0.85 within 55 s on 2 cores).

    python benchmarks/imdb_time_to_accuracy.py [--every 20] [--target 0.85] [key=value ...]

Run in a repo where the pipeline has run (data/processed/imdb, models/imdb/hparams.json and
word_vectors.npy): the model, feed, seed and learning-rate schedule are the train stage's. Every
`--every` batches the whole validation split is scored (at 0.5, as Keras' accuracy), with the
clock stopped, so the figure is training time alone. key=value overrides a model key of
hparams.json (learning_rate=0.004) or, for batch_size and max_len (the first max_len tokens of
each review), the feed. Prints one JSON line per check and the result.
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

from rnnpipe.core import training  # noqa: E402
from rnnpipe.core.errors import PipelineError  # noqa: E402
from rnnpipe.core.params import load_params  # noqa: E402
from rnnpipe.core.vocab import Vocabulary  # noqa: E402
from rnnpipe.imdb.inputs import dataset, read_split  # noqa: E402
from rnnpipe.imdb.model import build_sentiment_model, predict_proba, read_vectors  # noqa: E402

DATA, MODELS = Path("data/processed/imdb"), Path("models/imdb")


class Checks(keras.callbacks.Callback):
    """Scores validation every `every` batches; the clock runs only while training."""

    def __init__(self, valid: dict, every: int, target: float):
        super().__init__()
        self.valid, self.every, self.target = valid, every, target
        self.trained, self.batches, self.reached = 0.0, 0, None

    def on_train_batch_begin(self, batch, logs=None):
        self.t = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.trained += time.perf_counter() - self.t
        self.batches += 1
        if self.batches % self.every:
            return
        p = predict_proba(self.model, self.valid["ids"], self.valid["lengths"])
        acc = float(np.mean((p > 0.5) == self.valid["labels"]))
        print(
            json.dumps(
                {"batches": self.batches, "train_s": round(self.trained, 1), "val_acc": acc}
            ),
            flush=True,
        )
        if acc >= self.target:
            self.reached = self.trained
            self.model.stop_training = True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, default=20, help="batches between validation checks")
    ap.add_argument("--target", type=float, default=0.85)
    ap.add_argument("--epochs", type=int, default=2, help="give up after this many epochs")
    ap.add_argument("--seed", type=int, help="default: params.yaml's seed")
    ap.add_argument("overrides", nargs="*", help="key=value")
    args = ap.parse_args()
    if args.every < 1 or args.epochs < 1:
        raise SystemExit("--every and --epochs must be at least 1")

    needed = [DATA / "train.npz", DATA / "valid.npz", DATA / "vocab.json", MODELS / "hparams.json"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: run `dvc repro imdb_hparams` first")
    params = load_params("params.yaml", "imdb")
    seed = params.seed if args.seed is None else args.seed
    hp = json.loads((MODELS / "hparams.json").read_text())
    feed = {"batch_size": params.imdb.train.batch_size, "max_len": None}
    for item in args.overrides:
        if "=" not in item:
            raise SystemExit(f"{item!r}: give overrides as key=value")
        key, value = item.split("=", 1)
        target = feed if key in feed else hp
        if key not in target:
            raise SystemExit(f"unknown key {key!r}: a key of hparams.json, batch_size or max_len")
        try:
            value = json.loads(value)  # numbers, true/false
        except ValueError:
            value = str(value)  # cell=LSTM
        target[key] = value
    try:
        measure(args, seed, hp, feed)
    except PipelineError as e:  # an unreadable split or word vectors
        raise SystemExit(f"imdb_time_to_accuracy: {e}") from None


def measure(args, seed: int, hp: dict, feed: dict) -> None:
    tr, va = read_split(DATA, "train"), read_split(DATA, "valid")
    if feed["max_len"]:  # the first max_len tokens (ids are right-padded)
        tr = {**tr, "ids": tr["ids"][:, : feed["max_len"]]}
        tr["lengths"] = np.minimum(tr["lengths"], feed["max_len"])
    vocab = len(Vocabulary.load(DATA / "vocab.json"))
    vectors = read_vectors(MODELS / "word_vectors.npy", vocab) if hp.get("pretrained") else None
    training.set_seed(seed)
    model = build_sentiment_model(hp, vocab, vectors)
    checks = Checks(va, args.every, args.target)
    train = dataset(tr, feed["batch_size"], tr["ids"].shape[1], seed=seed)
    for epoch in range(args.epochs):  # the train stage's data order and schedule
        train.set_epoch(epoch)
        model.fit(
            train,
            initial_epoch=epoch,
            epochs=epoch + 1,
            verbose=0,
            callbacks=[checks, *training.schedule(hp)],
        )
        if checks.reached is not None:
            break
    print(
        json.dumps(
            {
                "overrides": args.overrides,
                "seed": seed,
                "target": args.target,
                "reached_after_s": None if checks.reached is None else round(checks.reached, 1),
                "batches": checks.batches,
                "batch_size": feed["batch_size"],
            }
        )
    )


if __name__ == "__main__":
    main()
