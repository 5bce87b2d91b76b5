"""Expectation suites for the novel: raw corpus (after ingest) and encoded parts (after encode).

The corpus is one string, so the raw suite reads a one-row table of whole-corpus measures; the
encoded suite reads one row per part (train, valid, test).
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe
import numpy as np
import pandas as pd

from rnnpipe.params import CharlmCheckEncodedParams, CharlmCheckRawParams

LICENCE = "Project Gutenberg"
PARTS = ("train", "valid", "test")


def raw_suite(p: CharlmCheckRawParams) -> gx.ExpectationSuite:
    """What data/interim/charlm/corpus.txt must satisfy."""
    return gx.ExpectationSuite(name="charlm_raw.corpus", expectations=[
        gxe.ExpectColumnValuesToBeBetween(
            column="chars", min_value=p.min_chars, max_value=p.max_chars,
            description=f"the corpus has {p.min_chars}..{p.max_chars} characters"),
        gxe.ExpectColumnValuesToBeBetween(
            column="distinct_chars", max_value=p.max_distinct_chars,
            description=f"at most {p.max_distinct_chars} distinct characters"),
        gxe.ExpectColumnValuesToBeBetween(
            column="licence_mentions", min_value=0, max_value=0,
            description=f"no licence header or footer left: {LICENCE!r} never occurs"),
        gxe.ExpectColumnValuesToBeInSet(
            column="first_line", value_set=[p.first_line],
            description=f"the first line is the title {p.first_line!r}"),
    ])


def raw_table(corpus: str) -> pd.DataFrame:
    """One row of whole-corpus measures; `licence_line` shows where the licence text is."""
    first = corpus.split("\n", 1)[0]
    licence_line = next((line for line in corpus.split("\n") if LICENCE in line), "")
    return pd.DataFrame({
        "chars": [len(corpus)],
        "distinct_chars": [len(set(corpus))],
        "licence_mentions": [corpus.count(LICENCE)],
        "first_line": [first.strip()],
        "licence_line": [licence_line.strip()],
    })


def encoded_suite(p: CharlmCheckEncodedParams, fractions: dict[str, float], vocab_size: int
                  ) -> gx.ExpectationSuite:
    """What data/processed/charlm/{train,valid,test}.npz must satisfy (one row per part)."""
    tol = p.size_tolerance_chars
    shares = ", ".join(f"{k} {v:g}" for k, v in fractions.items())
    return gx.ExpectationSuite(name="charlm_encoded.parts", expectations=[
        gxe.ExpectColumnValuesToBeInSet(
            column="part", value_set=list(PARTS), description="the parts are train, valid, test"),
        gxe.ExpectColumnValuesToBeBetween(
            column="min_id", min_value=0, description="no negative character id"),
        gxe.ExpectColumnValuesToBeBetween(
            column="max_id", max_value=vocab_size - 1,
            description=f"every character id is within the vocabulary ({vocab_size} ids)"),
        gxe.ExpectColumnValuesToBeBetween(
            column="size_error", min_value=-tol, max_value=tol,
            description=f"part sizes match the split fractions ({shares}) within ±{tol} chars"),
        # train starts at 0, valid right after train, test right after valid: held-out text
        # comes after the training text and nothing overlaps
        gxe.ExpectColumnValuesToBeBetween(
            column="start_error", min_value=0, max_value=0,
            description="each part starts where the one before it ends (train at 0)"),
    ])


def encoded_table(parts: dict[str, dict[str, np.ndarray]], fractions: dict[str, float]
                  ) -> pd.DataFrame:
    """One row per part: size, start, id range, and the errors against the expected layout."""
    sizes = {k: len(parts[k]["ids"]) for k in PARTS}
    total = sum(sizes.values())
    rows, expected_start = [], 0
    for k in PARTS:
        ids = np.asarray(parts[k]["ids"])
        start = int(parts[k]["start"])
        rows.append({
            "part": k,
            "size": sizes[k],
            "start": start,
            "min_id": int(ids.min()) if len(ids) else 0,
            "max_id": int(ids.max()) if len(ids) else 0,
            "size_error": sizes[k] - fractions[k] * total,
            "start_error": start - expected_start,
        })
        expected_start += sizes[k]
    return pd.DataFrame(rows)
