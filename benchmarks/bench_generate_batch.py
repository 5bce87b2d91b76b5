"""Characters per second of generation in batches (issue 25): rows of 500 characters written
one row after another (`Generator.generate`) and all rows stepped together
(`Generator.generate_many`), the same model and rows, side by side in one run, for the two
char LMs the pipeline trains:

1. the recurrent champion's shape (reports/charlm/tuning.json since 5 Dec): GRU-512, two
   layers, embedding 64, vocabulary 80;
2. the champion's shape before 5 Dec: the same with one layer (the figures of 2-4 Dec);
3. the attention model of the compare stage (params.yaml charlm.compare.attention):
   Transformer of width 256, 4 heads, 2 blocks, context 100, embedding 64.

Random weights: speed does not depend on training. Every row's batched text is checked to
equal its text alone. One row: the fastest of 3 runs; one by one: all rows once; batched: the
fastest of 2 runs. Also the cap on a served request's character steps that this machine's
speed gives (rnnpipe.core.requests.step_cap). Run (TensorFlow backend):
    python benchmarks/bench_generate_batch.py [--rows 64] [--chars 500]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from rnnpipe.charlm.model import build_char_lm  # noqa: E402
from rnnpipe.charlm.sampler import Generator, step_costs  # noqa: E402
from rnnpipe.core import requests  # noqa: E402
from rnnpipe.core.machine import cpu  # noqa: E402
from rnnpipe.core.vocab import char_vocabulary  # noqa: E402

ALPHABET = "".join(chr(c) for c in range(32, 111))  # 79 characters, as in the novel
COMMON = dict(embedding_dim=64, dropout=0.1, learning_rate=0.002, clipnorm=5.0)
MODELS = {
    "GRU-512 x 2 (champion)": dict(cell="GRU", units=512, layers=2, heads=4, seq_length=50),
    "GRU-512 x 1 (before 5 Dec)": dict(cell="GRU", units=512, layers=1, heads=4, seq_length=50),
    "Transformer-256, 4 heads x 2": dict(
        cell="Transformer", units=256, layers=2, heads=4, seq_length=100
    ),
}


def timed(fn, repeat: int = 1):
    """fn's result and its fastest time of `repeat` runs (the machine may be shared)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def measure(gen: Generator, rows: list[dict]) -> dict:
    gen.generate_many([dict(rows[0], length=20)] * 2)  # warm up
    chars = sum(row["length"] for row in rows)
    one, one_s = timed(lambda: gen.generate(**rows[0]), repeat=3)
    alone, alone_s = timed(lambda: [gen.generate(**row) for row in rows])
    batched, batched_s = timed(lambda: gen.generate_many(rows), repeat=2)
    if batched != alone or alone[0] != one:
        raise SystemExit("a row's batched text differs from its text alone")
    # what the served model (rnnpipe.charlm.pyfunc.CharLM) would accept in one request here
    cap = requests.step_cap(*step_costs(gen), requests.longest_row(gen.context))
    return {
        "one row": rows[0]["length"] / one_s,
        "one by one": chars / alone_s,
        "batched": chars / batched_s,
        "cap": cap,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--chars", type=int, default=500, help="characters per row")
    args = ap.parse_args()
    keras.utils.set_random_seed(0)
    vocab = char_vocabulary(ALPHABET)
    rows = [
        {"prompt": "The island", "length": args.chars, "temperature": 1.0, "seed": r}
        for r in range(args.rows)
    ]
    print(
        f"{cpu()}, {os.cpu_count()} CPUs; vocabulary {len(vocab)}, {args.rows} rows x "
        f"{args.chars} characters from {rows[0]['prompt']!r}, temperature 1"
    )
    print(
        f"{'model':30s} {'params':>9s} {'one row':>9s} {'one by one':>11s} "
        f"{'batched':>9s} {'batched/1x1':>12s} {'served cap':>11s}"
    )
    for name, hp in MODELS.items():
        model = build_char_lm(COMMON | hp, len(vocab))
        r = measure(Generator(model, vocab), rows)
        print(
            f"{name:30s} {model.count_params():9d} {r['one row']:9.0f} "
            f"{r['one by one']:11.0f} {r['batched']:9.0f} "
            f"{r['batched'] / r['one by one']:12.1f} {r['cap']:11d}"
        )
    print(
        "characters/s (summed over rows); served cap: the character steps one request may "
        f"need, for a timeout of {requests.request_timeout()} s"
    )


if __name__ == "__main__":
    main()
