"""check_raw and check_encoded: the data quality gates of the novel (Great Expectations), raw
corpus (after ingest) and encoded parts (after encode).

The corpus is one string, so the raw suite reads a one-row table of whole-corpus measures; the
encoded suite reads one row per part (train, valid, test).
"""

from __future__ import annotations

from pathlib import Path

import great_expectations as gx
import great_expectations.expectations as gxe
import numpy as np
import pandas as pd

from rnnpipe.charlm.params import CharlmCheckEncodedParams, CharlmCheckRawParams
from rnnpipe.core import gx as runner
from rnnpipe.core.commands import arg, command
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import Params
from rnnpipe.core.vocab import Vocabulary

LICENCE = "Project Gutenberg"
PARTS = ("train", "valid", "test")


def raw_suite(p: CharlmCheckRawParams) -> gx.ExpectationSuite:
    """What data/interim/charlm/corpus.txt must satisfy."""
    return gx.ExpectationSuite(
        name="charlm_raw.corpus",
        expectations=[
            gxe.ExpectColumnValuesToBeBetween(
                column="chars",
                min_value=p.min_chars,
                max_value=p.max_chars,
                description=f"the corpus has {p.min_chars}..{p.max_chars} characters",
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="distinct_chars",
                max_value=p.max_distinct_chars,
                description=f"at most {p.max_distinct_chars} distinct characters",
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="licence_mentions",
                min_value=0,
                max_value=0,
                description=f"no licence header or footer left: {LICENCE!r} never occurs",
            ),
            gxe.ExpectColumnValuesToBeInSet(
                column="first_line",
                value_set=[p.first_line],
                description=f"the first line is the title {p.first_line!r}",
            ),
        ],
    )


def raw_table(corpus: str) -> pd.DataFrame:
    """One row of whole-corpus measures; `licence_line` shows where the licence text is."""
    first = corpus.split("\n", 1)[0]
    licence_line = next((line for line in corpus.split("\n") if LICENCE in line), "")
    return pd.DataFrame(
        {
            "chars": [len(corpus)],
            "distinct_chars": [len(set(corpus))],
            "licence_mentions": [corpus.count(LICENCE)],
            "first_line": [first.strip()],
            "licence_line": [licence_line.strip()],
        }
    )


def encoded_suite(
    p: CharlmCheckEncodedParams, fractions: dict[str, float], vocab_size: int
) -> gx.ExpectationSuite:
    """What data/processed/charlm/{train,valid,test}.npz must satisfy (one row per part)."""
    tol = p.size_tolerance_chars
    shares = ", ".join(f"{k} {v:g}" for k, v in fractions.items())
    return gx.ExpectationSuite(
        name="charlm_encoded.parts",
        expectations=[
            gxe.ExpectColumnValuesToBeInSet(
                column="part", value_set=list(PARTS), description="the parts are train, valid, test"
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="min_id", min_value=0, description="no negative character id"
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="max_id",
                max_value=vocab_size - 1,
                description=f"every character id is within the vocabulary ({vocab_size} ids)",
            ),
            gxe.ExpectColumnValuesToBeBetween(
                column="size_error",
                min_value=-tol,
                max_value=tol,
                description=f"part sizes match the split fractions ({shares}) within ±{tol} chars",
            ),
            # train starts at 0, valid right after train, test right after valid: held-out text
            # comes after the training text and nothing overlaps
            gxe.ExpectColumnValuesToBeBetween(
                column="start_error",
                min_value=0,
                max_value=0,
                description="each part starts where the one before it ends (train at 0)",
            ),
        ],
    )


def encoded_table(
    parts: dict[str, dict[str, np.ndarray]], fractions: dict[str, float]
) -> pd.DataFrame:
    """One row per part: size, start, id range, and the errors against the expected layout."""
    sizes = {k: len(parts[k]["ids"]) for k in PARTS}
    total = sum(sizes.values())
    rows, expected_start = [], 0
    for k in PARTS:
        ids = np.asarray(parts[k]["ids"])
        start = int(parts[k]["start"])
        rows.append(
            {
                "part": k,
                "size": sizes[k],
                "start": start,
                "min_id": int(ids.min()) if len(ids) else 0,
                "max_id": int(ids.max()) if len(ids) else 0,
                "size_error": sizes[k] - fractions[k] * total,
                "start_error": start - expected_start,
            }
        )
        expected_start += sizes[k]
    return pd.DataFrame(rows)


@command(
    "charlm",
    "check_raw",
    arg("corpus", type=Path, help="data/interim/charlm/corpus.txt"),
    runner.REPORT,
    runner.STAMP,
    help="data quality gate on the novel's text (Great Expectations)",
)
def check_raw(params: Params, corpus: Path, report: Path, stamp: Path) -> None:
    try:
        text = corpus.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PipelineError(f"cannot read {corpus}: {e}") from None
    suite = raw_suite(params.charlm.check_raw)
    runner.validate(
        "charlm_raw",
        [runner.Table("corpus", raw_table(text), suite, ("licence_line",))],
        report,
        files=[corpus],
    )
    runner.write_stamp(stamp, "charlm_raw", [corpus])


@command(
    "charlm",
    "check_encoded",
    arg("processed", type=Path, help="folder of vocab.json and train/valid/test.npz"),
    runner.REPORT,
    runner.STAMP,
    help="data quality gate on the encoded novel (Great Expectations)",
)
def check_encoded(params: Params, processed: Path, report: Path, stamp: Path) -> None:
    vocab = Vocabulary.load(processed / "vocab.json")
    parts = {}
    for part in PARTS:
        path = processed / f"{part}.npz"
        try:
            with np.load(path) as npz:
                parts[part] = {"ids": npz["ids"], "start": npz["start"]}
        except (OSError, KeyError, ValueError) as e:
            raise PipelineError(f"cannot read {path}: {e}") from None
    p = params.charlm.encode
    fractions = {"train": p.train_fraction, "valid": p.valid_fraction, "test": p.test_fraction}
    table = encoded_table(parts, fractions)
    suite = encoded_suite(params.charlm.check_encoded, fractions, len(vocab))
    files = [processed / "vocab.json", *(processed / f"{p}.npz" for p in PARTS)]
    runner.validate(
        "charlm_encoded", [runner.Table("parts", table, suite, ("part",))], report, files=files
    )
    runner.write_stamp(stamp, "charlm_encoded", files)
