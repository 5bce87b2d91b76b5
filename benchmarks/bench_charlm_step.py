"""What a char LM's train step costs on this CPU, by shape (issue 26, goal 3): milliseconds a
step and characters a second of `train_on_batch` for models built by `build_char_lm`, random
ids (speed does not depend on the data), windows of 50 (the default seq_length). The shapes are
the one-layer default, the two-layer models of benchmarks/README "Char LM beyond one layer",
and cheaper two-layer ones. Each: 3 steps of warm-up (the first traces), then the median of
`--steps` steps. Run (TensorFlow backend), nothing else running:
    python benchmarks/bench_charlm_step.py [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from rnnpipe.charlm.model import build_char_lm  # noqa: E402
from rnnpipe.core.machine import cpu  # noqa: E402

VOCAB, WINDOW = 80, 50
COMMON = dict(cell="GRU", embedding_dim=64, dropout=0.2, learning_rate=0.002, clipnorm=5.0)
SHAPES = [  # (units, layers, batch)
    (512, 1, 64),
    (512, 2, 64),
    (512, 2, 128),
    (448, 2, 128),
    (384, 2, 128),
    (768, 1, 64),
]


def step_ms(units: int, layers: int, batch: int, steps: int) -> float:
    keras.utils.set_random_seed(0)
    hp = COMMON | dict(units=units, layers=layers, heads=4, seq_length=WINDOW)
    model = build_char_lm(hp, VOCAB)
    rng = np.random.default_rng(0)
    x = rng.integers(1, VOCAB, (batch, WINDOW)).astype("int32")
    y = rng.integers(1, VOCAB, (batch, WINDOW)).astype("int32")
    times = []
    for i in range(3 + steps):
        t = time.perf_counter()
        model.train_on_batch(x, y)
        if i >= 3:
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    print(f"{cpu()}, windows of {WINDOW}, median of {args.steps} steps")
    print(f"{'model':24s} {'batch':>5s} {'ms/step':>8s} {'chars/s':>8s} {'s/epoch':>8s}")
    for units, layers, batch in SHAPES:
        ms = step_ms(units, layers, batch, args.steps)
        chars = batch * WINDOW / (ms / 1000)
        # an epoch of the novel's training part (1,001,034 characters)
        print(
            f"{f'GRU-{units} x {layers}':24s} {batch:5d} {ms:8.0f} {chars:8.0f} "
            f"{1_001_034 / chars:8.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
