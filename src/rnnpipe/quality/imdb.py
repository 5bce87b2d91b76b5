"""Expectation suites for the IMDb reviews: raw (after ingest) and encoded (after encode).

Each suite is one function of its params; each table function turns the data into the
DataFrame the suite reads (derived per-row columns, never one row per token).
"""

from __future__ import annotations

import great_expectations as gx
import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
from great_expectations.expectations.row_conditions import Column

from rnnpipe.params import ImdbCheckEncodedParams, ImdbCheckRawParams

LABELLED = ("train", "valid", "test")


def _balanced(split: str, tolerance: float) -> gxe.Expectation:
    return gxe.ExpectColumnMeanToBeBetween(
        column="label", min_value=0.5 - tolerance, max_value=0.5 + tolerance,
        row_condition=Column("split") == split,
        description=f"{split}: share of positive reviews within 0.5 ± {tolerance:g}")


def raw_suite(p: ImdbCheckRawParams, include_unsup: bool) -> gx.ExpectationSuite:
    """What data/interim/imdb/reviews.parquet must satisfy."""
    splits = [*LABELLED, "unsup"] if include_unsup else list(LABELLED)
    train_valid = Column("split").is_in(["train", "valid"])
    expectations = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=["split", "id", "rating", "label", "text"], exact_match=False,
            description="the table has the columns split, id, rating, label, text"),
        gxe.ExpectColumnValuesToBeInSet(
            column="split", value_set=splits, description=f"split is one of {splits}"),
        gxe.ExpectTableRowCountToEqual(
            value=p.test_size, row_condition=Column("split") == "test",
            description=f"test has {p.test_size} reviews"),
        gxe.ExpectTableRowCountToEqual(
            value=p.train_valid_size, row_condition=train_valid,
            description=f"train + valid have {p.train_valid_size} reviews"),
        gxe.ExpectTableRowCountToEqual(
            value=p.unsup_size if include_unsup else 0, row_condition=Column("split") == "unsup",
            description="unsup has the unlabelled reviews when ingested, else none"),
        gxe.ExpectColumnValuesToBeInSet(
            column="label", value_set=[0, 1], row_condition=Column("split").is_in(LABELLED),
            description="labels of train, valid and test are 0 (neg) or 1 (pos)"),
        *[_balanced(s, p.balance_tolerance) for s in LABELLED],
        gxe.ExpectColumnValuesToBeBetween(
            column="rating", min_value=1, max_value=4, row_condition=Column("label") == 0,
            description="negative reviews are rated 1..4"),
        gxe.ExpectColumnValuesToBeBetween(
            column="rating", min_value=7, max_value=10, row_condition=Column("label") == 1,
            description="positive reviews are rated 7..10"),
        gxe.ExpectColumnValuesToNotBeNull(column="text", description="no review text is null"),
        gxe.ExpectColumnValuesToMatchRegex(
            column="text", regex=r"\S", description="no review text is blank"),
        gxe.ExpectColumnValueLengthsToBeBetween(
            column="text", min_value=p.min_text_chars,
            description=f"every review has at least {p.min_text_chars} characters"),
        # ids restart in every folder of the archive (train/pos, train/neg, test/pos, ...), so
        # they repeat across splits and labels; within a split and label they must not
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["split", "label", "id"],
            description="ids are unique within a split and label"),
        # valid was carved out of the train folders: no review may be in both
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["label", "id"], row_condition=train_valid,
            description="valid is disjoint from train (no label+id in both)"),
    ]
    if include_unsup:
        expectations += [
            gxe.ExpectColumnValuesToBeInSet(
                column="rating", value_set=[0], row_condition=Column("split") == "unsup",
                description="unlabelled reviews have rating 0"),
            gxe.ExpectColumnValuesToBeInSet(
                column="label", value_set=[-1], row_condition=Column("split") == "unsup",
                description="unlabelled reviews have label -1"),
        ]
    # built in one go: suite.add_expectation would need an active Data Context
    return gx.ExpectationSuite(name="imdb_raw.reviews", expectations=expectations)


def raw_table(reviews: pd.DataFrame) -> pd.DataFrame:
    """The reviews as they are; plain dtypes so every expectation compares cleanly."""
    df = reviews.copy()
    for col in ("id", "rating", "label"):
        if col in df:
            df[col] = df[col].astype("int64")
    return df


def encoded_suite(p: ImdbCheckEncodedParams, vocab_size: int, max_len: int
                  ) -> gx.ExpectationSuite:
    """What data/processed/imdb/{train,valid,test}.npz must satisfy (one row per review)."""
    return gx.ExpectationSuite(name="imdb_encoded.sequences", expectations=[
        gxe.ExpectColumnValuesToBeBetween(
            column="min_id", min_value=0, description="no negative token id"),
        gxe.ExpectColumnValuesToBeBetween(
            column="max_id", max_value=vocab_size - 1,
            description=f"every token id is below the vocabulary size {vocab_size}"),
        gxe.ExpectColumnValuesToBeBetween(
            column="length", min_value=0, max_value=max_len,
            description=f"sequence lengths are within max_len {max_len}"),
        gxe.ExpectColumnValuesToBeBetween(
            column="tokens", min_value=1, description="no sequence is all padding"),
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A="length", column_B="tokens",
            description="`lengths` counts exactly the non-padding ids"),
        gxe.ExpectColumnValuesToBeInSet(
            column="label", value_set=[0, 1], description="labels are 0 or 1"),
        *[_balanced(s, p.balance_tolerance) for s in LABELLED],
        # oov_share sums to the split's OOV rate (see encoded_table)
        *[gxe.ExpectColumnSumToBeBetween(
            column="oov_share", max_value=p.max_oov_rate, row_condition=Column("split") == s,
            description=f"{s}: out-of-vocabulary rate at most {p.max_oov_rate:g}")
          for s in ("valid", "test")],
    ])


def encoded_table(parts: dict[str, dict[str, np.ndarray]], pad_id: int, oov_id: int
                  ) -> pd.DataFrame:
    """Per-review stats of each split's `ids`, `lengths`, `labels` arrays."""
    frames = []
    for split, arrays in parts.items():
        ids = np.asarray(arrays["ids"])
        n = len(ids)
        tokens = (ids != pad_id).sum(axis=1)
        oov = (ids == oov_id).sum(axis=1)
        frames.append(pd.DataFrame({
            "split": split,
            "row": np.arange(n),
            "label": np.asarray(arrays["labels"], dtype=np.int64),
            "length": np.asarray(arrays["lengths"], dtype=np.int64),
            "tokens": tokens.astype(np.int64),
            "min_id": ids.min(axis=1).astype(np.int64),
            "max_id": ids.max(axis=1).astype(np.int64),
            # each review's OOV tokens over all tokens of its split: sums to the split's rate
            "oov_share": oov / max(int(tokens.sum()), 1),
        }))
    return pd.concat(frames, ignore_index=True)
