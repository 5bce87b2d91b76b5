"""Is the sentiment recipe robust, or lucky? Train it with several seeds and print each test
accuracy (threshold chosen on validation, as the evaluate stage does).

The recipe is what the pipeline last trained: models/imdb/hparams.json, with the train params of
params.yaml (batch size, epochs, patience), on the pipeline's encoded splits and word vectors.
Run it in a repo where `dvc repro imdb_train` has run:

    python benchmarks/bench_imdb_seeds.py --seeds 1 2 3

About 10 minutes a seed on 2 CPU cores. Each seed is a fresh model (weights, dropout, batch
order); nothing is logged to MLflow and no pipeline output is touched.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import keras
import numpy as np

from rnnpipe.core import training
from rnnpipe.core.params import load_params
from rnnpipe.imdb.inputs import dataset, read_split
from rnnpipe.imdb.metrics import best_threshold
from rnnpipe.imdb.model import build_sentiment_model, predict_proba, read_vectors


def one_seed(seed: int, hp: dict, p, splits: dict, vocab_size: int, vectors) -> dict:
    training.set_seed(seed)
    tr, va, te = splits["train"], splits["valid"], splits["test"]
    max_len = tr["ids"].shape[1]
    model = build_sentiment_model(hp, vocab_size, vectors)
    start = time.perf_counter()
    history = model.fit(
        dataset(tr, p.batch_size, max_len, seed=seed),
        epochs=p.epochs,
        validation_data=dataset(va, p.batch_size, max_len),
        verbose=0,
        callbacks=[
            keras.callbacks.EarlyStopping(patience=p.patience, restore_best_weights=True),
            *training.schedule(hp),
        ],
    )
    minutes = (time.perf_counter() - start) / 60
    pv = predict_proba(model, va["ids"], va["lengths"])
    pt = predict_proba(model, te["ids"], te["lengths"])
    threshold = best_threshold(va["labels"], pv)
    return {
        "seed": seed,
        "epochs": len(history.epoch),
        "minutes": round(minutes, 1),
        "valid_accuracy": round(float(np.mean((pv > threshold) == va["labels"])), 4),
        "test_accuracy": round(float(np.mean((pt > threshold) == te["labels"])), 4),
        "test_accuracy_at_0.5": round(float(np.mean((pt > 0.5) == te["labels"])), 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--processed", type=Path, default=Path("data/processed/imdb"))
    ap.add_argument("--hparams", type=Path, default=Path("models/imdb/hparams.json"))
    ap.add_argument("--vectors", type=Path, default=Path("models/imdb/word_vectors.npy"))
    args = ap.parse_args()
    p = load_params(args.params).imdb.train
    hp = json.loads(args.hparams.read_text())
    vocab_size = json.loads((args.processed / "vocab.json").read_text())["size"]
    vectors = read_vectors(args.vectors, vocab_size) if hp.get("pretrained") else None
    splits = {s: read_split(args.processed, s) for s in ("train", "valid", "test")}
    print("recipe:", json.dumps(hp, sort_keys=True))
    rows = []
    for seed in args.seeds:
        rows.append(one_seed(seed, hp, p, splits, vocab_size, vectors))
        print(json.dumps(rows[-1]), flush=True)
    acc = [r["test_accuracy"] for r in rows]
    print(
        f"test accuracy: min {min(acc):.4f}, max {max(acc):.4f}, "
        f"spread {100 * (max(acc) - min(acc)):.2f} points"
    )


if __name__ == "__main__":
    main()
