"""`python -m rnnpipe.verify_serving [--model-uri URI] [--port N] [--limit N] [--order ...]`
(`make verify-serving`): does the served sentiment model reproduce its evaluation?

It starts `mlflow models serve --env-manager local` on 127.0.0.1 with the model (default: the
champion, models:/<imdb.promote.model_name>@champion in the project's MLflow store), sends the
test split's reviews to /invocations as raw text, at most MAX_REVIEWS per request, and compares
the accuracy of the labels it answers with the test accuracy in reports/imdb/metrics.json. The
server is stopped however the check ends.

The reviews are the test split of data/interim/imdb/reviews.parquet in the file's order, which
is the order of data/processed/imdb/test.npz (encode keeps ingest's order): their number,
labels and token counts are checked against test.npz before anything is served.

Batches. A review's probability depends in its last bits on the size of the batch it is
scored in (small batches take other kernel paths; measured: docs/serving.md). evaluate scores
the split sorted by length in batches of 256 (rnnpipe.imdb.model.predict_proba); the pyfunc does
the same within each request. `--order evaluate` (the default) sends the reviews in evaluate's
order, 1024 a request, so that each batch the server scores is one of evaluate's: the same
floats, and a label that differs is a real difference (tokenizer, vocabulary, truncation,
threshold, or another model). `--order split` sends them in the split's order, as a client
would.

The report: both accuracies and the number of reviews; the reviews whose label differs from
evaluate's (reports/imdb/plots/confusion.csv); the served probability nearest the threshold;
and, when models/imdb/student/model.keras is there, max |p_served - p_evaluate| with p_evaluate
recomputed as evaluate computes it. `--limit N` serves the first N reviews only and compares
with evaluate's accuracy on those N (from confusion.csv).

Exit status: 0 when the accuracies are exactly equal, 1 when they differ, 2 when the check
cannot run (a missing or inconsistent input, no such model, a server that does not start).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rnnpipe.core.errors import PipelineError
from rnnpipe.core.paths import project_root
from rnnpipe.core.requests import MAX_REVIEWS

REVIEWS = Path("data/interim/imdb/reviews.parquet")
TEST = Path("data/processed/imdb/test.npz")
METRICS = Path("reports/imdb/metrics.json")
CONFUSION = Path("reports/imdb/plots/confusion.csv")
MODEL = Path("models/imdb/student/model.keras")
BATCH = 256  # rnnpipe.imdb.model.predict_proba's batch_size, in evaluate and in the pyfunc
PER_REQUEST = MAX_REVIEWS - MAX_REVIEWS % BATCH  # whole batches, so that batches line up
START_TIMEOUT = 300  # seconds for the server to load TensorFlow and the model
SHOWN = 10  # differing reviews listed


@dataclass
class Evaluation:
    accuracy: float
    source: str  # where the accuracy is read
    threshold: float
    labels: np.ndarray  # evaluate's label of each review


def split_reviews(root: Path) -> pd.DataFrame:
    """The test split's reviews (text, label, length) in test.npz's order, checked against it:
    the same number, labels and token counts."""
    from rnnpipe.imdb.words import tokenize_array

    try:
        df = pd.read_parquet(root / REVIEWS, columns=["split", "label", "text"])
        with np.load(root / TEST) as z:
            labels, lengths, width = z["labels"], z["lengths"], z["ids"].shape[1]
    except (OSError, KeyError, ValueError) as e:
        raise PipelineError(f"cannot read the test split: {e}") from None
    df = df[df["split"] == "test"].reset_index(drop=True)
    if len(df) != len(labels):
        raise PipelineError(
            f"{REVIEWS} has {len(df)} test reviews, {TEST} {len(labels)}: "
            "rerun encode (dvc repro imdb_encode)"
        )
    tokens = tokenize_array(df["text"]).value_lengths().fill_null(0).to_numpy()
    same = (df["label"].to_numpy() == labels) & (np.minimum(tokens, width) == lengths)
    if not same.all():
        raise PipelineError(
            f"test review {int(np.argmin(same))} of {REVIEWS} is not the one "
            f"of {TEST} (label or token count): rerun encode"
        )
    return df.assign(length=lengths)


def evaluation(root: Path, labels: np.ndarray) -> Evaluation:
    """evaluate's test accuracy and labels, checked against the split's `labels`."""
    try:
        metrics = json.loads((root / METRICS).read_text())["test"]
        confusion = pd.read_csv(root / CONFUSION)
        actual, predicted = confusion["actual"].to_numpy(), confusion["predicted"].to_numpy()
        result = Evaluation(
            metrics["accuracy"], f"{METRICS} test.accuracy", metrics["threshold"], predicted
        )
        n = metrics["n"]
    except KeyError as e:
        raise PipelineError(
            f"no {e} in {METRICS} (test section) or {CONFUSION}: rerun evaluate"
        ) from None
    except (OSError, ValueError) as e:
        raise PipelineError(f"cannot read evaluate's results: {e}") from None
    if not (n == len(actual) == len(labels)) or (actual != labels).any():
        raise PipelineError(
            f"{METRICS} (test.n {n}) and {CONFUSION} ({len(actual)} rows) are "
            f"not of the {len(labels)} test reviews of {TEST}: rerun evaluate"
        )
    return result


def first(evaluated: Evaluation, labels: np.ndarray, n: int) -> Evaluation:
    """evaluate's accuracy on the first n reviews alone."""
    right = int((evaluated.labels[:n] == labels[:n]).sum())
    return Evaluation(
        right / n, f"{CONFUSION}, first {n} rows", evaluated.threshold, evaluated.labels[:n]
    )


def default_uri(root: Path) -> str:
    from rnnpipe.core.params import load_params

    name = load_params(root / "params.yaml", "imdb").imdb.promote.model_name
    return f"models:/{name}@champion"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_ping(proc: subprocess.Popen, url: str, log: Path) -> None:
    import requests

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            last = (log.read_text(errors="replace").strip().splitlines() or ["(empty log)"])[-1]
            raise PipelineError(f"the model server exited {proc.returncode}: {last} (log: {log})")
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise PipelineError(f"the model server did not answer /ping in {START_TIMEOUT} s (log: {log})")


@contextmanager
def served(model_uri: str, port: int, root: Path):
    """`mlflow models serve` of model_uri on 127.0.0.1:port; yields its URL; always stops it."""
    from rnnpipe.core import tracking

    # `mlflow models serve --env-manager local` starts uvicorn from PATH: the venv's bin/ first
    path = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking.tracking_uri(), PATH=path)
    mlflow = shutil.which("mlflow", path=path)
    if mlflow is None:
        raise PipelineError("the mlflow command is not installed")
    log = Path(tempfile.mkdtemp(prefix="verify-serving-")) / "server.log"
    with open(log, "wb") as out:
        # a session of its own: its workers stop with the process group
        proc = subprocess.Popen(
            [
                mlflow,
                "models",
                "serve",
                "-m",
                model_uri,
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for_ping(proc, url, log)
        yield url
    finally:
        _stop(proc)
    shutil.rmtree(log.parent, ignore_errors=True)  # kept after an error, which may name it


def _stop(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=30)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def request_order(lengths: np.ndarray, order: str) -> np.ndarray:
    """The reviews' indices in the order they are sent."""
    if order == "split":
        return np.arange(len(lengths))
    return np.argsort(lengths, kind="stable")  # as predict_proba sorts them


def score(url: str, texts: list[str], order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The served probability and label of each review, PER_REQUEST reviews a request."""
    import requests

    proba, label = np.full(len(texts), np.nan), np.full(len(texts), -1)
    with requests.Session() as s:
        for start in range(0, len(order), PER_REQUEST):
            rows = order[start : start + PER_REQUEST]
            r = s.post(f"{url}/invocations", json={"inputs": [texts[i] for i in rows]}, timeout=300)
            if r.status_code != 200:
                hint = (
                    " (the server's timeout: raise MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT)"
                    if r.status_code == 504
                    else ""
                )
                raise PipelineError(f"/invocations answered {r.status_code}: {r.text[:300]}{hint}")
            answers = r.json()["predictions"]
            proba[rows] = [a["probability"] for a in answers]
            label[rows] = [a["label"] for a in answers]
    return proba, label


def evaluate_proba(root: Path, n: int) -> np.ndarray | None:
    """evaluate's probabilities of the first n test reviews, recomputed as evaluate computes
    them (the whole split, in its batches); None without models/imdb/student/model.keras."""
    if not (root / MODEL).is_file():
        return None
    import keras

    import rnnpipe.imdb.model  # noqa: F401  (registers MaskedPooling and side_agreement for loading)
    from rnnpipe.imdb.inputs import read_split
    from rnnpipe.imdb.model import predict_proba

    data = read_split(root / TEST.parent, "test")
    model = keras.models.load_model(root / MODEL)
    return predict_proba(model, data["ids"], data["lengths"])[:n].astype("float64")


def compare(
    proba: np.ndarray,
    label: np.ndarray,
    truth: np.ndarray,
    evaluated: Evaluation,
    p_evaluate: np.ndarray | None,
) -> bool:
    """Print the report; True when the served accuracy equals evaluate's exactly."""
    right = int((label == truth).sum())
    accuracy = right / len(truth)
    print(f"served accuracy:   {accuracy!r} ({right} of {len(truth)} reviews right)")
    print(f"evaluate accuracy: {evaluated.accuracy!r} ({evaluated.source})")
    differ = np.flatnonzero(label != evaluated.labels)
    print(
        f"labels unlike evaluate's: {len(differ)} of {len(truth)}; the served probability "
        f"nearest the threshold {evaluated.threshold:.6g} is "
        f"{np.abs(proba - evaluated.threshold).min():.2g} from it"
    )
    if p_evaluate is not None:
        print(
            f"max |p_served - p_evaluate|: {np.abs(proba - p_evaluate).max():.3g} "
            f"(p_evaluate recomputed from {MODEL})"
        )
    for i in differ[:SHOWN]:
        recomputed = "" if p_evaluate is None else f" (p_evaluate {p_evaluate[i]:.9f})"
        print(
            f"  review {i}: served probability {proba[i]:.9f}, label {label[i]}; "
            f"evaluate's label {evaluated.labels[i]}{recomputed}; true label {truth[i]}"
        )
    if len(differ) > SHOWN:
        print(f"  ... and {len(differ) - SHOWN} more")
    return accuracy == evaluated.accuracy


def verify_serving(
    root: Path, model_uri: str | None, port: int | None, limit: int | None, order: str
) -> int:
    missing = [
        str(path) for path in (REVIEWS, TEST, METRICS, CONFUSION) if not (root / path).is_file()
    ]
    if missing:
        raise PipelineError(
            f"no {', '.join(missing)} in {root}: dvc pull fetches them, or "
            "dvc repro imdb_evaluate makes them"
        )
    reviews = split_reviews(root)
    truth = reviews["label"].to_numpy()
    evaluated = evaluation(root, truth)
    if limit is not None:
        reviews, truth = reviews.iloc[:limit], truth[:limit]
        evaluated = first(evaluated, truth, len(truth))
    uri = model_uri or default_uri(root)
    texts = reviews["text"].tolist()
    print(
        f"verify-serving: {uri}, {len(texts)} test reviews as raw text, "
        f"{-(-len(texts) // PER_REQUEST)} request(s) in {order} order"
    )
    with served(uri, port or free_port(), root) as url:
        proba, label = score(url, texts, request_order(reviews["length"].to_numpy(), order))
    same = compare(proba, label, truth, evaluated, evaluate_proba(root, len(texts)))
    print("verify-serving: " + ("same accuracy" if same else "the accuracies DIFFER"))
    return 0 if same else 1


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(
        prog="python -m rnnpipe.verify_serving",
        description="Serve the sentiment model over REST, score the test split's raw reviews "
        "through it and compare the accuracy with reports/imdb/metrics.json.",
    )
    parser.add_argument(
        "--model-uri",
        help="default: models:/<imdb.promote.model_name>@champion in the project's MLflow store",
    )
    parser.add_argument("--port", type=int, help="default: a free port on 127.0.0.1")
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="only the first N test reviews (compared with evaluate's accuracy "
        "on them, from reports/imdb/plots/confusion.csv)",
    )
    parser.add_argument(
        "--order",
        choices=("evaluate", "split"),
        default="evaluate",
        help="send the reviews in evaluate's batches (default) or in the split's order",
    )
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    try:
        return verify_serving(project_root(), args.model_uri, args.port, args.limit, args.order)
    except PipelineError as e:
        print(f"verify-serving: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
