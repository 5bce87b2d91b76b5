"""The real `mlflow models serve` on 127.0.0.1: good requests, each kind of bad input, a load
test, and the offline CLI giving the server's answers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.conftest import BIN, RNNPIPE, run

pytestmark = pytest.mark.slow
# the tests of one server on one pytest-xdist worker: the server starts once
ON_THE_SENTIMENT_SERVER = pytest.mark.xdist_group("sentiment_server")
ON_THE_CHARLM_SERVER = pytest.mark.xdist_group("charlm_server")

SENTIMENT = "imdb-sentiment"
CHARLM = "mysterious-island-charlm"


@pytest.fixture(scope="module")
def store(tiny_pipeline):
    """(repo, env) of the shared tiny pipeline run: each model has a `champion` in its store."""
    env = dict(tiny_pipeline.env)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tiny_pipeline.repo / 'mlflow.db'}"
    return tiny_pipeline.repo, env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(model_uri: str, cwd: Path, env: dict, timeout: float = 180):
    """`mlflow models serve` on a free port; yields its base URL; always stops it."""
    port = free_port()
    log = Path(tempfile.mkdtemp()) / f"serve-{port}.log"
    with open(log, "wb") as out:
        # a session of its own: the server's workers die with the process group
        proc = subprocess.Popen(
            [
                str(BIN / "mlflow"),
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
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not up after {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def sentiment_url(store):
    tmp, env = store
    metrics = json.loads((tmp / "reports/imdb/metrics.json").read_text())
    THRESHOLD["value"] = metrics["valid"]["threshold"]
    with served(f"models:/{SENTIMENT}@champion", tmp, env) as url:
        yield url


@pytest.fixture(scope="module")
def charlm_url(store):
    tmp, env = store
    with served(f"models:/{CHARLM}@champion", tmp, env) as url:
        yield url


def post(url: str, body) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body)
    return requests.post(
        f"{url}/invocations", data=data, timeout=120, headers={"Content-Type": "application/json"}
    )


def assert_400(r: requests.Response, *fragments: str) -> None:
    assert r.status_code == 400, r.text[:500]
    message = r.json()["message"]
    for f in fragments:
        assert f in message, message[:500]


THRESHOLD = {}


def check_sentiment_answers(preds: list, n: int) -> None:
    assert len(preds) == n
    for p in preds:
        assert 0.0 <= p["probability"] <= 1.0
        # the threshold evaluate chose on validation travels with the model
        assert p["label"] == (1 if p["probability"] >= THRESHOLD["value"] else 0)


@ON_THE_SENTIMENT_SERVER
def test_sentiment_server_answers_reviews(sentiment_url):
    reviews = ["A wonderful, brilliant film. I loved it.", "Boring and awful.", "ok"]
    r = post(sentiment_url, {"inputs": reviews})
    assert r.status_code == 200, r.text
    check_sentiment_answers(r.json()["predictions"], 3)
    # the same review gets the same answer, alone or in a batch
    alone = post(sentiment_url, {"inputs": reviews[:1]}).json()["predictions"][0]
    assert alone["probability"] == pytest.approx(
        r.json()["predictions"][0]["probability"], abs=1e-5
    )


@ON_THE_SENTIMENT_SERVER
def test_sentiment_server_defined_answers_for_odd_text(sentiment_url):
    odd = ["Très bien 😀😀 素晴らしい映画", "🎬🍿", "wonderful " * 100_000]  # the last: 1 MB
    assert len(odd[2].encode()) >= 1_000_000
    r = post(sentiment_url, {"inputs": odd})
    assert r.status_code == 200, r.text[:500]
    check_sentiment_answers(r.json()["predictions"], 3)


@pytest.mark.parametrize(
    "body, fragments",
    [
        ({"inputs": ["good"] * 1025}, ["1025 reviews in one request; at most 1024"]),
        ({"inputs": []}, ["inputs"]),  # schema check ("missing inputs") or "no reviews"
        ({}, ["inputs"]),
        ({"reviews": ["good"]}, ["inputs"]),
        ({"dataframe_records": [{"text": 42}]}, ["review 0 must be a string, got int"]),
        (
            {"dataframe_records": [{"text": "fine"}, {"text": None}]},
            ["review 1 must be a string, got null"],
        ),
        ({"inputs": [""]}, ["review 0 is empty"]),
        ({"inputs": ["good", "   "]}, ["review 1 is empty"]),
        (b"not json", ["JSON"]),
    ],
)
@ON_THE_SENTIMENT_SERVER
def test_sentiment_server_rejects_bad_input_and_keeps_serving(sentiment_url, body, fragments):
    assert_400(post(sentiment_url, body), *fragments)
    assert post(sentiment_url, {"inputs": ["still serving"]}).status_code == 200


@ON_THE_SENTIMENT_SERVER
def test_sentiment_server_reads_numbers_and_null_in_inputs_as_text(sentiment_url):
    # MLflow's schema enforcement (a string column) turns them into their text before the
    # model sees them: a defined answer, the same as for the text itself
    r = post(sentiment_url, {"inputs": ["fine", 42, None]})
    assert r.status_code == 200, r.text[:500]
    as_text = post(sentiment_url, {"inputs": ["fine", "42", "None"]}).json()["predictions"]
    assert r.json()["predictions"] == as_text


@ON_THE_SENTIMENT_SERVER
def test_sentiment_server_answers_concurrent_clients(sentiment_url):
    # correctness under concurrency; throughput and latency: benchmarks/bench_serving.py
    reviews = ["A wonderful film", "Awful acting, a waste of time", "Loved it " * 50]

    def one(i: int) -> dict:
        with requests.Session() as s:
            r = s.post(
                f"{sentiment_url}/invocations", json={"inputs": [reviews[i % 3]]}, timeout=120
            )
            assert r.status_code == 200, r.text[:300]
            return r.json()["predictions"][0]

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(one, range(12)))
    for i, a in enumerate(answers):  # each answer is its own review's
        assert a == pytest.approx(answers[i % 3], abs=1e-6)


@ON_THE_SENTIMENT_SERVER
def test_offline_cli_gives_the_server_answers(sentiment_url, store):
    tmp, env = store
    reviews = ["A wonderful, brilliant film.", "Boring and awful.", "Très bien 😀"]
    served_preds = post(sentiment_url, {"inputs": reviews}).json()["predictions"]
    out = run([str(RNNPIPE), "imdb", "predict", *reviews], tmp, env).stdout
    offline = [json.loads(line) for line in out.splitlines()]
    assert len(offline) == 3
    for a, b in zip(offline, served_preds, strict=True):
        assert a["label"] == b["label"]
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-6)
    bad = run([str(RNNPIPE), "imdb", "predict", "  "], tmp, env, check=False)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.splitlines()[-1] == "rnnpipe imdb predict: error: review 0 is empty"


def lm_row(**kw) -> dict:
    return {"prompt": "The island", "length": 30, "temperature": 0.8, "seed": 1} | kw


@ON_THE_CHARLM_SERVER
def test_charlm_server_generates_text(charlm_url):
    rows = [lm_row(), lm_row(prompt="The island é", temperature=1.5, seed=2), lm_row()]
    r = post(charlm_url, {"dataframe_records": rows})
    assert r.status_code == 200, r.text
    texts = [p["text"] for p in r.json()["predictions"]]
    assert texts[0].startswith("The island") and len(texts[0]) == len("The island") + 30
    assert texts[1].startswith("The island é") and len(texts[1]) == len("The island é") + 30
    assert texts[2] == texts[0]  # same seed, same text


@ON_THE_CHARLM_SERVER
def test_offline_generate_gives_the_server_text(charlm_url, store):
    tmp, env = store
    text = post(charlm_url, {"dataframe_records": [lm_row()]}).json()["predictions"][0]["text"]
    cmd = [
        str(RNNPIPE),
        "charlm",
        "generate",
        "--prompt",
        "The island",
        "--length",
        "30",
        "--temperature",
        "0.8",
        "--seed",
        "1",
    ]
    proc = run(cmd, tmp, env)
    assert proc.stdout == text + "\n"
    assert (
        f"using models:/{CHARLM}@champion (version 1 in {env['MLFLOW_TRACKING_URI']})"
        in proc.stderr.splitlines()
    )
    bad = run(cmd[:4] + ["😀日本語"] + cmd[5:], tmp, env, check=False)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.splitlines()[-1].startswith(
        "rnnpipe charlm generate: error: row 0: 'prompt' holds only characters the model never saw"
    )


@pytest.mark.parametrize(
    "rows, fragments",
    [
        ([lm_row()] * 65, ["65 rows in one request; at most 64"]),
        ([], ["prompt"]),
        ([{"length": 30, "temperature": 0.8}], ["prompt"]),
        ([lm_row(prompt=None)], ["prompt"]),
        ([lm_row(prompt=12)], ["'prompt' must be a string"]),
        ([{"prompt": "The island", "temperature": 0.8}], ["length"]),
        ([{"prompt": "The island", "length": 5}], ["temperature"]),
        ([lm_row(prompt="")], ["'prompt' is empty"]),
        ([lm_row(prompt="😀日本語")], ["only characters the model never saw"]),
        ([lm_row(length=-5)], ["'length' must be between 0 and"]),
        ([lm_row(length=10**9)], ["'length' must be between 0 and"]),
        ([lm_row(temperature=0)], ["'temperature' must be > 0"]),
        ([lm_row(temperature=-1.5)], ["'temperature' must be > 0"]),
        ([lm_row(temperature="hot")], ["temperature"]),
    ],
)
@ON_THE_CHARLM_SERVER
def test_charlm_server_rejects_bad_input_and_keeps_serving(charlm_url, rows, fragments):
    assert_400(post(charlm_url, {"dataframe_records": rows}), *fragments)
    assert post(charlm_url, {"dataframe_records": [lm_row(length=5)]}).status_code == 200
