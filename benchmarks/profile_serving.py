"""Where a sentiment request's time goes, in one process: the layers of MLflow's scoring server
peeled off one by one, same reviews, medians over the same requests.

    python benchmarks/profile_serving.py models/imdb/pyfunc     # --requests 200

For one review and for batches of 64 (test-split reviews when data/interim/imdb/reviews.parquet
exists, else synthetic ones), the median time of:
  app         the FastAPI app of `mlflow models serve`, called as uvicorn calls it (ASGI)
              but without sockets: the rest of a real request is uvicorn and the network
  invocations MLflow's request handler: JSON -> DataFrame, schema check, predict, JSON
  pyfunc      PyFuncModel.predict: schema check + our predict
  predict     our Sentiment.predict on the list of reviews
  tokenize    ids and lengths of the reviews (served_tokens.ServedEncoder)
  model       predict_proba: the Keras model on the ids, cut to the longest review
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_serving import load_reviews  # noqa: E402


def median_ms(fn, args_list) -> float:
    times = []
    for args in args_list:
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def asgi_post(loop, app, body: bytes) -> None:
    """POST body to /invocations of an ASGI app, as uvicorn would, without a socket. One event
    loop for all requests, as in the server: its default executor runs `invocations`."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/invocations",
        "raw_path": b"/invocations",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 5001),
    }
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    loop.run_until_complete(app(scope, receive, send))
    status = sent[0]["status"]
    if status != 200:
        raise RuntimeError(f"status {status}: {sent[1:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pyfunc", type=Path, help="an MLflow model folder, e.g. models/imdb/pyfunc")
    ap.add_argument("--requests", type=int, default=200)
    args = ap.parse_args()

    import mlflow
    import pandas as pd
    from mlflow.pyfunc import scoring_server

    from rnnpipe.imdb.model import predict_proba

    model = mlflow.pyfunc.load_model(str(args.pyfunc))
    inner = model.unwrap_python_model()
    schema = model.metadata.get_input_schema()
    app = scoring_server.init(model)
    loop = asyncio.new_event_loop()
    reviews = load_reviews(max(args.requests, 64 * 4))

    for size in (1, 64):
        batches = [
            [reviews[(i * size + j) % len(reviews)] for j in range(size)]
            for i in range(args.requests if size == 1 else max(args.requests // 8, 10))
        ]
        bodies = [json.dumps({"inputs": b}).encode() for b in batches]
        frames = [pd.DataFrame({"text": b}) for b in batches]
        encoded = [inner.encoder.encode(b) for b in batches]
        for b in batches[:5]:  # warm up: the first calls trace the model
            inner.predict(None, b)
        layers = {
            "app": median_ms(lambda body: asgi_post(loop, app, body), [(b,) for b in bodies]),
            "invocations": median_ms(
                lambda body: scoring_server.invocations(body, "application/json", model, schema),
                [(b,) for b in bodies],
            ),
            "pyfunc": median_ms(model.predict, [(f,) for f in frames]),
            "predict": median_ms(lambda b: inner.predict(None, b), [(b,) for b in batches]),
            "tokenize": median_ms(inner.encoder.encode, [(b,) for b in batches]),
            "model": median_ms(
                lambda ids, lengths: predict_proba(inner.model, ids, lengths), encoded
            ),
        }
        print(f"\n{size} review(s) a request, {len(batches)} requests, median ms:")
        for name, ms in layers.items():
            print(f"  {name:<12} {ms:8.2f}")


if __name__ == "__main__":
    main()
