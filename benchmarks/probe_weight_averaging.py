"""Probe (issue 26): does averaging the weights of the train stage's last epochs score better
than the last epoch alone? The train stage keeps each epoch's weights in models/<project>/epochs
(epochN.npz), so this costs no training: each line averages the last k epochs' weights
(element by element), loads them into the trained model and scores valid and test as the
evaluate stage does (IMDb: accuracy at 0.5 and log loss; char LM: nats/char over each part
read as one stream). Run in a workspace whose pipeline has run (`dvc repro` or `dvc pull`):
    python benchmarks/probe_weight_averaging.py imdb
    python benchmarks/probe_weight_averaging.py charlm
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from rnnpipe.core.training import load_snapshot  # noqa: E402


def imdb_scorer(model):
    from rnnpipe.imdb.inputs import read_split
    from rnnpipe.imdb.metrics import binary_metrics
    from rnnpipe.imdb.model import predict_proba

    splits = {s: read_split(Path("data/processed/imdb"), s) for s in ("valid", "test")}

    def score() -> str:
        out = []
        for name, s in splits.items():
            m = binary_metrics(
                s["labels"].astype(int), predict_proba(model, s["ids"], s["lengths"]), 0.5
            )
            out.append(f"{name} accuracy {m['accuracy']:.4f} loss {m['loss']:.4f}")
        return ", ".join(out)

    return score


def charlm_scorer(model):
    from rnnpipe.charlm import sampler
    from rnnpipe.charlm.evaluate import load_ids

    parts = {p: load_ids(Path(f"data/processed/charlm/{p}.npz")) for p in ("valid", "test")}

    def score() -> str:
        return ", ".join(
            f"{p} {sampler.metrics(sampler.stream_loss(model, ids))['loss']:.5f} nats/char"
            for p, ids in parts.items()
        )

    return score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("project", choices=["imdb", "charlm"])
    ap.add_argument("--most", type=int, default=4, help="average up to this many last epochs")
    args = ap.parse_args()
    if args.project == "imdb":
        import rnnpipe.imdb.model  # noqa: F401  (registers MaskedPooling for loading)

    folder = Path(f"models/{args.project}/epochs")
    last = len(json.loads((folder / "fit.json").read_text())["history"])
    model = keras.models.load_model(f"models/{args.project}/model.keras")
    score = (imdb_scorer if args.project == "imdb" else charlm_scorer)(model)
    snapshots = []
    for epoch in range(last, max(0, last - args.most), -1):
        load_snapshot(model, folder, epoch)
        snapshots.append(model.get_weights())
        mean = [
            np.mean(arrays, axis=0).astype(arrays[0].dtype)
            for arrays in zip(*snapshots, strict=True)
        ]
        model.set_weights(mean)
        print(f"epochs {epoch}-{last} averaged: {score()}", flush=True)


if __name__ == "__main__":
    main()
