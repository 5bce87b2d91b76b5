"""check_raw and check_encoded: data quality gates (Great Expectations) for both projects.

Each writes a JSON report (a DVC metric) and the Data Docs under the report's folder, and
fails the stage, so nothing downstream runs, when an expectation fails.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from rnnpipe.errors import PipelineError
from rnnpipe.params import Params
from rnnpipe.stages import arg, command
from rnnpipe.text.vocab import Vocabulary

PARTS = ("train", "valid", "test")
REPORT = arg("report", type=Path, help="JSON report; Data Docs go to docs/ beside it")


def _load_parts(processed: Path, keys: tuple[str, ...]) -> dict[str, dict[str, np.ndarray]]:
    parts = {}
    for part in PARTS:
        path = processed / f"{part}.npz"
        try:
            with np.load(path) as npz:
                missing = [k for k in keys if k not in npz.files]
                if missing:
                    raise PipelineError(f"{path}: missing array(s) {', '.join(missing)}")
                parts[part] = {k: npz[k] for k in keys}
        except (OSError, ValueError, zipfile.BadZipFile) as e:
            raise PipelineError(f"cannot read {path}: {e}") from None
    return parts


@command("imdb", "check_raw",
         arg("reviews", type=Path, help="data/interim/imdb/reviews.parquet"), REPORT,
         help="data quality gate on the ingested reviews (Great Expectations)")
def check_raw_imdb(params: Params, reviews: Path, report: Path) -> None:
    from rnnpipe.quality import imdb, runner

    try:
        df = pd.read_parquet(reviews)
    except (OSError, ValueError) as e:
        raise PipelineError(f"cannot read {reviews}: {e}") from None
    suite = imdb.raw_suite(params.imdb.check_raw, params.imdb.ingest.include_unsup)
    runner.validate("imdb_raw", [runner.Table("reviews", imdb.raw_table(df), suite,
                                              ("split", "label", "id"))], report)


@command("charlm", "check_raw",
         arg("corpus", type=Path, help="data/interim/charlm/corpus.txt"), REPORT,
         help="data quality gate on the novel's text (Great Expectations)")
def check_raw_charlm(params: Params, corpus: Path, report: Path) -> None:
    from rnnpipe.quality import charlm, runner

    try:
        text = corpus.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PipelineError(f"cannot read {corpus}: {e}") from None
    suite = charlm.raw_suite(params.charlm.check_raw)
    runner.validate("charlm_raw", [runner.Table("corpus", charlm.raw_table(text), suite,
                                                ("licence_line",))], report)


@command("imdb", "check_encoded",
         arg("processed", type=Path, help="folder of vocab.json and train/valid/test.npz"),
         REPORT, help="data quality gate on the encoded reviews (Great Expectations)")
def check_encoded_imdb(params: Params, processed: Path, report: Path) -> None:
    from rnnpipe.quality import imdb, runner

    vocab = Vocabulary.load(processed / "vocab.json")
    parts = _load_parts(processed, ("ids", "lengths", "labels"))
    table = imdb.encoded_table(parts, vocab.pad_id, vocab.oov_id)
    suite = imdb.encoded_suite(params.imdb.check_encoded, len(vocab), params.imdb.encode.max_len)
    runner.validate("imdb_encoded", [runner.Table("sequences", table, suite, ("split", "row"))],
                    report)


@command("charlm", "check_encoded",
         arg("processed", type=Path, help="folder of vocab.json and train/valid/test.npz"),
         REPORT, help="data quality gate on the encoded novel (Great Expectations)")
def check_encoded_charlm(params: Params, processed: Path, report: Path) -> None:
    from rnnpipe.quality import charlm, runner

    vocab = Vocabulary.load(processed / "vocab.json")
    parts = _load_parts(processed, ("ids", "start"))
    p = params.charlm.encode
    fractions = {"train": p.train_fraction, "valid": p.valid_fraction, "test": p.test_fraction}
    table = charlm.encoded_table(parts, fractions)
    suite = charlm.encoded_suite(params.charlm.check_encoded, fractions, len(vocab))
    runner.validate("charlm_encoded", [runner.Table("parts", table, suite, ("part",))], report)
