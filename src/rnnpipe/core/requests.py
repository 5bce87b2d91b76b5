"""Checks on what a served model receives, called from the pyfuncs' predict.

A bad request raises MlflowException(INVALID_PARAMETER_VALUE): the MLflow scoring server answers
it with HTTP 400 and the message, and keeps serving; the offline CLI prints the message.
Long reviews are not rejected here: the sentiment model truncates them by its own policy
(params imdb.encode.max_len and truncate).

The caps on the number of reviews or rows in one request, and on the work of a generation
request, hold only inside MLflow's scoring server (which sets _MLFLOW_IS_IN_SERVING_ENVIRONMENT),
where they keep one request from holding the server. The server answers 504 to a request still
running after MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT seconds (60 by default), but the request
goes on computing: so a generation request is refused (400) when it needs more character steps
than the served model, as measured on that machine, writes in half that time (`step_cap`).
Offline, `pyfunc.load_model(...).predict(df)` takes any number, in chunks.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Container

import numpy as np
import pandas as pd
from mlflow.environment_variables import MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

# Bounds that keep one request from holding the server for minutes.
MAX_REVIEWS = 1024  # reviews in one request
MAX_REVIEW_CHARS = 5_000_000  # a 1 MB review is answered (truncated by the model)
MAX_ROWS = 64  # generation requests in one request
MAX_LENGTH = 5_000  # characters generated for one row (one recurrent step each)
MAX_PROMPT_CHARS = 10_000
MAX_TEMPERATURE = 100.0
TIME_SHARE = 0.5  # of the server's timeout: the most an accepted generation request may need


def serving() -> bool:
    """True inside MLflow's scoring server (`mlflow models serve`)."""
    return os.environ.get("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", "").lower() == "true"


def invalid(message: str) -> MlflowException:
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def request_timeout() -> int:
    """Seconds the scoring server gives a request (MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT)."""
    return MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT.get()


def longest_row(context: int | None = None) -> int:
    """The most character steps one row may need: the longest prompt (an attention model reads
    only its last `context` characters) and the longest length."""
    return min(context or MAX_PROMPT_CHARS, MAX_PROMPT_CHARS) + MAX_LENGTH


def character_steps(rows: list[dict], context: int | None = None) -> int:
    """The characters a model reads and writes for checked rows: prompt + length each, a prompt
    counted up to its last `context` characters when the model reads only those."""
    return sum(min(len(r["prompt"]), context or MAX_PROMPT_CHARS) + r["length"] for r in rows)


def step_cap(per_step: float, per_row_step: float, longest: int) -> int:
    """The most character steps (over all rows) a generation request may need, so that it
    needs at most TIME_SHARE of the server's timeout, for a model whose batched generation
    costs per_step seconds a step plus per_row_step for each row in the step. A request takes
    as many steps as its longest prompt and longest length together, at most `longest`
    (longest_row): the cap holds for any shape of request."""
    seconds = TIME_SHARE * request_timeout()
    if longest * (per_step + per_row_step) > seconds:  # even one row of `longest` is too long
        return int(seconds / (per_step + per_row_step))
    return int((seconds - longest * per_step) / per_row_step)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _values(model_input, column: str | None = None) -> list:
    """The request as a list of plain Python values (or row dicts when column is None)."""
    if isinstance(model_input, pd.DataFrame):
        if column is None:
            return model_input.to_dict("records")
        if column in model_input.columns:
            return model_input[column].tolist()
        if model_input.shape[1] == 1:
            return model_input.iloc[:, 0].tolist()
        raise invalid(f"expected one column of texts, got columns {list(model_input.columns)}")
    if isinstance(model_input, pd.Series | np.ndarray):
        return model_input.tolist()
    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, list | tuple):
        return list(model_input)
    if isinstance(model_input, dict):
        return [model_input] if column is None else _values(pd.DataFrame(model_input), column)
    raise invalid(f"unexpected input of type {type(model_input).__name__}")


def reviews(model_input) -> list[str]:
    """The reviews to score: a non-empty list of non-blank strings (any Unicode)."""
    texts = _values(model_input, "text")
    if not texts:
        raise invalid('no reviews: send {"inputs": ["a review", ...]}')
    if len(texts) > MAX_REVIEWS and serving():
        raise invalid(
            f"{len(texts)} reviews in one request; at most {MAX_REVIEWS} (score more "
            "offline: rnnpipe imdb predict --file, or mlflow.pyfunc.load_model)"
        )
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            got = "null" if _missing(t) else type(t).__name__
            raise invalid(f"review {i} must be a string, got {got}")
        if not t.strip():
            raise invalid(f"review {i} is empty")
        if len(t) > MAX_REVIEW_CHARS:
            raise invalid(f"review {i} has {len(t)} characters; at most {MAX_REVIEW_CHARS}")
    return texts


def _integer(row: dict, i: int, key: str, default: int | None = None) -> int:
    """row[key] as an int; `default` when absent (None: the field is required)."""
    v = row.get(key)
    if _missing(v):
        if default is None:
            raise invalid(f"row {i}: missing field '{key}'")
        return default
    ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and float(v).is_integer()
    if not ok:
        raise invalid(f"row {i}: '{key}' must be an integer, got {v!r}")
    return int(v)


def generation_requests(
    model_input, known: Container[str], max_steps: int | None = None, context: int | None = None
) -> list[dict]:
    """Rows of prompt, length, temperature (optional seed, top_k) -> checked dicts.

    `known`: the characters the model saw in training. A prompt may hold unseen characters
    (the model reads them as "unknown"), but not only those. `max_steps`: in the scoring
    server, the most character steps the request may need (step_cap), a prompt counted up to
    the model's `context` if it has one.
    """
    rows = _values(model_input)
    if not rows:
        raise invalid(
            'no rows: send {"dataframe_records": [{"prompt": "The island", '
            '"length": 200, "temperature": 0.8, "seed": 1}]}'
        )
    if len(rows) > MAX_ROWS and serving():
        raise invalid(
            f"{len(rows)} rows in one request; at most {MAX_ROWS} (generate more "
            "offline with mlflow.pyfunc.load_model)"
        )
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise invalid(f"row {i} must be an object with prompt, length, temperature")
        prompt = row.get("prompt")
        if _missing(prompt):
            raise invalid(f"row {i}: missing field 'prompt'")
        if not isinstance(prompt, str):
            raise invalid(f"row {i}: 'prompt' must be a string, got {type(prompt).__name__}")
        if not prompt:
            raise invalid(f"row {i}: 'prompt' is empty; give at least one character")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise invalid(
                f"row {i}: 'prompt' has {len(prompt)} characters; at most {MAX_PROMPT_CHARS}"
            )
        if not any(c in known for c in prompt):
            raise invalid(f"row {i}: 'prompt' holds only characters the model never saw")
        length = _integer(row, i, "length")
        if not 0 <= length <= MAX_LENGTH:
            raise invalid(f"row {i}: 'length' must be between 0 and {MAX_LENGTH}, got {length}")
        temperature = row.get("temperature")
        if _missing(temperature):
            raise invalid(f"row {i}: missing field 'temperature'")
        if not isinstance(temperature, numbers.Real) or isinstance(temperature, bool):
            raise invalid(f"row {i}: 'temperature' must be a number, got {temperature!r}")
        if not 0 < temperature <= MAX_TEMPERATURE:
            raise invalid(
                f"row {i}: 'temperature' must be > 0 and <= {MAX_TEMPERATURE:g}, got {temperature}"
            )
        seed = _integer(row, i, "seed", default=0)
        if seed < 0:
            raise invalid(f"row {i}: 'seed' must be >= 0, got {seed}")
        top_k = _integer(row, i, "top_k", default=0)  # 0: no top-k restriction
        if top_k < 0:
            raise invalid(f"row {i}: 'top_k' must be >= 1, got {top_k}")
        out.append(
            {
                "prompt": prompt,
                "length": length,
                "temperature": float(temperature),
                "seed": seed,
                "top_k": top_k or None,
            }
        )
    if max_steps is not None and serving():
        _check_steps(out, max_steps, context)
    return out


def _check_steps(rows: list[dict], max_steps: int, context: int | None) -> None:
    need = character_steps(rows, context)
    if need > max_steps:
        counted = (
            "rows x (prompt + length)"
            if context is None
            else f"rows x (prompt + length), a prompt counted up to {context:,} characters"
        )
        raise invalid(
            f"this request needs {need:,} character steps; this server accepts at "
            f"most {max_steps:,} per request ({counted}); send fewer or shorter rows"
        )
