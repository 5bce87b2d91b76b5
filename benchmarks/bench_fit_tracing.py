"""A short fit of each project's model as its builder makes it (Adam's slots and the metrics'
variables made before fit) against the same model compiled the way it was before (slots made
inside the first train step, the metric named by a string), one after the other in one process.

On TensorFlow, variables first made inside a tf.function make it trace twice, so the old way
traced every train step twice. The tuner builds a model per trial, and the tests build
hundreds: tracing is most of a tiny fit.

    python benchmarks/bench_fit_tracing.py [--rounds 5]

Prints, per model and way: the median seconds of build + fit, the train-step traces, and
whether both ways gave the same losses (they should, to the bit).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

from rnnpipe.charlm.model import build_char_lm  # noqa: E402
from rnnpipe.imdb.model import build_sentiment_model  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_model_builders import counting_traces  # noqa: E402

SENTIMENT = {
    "cell": "GRU",
    "units": 8,
    "layers": 1,
    "bidirectional": True,
    "embedding_dim": 8,
    "pretrained": False,
    "embedding_dropout": 0.0,
    "dropout": 0.0,
    "pooling": "max",
    "learning_rate": 0.01,
    "clipnorm": 1.0,
}
CHARLM = {
    "cell": "LSTM",
    "units": 32,
    "layers": 1,
    "embedding_dim": 16,
    "dropout": 0.0,
    "learning_rate": 0.01,
    "clipnorm": 1.0,
    "seq_length": 20,
}


def as_before(model: keras.Model, hp: dict) -> keras.Model:
    """The model compiled as the builders did before: a new, unbuilt Adam, string metrics."""
    model.compile(
        optimizer=keras.optimizers.Adam(hp["learning_rate"], clipnorm=hp["clipnorm"]),
        loss=model.loss,
        metrics=["accuracy"] if model.name == "sentiment" else None,
    )
    return model


def fit(build, data, old: bool) -> tuple[float, int, list[float]]:
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    model = build()
    if old:
        model = as_before(model, SENTIMENT if model.name == "sentiment" else CHARLM)
    traces = counting_traces(model)
    x, y = data
    history = model.fit(x, y, batch_size=8, epochs=2, validation_data=(x, y), verbose=0)
    return time.perf_counter() - start, len(traces), history.history["loss"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    reviews = (rng.integers(1, 200, (64, 30)), rng.integers(0, 2, (64, 1)).astype("float32"))
    text = rng.integers(0, 40, (64, 21))
    models = {
        "sentiment (bidirectional GRU)": (lambda: build_sentiment_model(SENTIMENT, 200), reviews),
        "char LM (LSTM)": (lambda: build_char_lm(CHARLM, 40), (text[:, :-1], text[:, 1:])),
    }
    print(
        f"keras {keras.__version__}, backend {keras.backend.backend()}, "
        f"{args.rounds} rounds, median seconds of build + fit (2 epochs, 64 rows)"
    )
    for name, (build, data) in models.items():
        runs = {"before": [], "now": []}
        for _ in range(args.rounds):  # interleaved, so that both see the same machine
            for way in runs:
                runs[way].append(fit(build, data, old=way == "before"))
        before, now = (statistics.median(r[0] for r in runs[w]) for w in ("before", "now"))
        same = runs["before"][0][2] == runs["now"][0][2]
        print(
            f"{name}: before {before:.2f} s ({runs['before'][0][1]} traces), "
            f"now {now:.2f} s ({runs['now'][0][1]} traces), ratio {now / before:.2f}, "
            f"same losses: {same}"
        )


if __name__ == "__main__":
    main()
