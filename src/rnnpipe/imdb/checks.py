"""check_raw and check_encoded: the data quality gates of the IMDb reviews (Great Expectations),
raw (after ingest) and encoded (after encode).

Each suite is one function of its params; each table function turns the data into the
DataFrame the suite reads (derived per-row columns, never one row per token). A stage that
passes writes its report (a DVC metric nothing depends on) and a stamp naming the data that
passed, which the next stages depend on.
"""

from __future__ import annotations

from pathlib import Path

import great_expectations as gx
import great_expectations.expectations as gxe
import numpy as np
import pandas as pd
from great_expectations.expectations.row_conditions import Column

from rnnpipe.core import gx as runner
from rnnpipe.core.commands import arg, command
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import Params
from rnnpipe.core.vocab import Vocabulary
from rnnpipe.imdb.params import ImdbCheckEncodedParams, ImdbCheckRawParams

LABELLED = ("train", "valid", "test")


def _balanced(split: str, tolerance: float) -> gxe.Expectation:
    return gxe.ExpectColumnMeanToBeBetween(
        column="label",
        min_value=0.5 - tolerance,
        max_value=0.5 + tolerance,
        row_condition=Column("split") == split,
        description=f"{split}: share of positive reviews within 0.5 ± {tolerance:g}",
    )


def raw_suite(p: ImdbCheckRawParams, include_unsup: bool) -> gx.ExpectationSuite:
    """What data/interim/imdb/reviews.parquet must satisfy."""
    splits = [*LABELLED, "unsup"] if include_unsup else list(LABELLED)
    train_valid = Column("split").is_in(["train", "valid"])
    expectations = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=["split", "id", "rating", "label", "movie", "text"],
            exact_match=False,
            description="the table has the columns split, id, rating, label, movie, text",
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="split", value_set=splits, description=f"split is one of {splits}"
        ),
        gxe.ExpectTableRowCountToEqual(
            value=p.test_size,
            row_condition=Column("split") == "test",
            description=f"test has {p.test_size} reviews",
        ),
        gxe.ExpectTableRowCountToEqual(
            value=p.train_valid_size,
            row_condition=train_valid,
            description=f"train + valid have {p.train_valid_size} reviews",
        ),
        gxe.ExpectTableRowCountToEqual(
            value=p.unsup_size if include_unsup else 0,
            row_condition=Column("split") == "unsup",
            description="unsup has the unlabelled reviews when ingested, else none",
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="label",
            value_set=[0, 1],
            row_condition=Column("split").is_in(LABELLED),
            description="labels of train, valid and test are 0 (neg) or 1 (pos)",
        ),
        *[_balanced(s, p.balance_tolerance) for s in LABELLED],
        gxe.ExpectColumnValuesToBeBetween(
            column="rating",
            min_value=1,
            max_value=4,
            row_condition=Column("label") == 0,
            description="negative reviews are rated 1..4",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="rating",
            min_value=7,
            max_value=10,
            row_condition=Column("label") == 1,
            description="positive reviews are rated 7..10",
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="text", description="no review text is null"),
        gxe.ExpectColumnValuesToMatchRegex(
            column="text", regex=r"\S", description="no review text is blank"
        ),
        gxe.ExpectColumnValueLengthsToBeBetween(
            column="text",
            min_value=p.min_text_chars,
            description=f"every review has at least {p.min_text_chars} characters",
        ),
        # ids restart in every folder of the archive (train/pos, train/neg, test/pos, ...), so
        # they repeat across splits and labels; within a split and label they must not
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["split", "label", "id"],
            description="ids are unique within a split and label",
        ),
        # valid was carved out of the train folders by movie: no movie may be in both
        gxe.ExpectColumnValuesToBeInSet(
            column="movie_in_train_and_valid",
            value_set=[False],
            row_condition=train_valid,
            description="valid shares no movie with train",
        ),
        gxe.ExpectColumnSumToBeBetween(
            column="text_in_train",
            max_value=p.max_test_duplicates,
            row_condition=Column("split") == "test",
            description=f"at most {p.max_test_duplicates} test reviews repeat a training "
            "review's text",
        ),
    ]
    if include_unsup:
        expectations += [
            gxe.ExpectColumnValuesToBeInSet(
                column="rating",
                value_set=[0],
                row_condition=Column("split") == "unsup",
                description="unlabelled reviews have rating 0",
            ),
            gxe.ExpectColumnValuesToBeInSet(
                column="label",
                value_set=[-1],
                row_condition=Column("split") == "unsup",
                description="unlabelled reviews have label -1",
            ),
        ]
    # built in one go: suite.add_expectation would need an active Data Context
    return gx.ExpectationSuite(name="imdb_raw.reviews", expectations=expectations)


def raw_table(reviews: pd.DataFrame) -> pd.DataFrame:
    """The reviews, plain dtypes so every expectation compares cleanly, and two derived columns:
    `movie_in_train_and_valid` (the review's movie has reviews in both; always False where no
    movie is known) and `text_in_train` (the text is also a train or valid review's)."""
    df = reviews.copy()
    for col in ("id", "rating", "label"):
        if col in df:
            df[col] = df[col].astype("int64")
    movie = df["movie"].fillna("") if "movie" in df else pd.Series("", index=df.index)
    known = movie != ""
    in_train = set(movie[known & (df["split"] == "train")])
    in_valid = set(movie[known & (df["split"] == "valid")])
    df["movie_in_train_and_valid"] = known & movie.isin(in_train & in_valid)
    training_texts = set(df.loc[df["split"].isin(["train", "valid"]), "text"])
    df["text_in_train"] = df["text"].isin(training_texts).astype("int64")
    return df


def _sequence_expectations(vocab_size: int, max_len: int) -> list:
    """The expectations on encoded reviews, over the columns of _sequence_stats."""
    return [
        gxe.ExpectColumnValuesToBeBetween(
            column="min_id", min_value=0, description="no negative token id"
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="max_id",
            max_value=vocab_size - 1,
            description=f"every token id is below the vocabulary size {vocab_size}",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="length",
            min_value=0,
            max_value=max_len,
            description=f"sequence lengths are within max_len {max_len}",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="tokens", min_value=1, description="no sequence is all padding"
        ),
        gxe.ExpectColumnPairValuesToBeEqual(
            column_A="length",
            column_B="tokens",
            description="`lengths` counts exactly the non-padding ids",
        ),
    ]


def _sequence_stats(ids: np.ndarray, lengths: np.ndarray, pad_id: int) -> dict:
    """Per-review columns of right-padded `ids` and their `lengths`: length, tokens (non-padding
    ids), min_id, max_id."""
    return {
        "length": np.asarray(lengths, dtype=np.int64),
        "tokens": (ids != pad_id).sum(axis=1).astype(np.int64),
        "min_id": ids.min(axis=1).astype(np.int64),
        "max_id": ids.max(axis=1).astype(np.int64),
    }


def encoded_suite(p: ImdbCheckEncodedParams, vocab_size: int, max_len: int) -> gx.ExpectationSuite:
    """What data/processed/imdb/{train,valid,test}.npz must satisfy (one row per review)."""
    return gx.ExpectationSuite(
        name="imdb_encoded.sequences",
        expectations=[
            *_sequence_expectations(vocab_size, max_len),
            gxe.ExpectColumnValuesToBeInSet(
                column="label", value_set=[0, 1], description="labels are 0 or 1"
            ),
            *[_balanced(s, p.balance_tolerance) for s in LABELLED],
            # oov_share sums to the split's OOV rate (see encoded_table)
            *[
                gxe.ExpectColumnSumToBeBetween(
                    column="oov_share",
                    max_value=p.max_oov_rate,
                    row_condition=Column("split") == s,
                    description=f"{s}: out-of-vocabulary rate at most {p.max_oov_rate:g}",
                )
                for s in ("valid", "test")
            ],
        ],
    )


def encoded_table(
    parts: dict[str, dict[str, np.ndarray]], pad_id: int, oov_id: int
) -> pd.DataFrame:
    """Per-review stats of each split's `ids`, `lengths`, `labels` arrays."""
    frames = []
    for split, arrays in parts.items():
        ids = np.asarray(arrays["ids"])
        n = len(ids)
        tokens = (ids != pad_id).sum(axis=1)
        oov = (ids == oov_id).sum(axis=1)
        frames.append(
            pd.DataFrame(
                {
                    "split": split,
                    "row": np.arange(n),
                    "label": np.asarray(arrays["labels"], dtype=np.int64),
                    **_sequence_stats(ids, arrays["lengths"], pad_id),
                    # each review's OOV tokens over all tokens of its split:
                    # sums to the split's rate
                    "oov_share": oov / max(int(tokens.sum()), 1),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def soft_suite(
    reviews: int, vocab_size: int, max_len: int, windows: bool = False
) -> gx.ExpectationSuite:
    """What data/processed/imdb/unsup_soft.npz (the teach stage's) must satisfy: `reviews`
    rows, then as many windows when `windows`."""
    rows = f"{reviews} reviews (imdb.student.unsup_reviews)"
    if windows:
        rows += " and a window of each (imdb.student.windows)"
    return gx.ExpectationSuite(
        name="imdb_soft_labels.soft_labels",
        expectations=[
            gxe.ExpectTableRowCountToEqual(value=reviews * (2 if windows else 1), description=rows),
            gxe.ExpectColumnValuesToBeBetween(
                column="label",
                min_value=0,
                max_value=1,
                description="labels are probabilities in [0, 1]",
            ),
            gxe.ExpectColumnValuesToNotBeNull(column="label", description="no NaN label"),
            # a teacher that calls nearly every review positive (or negative) is broken; the
            # bounds are loose, as the unlabelled reviews need not be balanced
            gxe.ExpectColumnMeanToBeBetween(
                column="label",
                min_value=0.05,
                max_value=0.95,
                description="the mean probability is within [0.05, 0.95]",
            ),
            *_sequence_expectations(vocab_size, max_len),
        ],
    )


def soft_table(
    ids: np.ndarray, lengths: np.ndarray, labels: np.ndarray, pad_id: int
) -> pd.DataFrame:
    """Per-review stats of the soft-labelled reviews (NaN labels kept as NaN)."""
    ids = np.asarray(ids)
    return pd.DataFrame(
        {
            "row": np.arange(len(ids)),
            "label": np.asarray(labels, dtype=np.float64),
            **_sequence_stats(ids, lengths, pad_id),
        }
    )


def _load_parts(processed: Path, keys: tuple[str, ...]) -> dict[str, dict[str, np.ndarray]]:
    parts = {}
    for part in LABELLED:
        path = processed / f"{part}.npz"
        try:
            with np.load(path) as npz:
                missing = [k for k in keys if k not in npz.files]
                if missing:
                    raise PipelineError(f"{path}: missing array(s) {', '.join(missing)}")
                parts[part] = {k: npz[k] for k in keys}
        except (OSError, ValueError) as e:
            raise PipelineError(f"cannot read {path}: {e}") from None
    return parts


@command(
    "imdb",
    "check_raw",
    arg("reviews", type=Path, help="data/interim/imdb/reviews.parquet"),
    runner.REPORT,
    runner.STAMP,
    help="data quality gate on the ingested reviews (Great Expectations)",
)
def check_raw(params: Params, reviews: Path, report: Path, stamp: Path) -> None:
    try:
        df = pd.read_parquet(reviews)
    except (OSError, ValueError) as e:
        raise PipelineError(f"cannot read {reviews}: {e}") from None
    suite = raw_suite(params.imdb.check_raw, params.imdb.ingest.include_unsup)
    runner.validate(
        "imdb_raw",
        [runner.Table("reviews", raw_table(df), suite, ("split", "label", "id"))],
        report,
        files=[reviews],
    )
    runner.write_stamp(stamp, "imdb_raw", [reviews])


@command(
    "imdb",
    "check_encoded",
    arg("processed", type=Path, help="folder of vocab.json and train/valid/test.npz"),
    runner.REPORT,
    runner.STAMP,
    help="data quality gate on the encoded reviews (Great Expectations)",
)
def check_encoded(params: Params, processed: Path, report: Path, stamp: Path) -> None:
    vocab = Vocabulary.load(processed / "vocab.json")
    parts = _load_parts(processed, ("ids", "lengths", "labels"))
    table = encoded_table(parts, vocab.pad_id, vocab.oov_id)
    suite = encoded_suite(params.imdb.check_encoded, len(vocab), params.imdb.encode.max_len)
    files = [processed / "vocab.json", *(processed / f"{p}.npz" for p in LABELLED)]
    runner.validate(
        "imdb_encoded",
        [runner.Table("sequences", table, suite, ("split", "row"))],
        report,
        files=files,
    )
    runner.write_stamp(stamp, "imdb_encoded", files)
