"""What a served model accepts (rnnpipe.core.requests): bad requests are HTTP 400 with a
message naming the field."""

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException

from rnnpipe.core import requests as validation

KNOWN = set("abcdefghijklmnopqrstuvwxyz TI")


def rejected(fn, *args, match):
    with pytest.raises(MlflowException, match=match) as e:
        fn(*args)
    assert e.value.get_http_status_code() == 400


def test_reviews_accept_lists_arrays_and_frames_of_text():
    assert validation.reviews(["good film", "bad"]) == ["good film", "bad"]
    assert validation.reviews(np.array(["a", "b"])) == ["a", "b"]
    assert validation.reviews(pd.DataFrame({"text": ["x"]})) == ["x"]
    assert validation.reviews(pd.DataFrame({0: ["y"]})) == ["y"]
    assert validation.reviews("one review") == ["one review"]
    emoji = ["Loved it 😀, très bien, 素晴らしい"]
    assert validation.reviews(emoji) == emoji
    long = ["word " * 200_000]  # 1 MB: accepted, the model truncates it
    assert validation.reviews(long) == long


def test_reviews_reject_bad_input_with_400():
    rejected(validation.reviews, [], match="no reviews")
    rejected(validation.reviews, ["fine", 3], match="review 1 must be a string, got int")
    rejected(validation.reviews, [None], match="review 0 must be a string, got null")
    rejected(validation.reviews, np.array([1.5]), match="got float")
    rejected(validation.reviews, ["ok", "  "], match="review 1 is empty")
    rejected(validation.reviews, pd.DataFrame({"a": ["x"], "b": ["y"]}), match="one column")


def row(**kw):
    return {"prompt": "The island", "length": 20, "temperature": 0.8} | kw


def test_generation_requests_fill_defaults_and_accept_unseen_characters_among_known():
    [r] = validation.generation_requests(pd.DataFrame([row()]), KNOWN)
    assert r == {"prompt": "The island", "length": 20, "temperature": 0.8, "seed": 0, "top_k": None}
    [r] = validation.generation_requests([row(prompt="The é island", seed=3.0, top_k=5)], KNOWN)
    assert r["seed"] == 3 and r["top_k"] == 5 and r["prompt"] == "The é island"
    assert validation.generation_requests([row(length=0)], KNOWN)[0]["length"] == 0


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"prompt": None}, "missing field 'prompt'"),
        ({"prompt": float("nan")}, "missing field 'prompt'"),
        ({"prompt": 12}, "'prompt' must be a string"),
        ({"prompt": ""}, "'prompt' is empty"),
        ({"prompt": "😀日本"}, "'prompt' holds only characters the model never saw"),
        ({"length": None}, "missing field 'length'"),
        ({"length": -1}, "'length' must be between 0 and"),
        ({"length": 10**9}, "'length' must be between 0 and"),
        ({"length": 2.5}, "'length' must be an integer"),
        ({"length": "ten"}, "'length' must be an integer"),
        ({"temperature": 0}, "'temperature' must be > 0"),
        ({"temperature": -1.0}, "'temperature' must be > 0"),
        ({"temperature": float("inf")}, "'temperature' must be > 0"),
        ({"temperature": None}, "missing field 'temperature'"),
        ({"temperature": "hot"}, "'temperature' must be a number"),
        ({"seed": -3}, "'seed' must be >= 0"),
        ({"top_k": -1}, "'top_k' must be >= 1"),
    ],
)
def test_generation_requests_reject_bad_rows_with_400(bad, match):
    rejected(validation.generation_requests, [row(), row(**bad)], KNOWN, match=f"row 1: {match}")


def test_generation_requests_reject_empty_and_oversized_requests():
    rejected(validation.generation_requests, pd.DataFrame(), KNOWN, match="no rows")
    rejected(validation.generation_requests, [], KNOWN, match="no rows")
    rejected(validation.generation_requests, ["The island"], KNOWN, match="row 0 must be an")


SERVING = "_MLFLOW_IS_IN_SERVING_ENVIRONMENT"  # set by MLflow's scoring server


def test_request_size_caps_hold_in_the_scoring_server_only(monkeypatch):
    monkeypatch.delenv(SERVING, raising=False)
    assert not validation.serving()
    assert len(validation.reviews(["x"] * 5000)) == 5000  # offline: any number
    assert len(validation.generation_requests([row()] * 100, KNOWN)) == 100
    monkeypatch.setenv(SERVING, "true")
    assert validation.serving()
    assert len(validation.reviews(["x"] * validation.MAX_REVIEWS)) == validation.MAX_REVIEWS
    rejected(validation.reviews, ["x"] * 2000, match="at most 1024")
    rejected(validation.generation_requests, [row()] * 100, KNOWN, match="at most 64")


def test_the_work_of_a_generation_request_is_its_characters_read_and_written():
    rows = [row(length=20), row(prompt="x" * 500, length=0), row(prompt="ab", length=5000)]
    assert validation.character_steps(rows) == 30 + 500 + 5002
    # an attention model reads only the last `context` characters of a prompt
    assert validation.character_steps(rows, context=100) == 30 + 100 + 5002
    assert validation.longest_row() == validation.MAX_PROMPT_CHARS + validation.MAX_LENGTH
    assert validation.longest_row(100) == 100 + validation.MAX_LENGTH


@pytest.mark.parametrize(
    "timeout, per_step, per_row_step, longest, cap",
    [
        # half of 60 s: one row of 15,000 steps takes 0.75 s, then 1 ms per row step
        (None, 0.00005, 0.001, 15_000, 29_250),
        (60, 0.00005, 0.001, 15_000, 29_250),
        # 10 s: one row of 15,000 steps would take 16.5 s alone: 5 s / 1.1 ms
        (10, 0.001, 0.0001, 15_000, 4_545),
        (120, 0.002, 0.0005, 5_100, 99_599),  # (60 s - 10.2 s) / 0.5 ms, rounded down
    ],
)
def test_the_step_cap_keeps_any_accepted_request_inside_half_the_timeout(
    monkeypatch, timeout, per_step, per_row_step, longest, cap
):
    name = "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT"
    if timeout is None:
        monkeypatch.delenv(name, raising=False)  # MLflow's default: 60 s
    else:
        monkeypatch.setenv(name, str(timeout))
    seconds = validation.request_timeout() * validation.TIME_SHARE
    got = validation.step_cap(per_step, per_row_step, longest)
    assert got == cap
    # the costliest requests within the cap: one row as long as can be, or all rows short
    for longest_row in (min(longest, got), 1):
        assert longest_row * per_step + got * per_row_step <= seconds + 1e-9


def test_generation_requests_over_the_step_cap_are_refused_in_the_server_only(monkeypatch):
    rows = [row(length=90)] * 10  # 10 x (10 + 90) = 1,000 steps
    monkeypatch.delenv(SERVING, raising=False)
    assert len(validation.generation_requests(rows, KNOWN, max_steps=999)) == 10
    monkeypatch.setenv(SERVING, "true")
    assert len(validation.generation_requests(rows, KNOWN, max_steps=1000)) == 10
    assert len(validation.generation_requests(rows, KNOWN)) == 10  # no cap given
    rejected(
        validation.generation_requests,
        rows,
        KNOWN,
        999,
        match=r"^this request needs 1,000 character steps; this server accepts at most "
        r"999 per request \(rows x \(prompt \+ length\)\); send fewer or shorter "
        r"rows$",
    )
    long_prompts = [row(prompt="The island " * 100, length=90)] * 10
    assert len(validation.generation_requests(long_prompts, KNOWN, 1000, context=10)) == 10
    rejected(
        validation.generation_requests,
        long_prompts,
        KNOWN,
        999,
        10,
        match=r"needs 1,000 character steps; .* at most 999 per request \(rows x \(prompt "
        r"\+ length\), a prompt counted up to 10 characters\)",
    )
    # a bad field is still named first
    rejected(
        validation.generation_requests,
        [*rows, row(length=-1)],
        KNOWN,
        999,
        match="row 10: 'length' must be between 0 and",
    )
