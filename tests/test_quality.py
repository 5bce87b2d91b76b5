"""Data quality gates: each suite passes on good tiny data and names the expectation that
breaks on data broken the way it guards against; each check logs an MLflow run of its own."""

import functools
import hashlib
import json
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from rnnpipe import cli
from rnnpipe.charlm import checks as charlm
from rnnpipe.charlm.params import CharlmCheckEncodedParams, CharlmCheckRawParams
from rnnpipe.core import gx as runner
from rnnpipe.core.errors import PipelineError
from rnnpipe.imdb import checks as imdb
from rnnpipe.imdb import ingest
from rnnpipe.imdb.params import ImdbCheckEncodedParams, ImdbCheckRawParams
from tests import tinydata
from tests.conftest import TINY_PARAMS

RAW = ImdbCheckRawParams(test_size=40, train_valid_size=40, unsup_size=10)
CHAR_RAW = CharlmCheckRawParams(min_chars=10_000, max_chars=40_000)
FRACTIONS = {"train": 0.9, "valid": 0.05, "test": 0.05}
VOCAB, MAX_LEN = 50, 20


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch, copy_empty_store):
    """tmp_path as the project's root, with an MLflow store of its own for the checks' runs."""
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", copy_empty_store(tmp_path))
    monkeypatch.delenv("DVC_STAGE", raising=False)
    yield tmp_path
    mlflow.end_run()


def check_runs(root, project) -> list:
    """The runs of `project`'s experiment in the store at `root`, oldest first."""
    client = mlflow.MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"rnnpipe-{project}")
    assert experiment.artifact_location == (root / "mlartifacts").as_uri()
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time"])


def artifact(run, path):
    return Path(urlparse(run.info.artifact_uri).path) / path


def balanced_archive(path):
    """A tiny archive of 4 movies of 5 reviews per folder: a grouped valid split of 0.25
    takes one positive and one negative movie, so every split is exactly balanced (with 2
    reviews a movie, 10 single-label movies a label cannot be cut into 4 equal folds)."""
    return tinydata.write_imdb_archive(path, reviews_per_movie=5)


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    archive = balanced_archive(tmp_path_factory.mktemp("imdb") / "a.tar.gz")
    return ingest.split_valid(ingest.read_reviews(archive), 0.25, seed=42)


def check_reviews(df, tmp_path, data_docs=False, raw=RAW):
    table = runner.Table(
        "reviews", imdb.raw_table(df), imdb.raw_suite(raw, False), ("split", "label", "id")
    )
    return runner.validate("imdb_raw", [table], tmp_path / "imdb_raw.json", data_docs=data_docs)


def failing(check, *args) -> tuple[str, dict]:
    """The error message and the JSON report of a check that must fail."""
    with pytest.raises(PipelineError) as err:
        check(*args)
    tmp_path = args[-1]
    report = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert report["success"] is False and report["failed"] >= 1
    assert report["passed"] + report["failed"] == report["evaluated"]
    return str(err.value), report


def failed_descriptions(report) -> set[str]:
    return {e["description"] for e in report["expectations"] if not e["success"]}


# ------------------------------------------------------------------ IMDb raw


def test_imdb_raw_passes_on_good_data_and_writes_report_and_docs(reviews, tmp_path):
    report = check_reviews(reviews, tmp_path, data_docs=True)
    assert report["success"] and report["failed"] == 0
    assert report["evaluated"] == report["passed"] >= 15
    saved = json.loads((tmp_path / "imdb_raw.json").read_text())
    assert saved["evaluated"] == report["evaluated"]
    rows = {e["description"]: e for e in saved["expectations"]}
    assert rows["test has 40 reviews"]["observed"] == 40
    assert rows["test has 40 reviews"]["where"] == "split == 'test'"
    index = tmp_path / "docs" / "index.html"
    assert index.is_file() and "imdb_raw.reviews" in index.read_text()


def test_imdb_raw_rerun_is_idempotent_and_docs_keep_one_result(reviews, tmp_path):
    check_reviews(reviews, tmp_path, data_docs=True)
    check_reviews(reviews, tmp_path, data_docs=True)  # no "already exists" from the context
    pages = list((tmp_path / "docs" / "validations" / "imdb_raw" / "reviews").rglob("*.html"))
    assert len(pages) == 1


def test_flipped_label_against_its_rating(reviews, tmp_path):
    df = reviews.copy()
    i = df.index[(df.split == "test") & (df.label == 1)][0]
    df.loc[i, "label"] = 0  # a positive review (rating 7..10) labelled negative
    msg, report = failing(check_reviews, df, tmp_path)
    assert "negative reviews are rated 1..4" in failed_descriptions(report)
    assert "expect_column_values_to_be_between on column 'rating' where label == 0" in msg
    assert f"id={df.loc[i, 'id']}" in msg  # the offending row


def test_blank_review(reviews, tmp_path):
    df = reviews.copy()
    df["text"] = df["text"].astype(object)
    df.loc[df.index[3], "text"] = "  \n "
    msg, report = failing(check_reviews, df, tmp_path)
    assert "no review text is blank" in failed_descriptions(report)
    assert "expect_column_values_to_match_regex" in msg and "1 of 80 rows" in msg


def test_unbalanced_split(reviews, tmp_path):
    df = reviews.copy()
    # move 2 positives from valid to train and 2 negatives back: sizes stay, balance goes
    # (each pair as a movie of its own: no movie ends up in both)
    pos_valid = df.index[(df.split == "valid") & (df.label == 1)][:2]
    neg_train = df.index[(df.split == "train") & (df.label == 0)][:2]
    df.loc[pos_valid, ["split", "movie"]] = ["train", "tt9000001"]
    df.loc[neg_train, ["split", "movie"]] = ["valid", "tt9000002"]
    msg, report = failing(check_reviews, df, tmp_path)
    assert failed_descriptions(report) == {
        "train: share of positive reviews within 0.5 ± 0.02",
        "valid: share of positive reviews within 0.5 ± 0.02",
    }
    assert "expect_column_mean_to_be_between" in msg and "observed 0.3" in msg


def test_duplicated_id_within_split_and_label(reviews, tmp_path):
    df = reviews.copy()
    rows = df.index[(df.split == "test") & (df.label == 0)][:2]
    df.loc[rows[1], "id"] = df.loc[rows[0], "id"]
    msg, report = failing(check_reviews, df, tmp_path)
    assert failed_descriptions(report) == {"ids are unique within a split and label"}
    assert "expect_compound_columns_to_be_unique" in msg


def test_ids_repeat_across_folders_as_in_the_real_data(reviews, tmp_path):
    # ids restart in every folder of the archive (train/pos, train/neg, test/pos, test/neg)
    assert (reviews["id"] == 0).sum() == 4
    assert check_reviews(reviews, tmp_path)["success"]


def test_movie_in_both_train_and_valid(reviews, tmp_path):
    df = reviews.copy()
    train_movie = df.loc[(df.split == "train") & (df.label == 1), "movie"].iloc[0]
    v = df.index[(df.split == "valid") & (df.label == 1)][0]
    df.loc[v, "movie"] = train_movie  # a valid review of a movie train has reviews of
    msg, report = failing(check_reviews, df, tmp_path)
    assert failed_descriptions(report) == {"valid shares no movie with train"}
    [row] = [e for e in report["expectations"] if not e["success"]]
    assert row["column"] == "movie_in_train_and_valid"
    assert row["unexpected"] == (df.movie == train_movie).sum() == 6  # 5 train + 1 valid
    assert "6 of 40 rows break it" in msg


def test_raw_table_flags_movies_in_train_and_valid_only():
    df = pd.DataFrame(
        {
            "split": ["train", "train", "valid", "valid", "test", "train", "valid"],
            "label": [1, 0, 1, 0, 1, 1, 1],
            "movie": ["tt1", "tt2", "tt1", "tt3", "tt3", "", ""],
            "text": ["a", "b", "c", "d", "b", "e", "f"],
        }
    )
    table = imdb.raw_table(df)
    # tt1: in both; tt3: in valid and test, not train; "": unknown movie, never flagged
    assert table["movie_in_train_and_valid"].tolist() == [
        True,
        False,
        True,
        False,
        False,
        False,
        False,
    ]
    # the test review "b" repeats a training review's text
    assert table.loc[table.split == "test", "text_in_train"].tolist() == [1]
    assert imdb.raw_table(df.drop(columns="movie"))["movie_in_train_and_valid"].eq(False).all()


def test_test_reviews_repeating_training_texts(reviews, tmp_path):
    df = reviews.copy()
    df["text"] = df["text"].astype(object)
    test = df.index[df.split == "test"]
    training = df.index[df.split.isin(["train", "valid"])]
    raw = RAW.model_copy(update={"max_test_duplicates": 2})
    df.loc[test[:2], "text"] = df.loc[[training[0], training[-1]], "text"].to_numpy()
    assert check_reviews(df, tmp_path, raw=raw)["success"]  # 2: allowed
    df.loc[test[2], "text"] = df.loc[training[5], "text"]
    msg, report = failing(lambda df, path: check_reviews(df, path, raw=raw), df, tmp_path)
    assert failed_descriptions(report) == {"at most 2 test reviews repeat a training review's text"}
    assert "observed 3; expected max_value=2" in msg


def test_split_sizes(reviews, tmp_path):
    df = reviews.drop(reviews.index[reviews.split == "test"][:3])
    msg, report = failing(check_reviews, df, tmp_path)
    assert "test has 40 reviews" in failed_descriptions(report)
    assert "observed 37; expected value=40" in msg


def test_imdb_raw_with_unlabelled_reviews(tmp_path):
    archive = balanced_archive(tmp_path / "a.tar.gz")
    df = ingest.split_valid(ingest.read_reviews(archive, include_unsup=True), 0.25, seed=42)

    def check(df, tmp_path):
        table = runner.Table("reviews", imdb.raw_table(df), imdb.raw_suite(RAW, True))
        return runner.validate("imdb_raw", [table], tmp_path / "r.json", data_docs=False)

    assert check(df, tmp_path)["success"]
    df.loc[df.index[df.split == "unsup"][0], "rating"] = 3
    _, report = failing(check, df, tmp_path)
    assert failed_descriptions(report) == {"unlabelled reviews have rating 0"}


# ------------------------------------------------------------------ charlm raw


def check_corpus(text, tmp_path):
    table = runner.Table(
        "corpus", charlm.raw_table(text), charlm.raw_suite(CHAR_RAW), ("licence_line",)
    )
    return runner.validate("charlm_raw", [table], tmp_path / "charlm_raw.json", data_docs=False)


def corpus(**kwargs):
    from rnnpipe.charlm import ingest as novel

    text = tinydata.gutenberg_text(**kwargs).replace("\r\n", "\n")
    return novel.cut_novel(text, "THE MYSTERIOUS ISLAND", "End of the Project Gutenberg")


def test_charlm_raw_passes_on_good_corpus(tmp_path):
    assert check_corpus(corpus(), tmp_path)["success"]
    [run] = check_runs(tmp_path, "charlm")  # the check's run, without Data Docs
    assert (run.info.run_name, run.data.tags["stage"]) == ("charlm_raw check", "charlm_check_raw")
    assert not any(k.startswith("data_sha256.") for k in run.data.tags)  # no files named
    assert artifact(run, "quality/charlm_raw.json").is_file()
    assert not artifact(run, "quality/docs").exists()


def test_corpus_with_licence_header_left_in(tmp_path):
    text = tinydata.gutenberg_text().replace("\r\n", "\n").split("End of the Project")[0]
    msg, report = failing(check_corpus, text, tmp_path)
    assert failed_descriptions(report) == {
        "no licence header or footer left: 'Project Gutenberg' never occurs",
        "the first line is the title 'THE MYSTERIOUS ISLAND'",
    }
    assert "licence_line='The Project Gutenberg EBook" in msg


def test_corpus_too_short_and_too_many_characters(tmp_path):
    text = corpus()[:5000] + "".join(chr(0x400 + i) for i in range(120))
    _, report = failing(check_corpus, text, tmp_path)
    assert failed_descriptions(report) == {
        "the corpus has 10000..40000 characters",
        "at most 100 distinct characters",
    }


# ------------------------------------------------------------------ IMDb encoded


def imdb_parts(seed=0):
    rng = np.random.default_rng(seed)
    parts = {}
    for split, n in (("train", 8), ("valid", 4), ("test", 4)):
        lengths = rng.integers(1, MAX_LEN + 1, size=n).astype(np.int32)
        ids = np.zeros((n, MAX_LEN), np.int32)
        for i, k in enumerate(lengths):
            ids[i, :k] = rng.integers(2, VOCAB, size=k)  # no pad (0), no OOV (1)
        parts[split] = {
            "ids": ids,
            "lengths": lengths,
            "labels": np.array([0, 1] * (n // 2), np.int8),
        }
    return parts


def check_encoded(parts, tmp_path):
    table = imdb.encoded_table(parts, pad_id=0, oov_id=1)
    suite = imdb.encoded_suite(ImdbCheckEncodedParams(max_oov_rate=0.05), VOCAB, MAX_LEN)
    return runner.validate(
        "imdb_encoded",
        [runner.Table("sequences", table, suite, ("split", "row"))],
        tmp_path / "imdb_encoded.json",
        data_docs=False,
    )


def test_imdb_encoded_passes_on_good_arrays(tmp_path):
    assert check_encoded(imdb_parts(), tmp_path)["success"]


def test_imdb_id_out_of_vocabulary(tmp_path):
    parts = imdb_parts()
    parts["test"]["ids"][2, 0] = VOCAB
    msg, report = failing(check_encoded, parts, tmp_path)
    assert failed_descriptions(report) == {"every token id is below the vocabulary size 50"}
    assert "split='test', row=2" in msg


def test_imdb_all_padding_and_oov(tmp_path):
    parts = imdb_parts()
    parts["valid"]["ids"][1] = 0
    parts["valid"]["lengths"][1] = 0
    parts["test"]["ids"][:, 0] = 1  # one OOV token in every test review: far above 5 %
    _, report = failing(check_encoded, parts, tmp_path)
    assert failed_descriptions(report) == {
        "no sequence is all padding",
        "test: out-of-vocabulary rate at most 0.05",
    }


# ------------------------------------------------------------------ IMDb soft labels


def soft_labelled(n=8):
    """The teach stage's output for n reviews: ids, lengths and a teacher's probabilities."""
    part = imdb_parts()["train"]
    return part["ids"][:n], part["lengths"][:n], np.linspace(0.1, 0.9, n).astype(np.float32)


def check_soft(ids, lengths, labels, rows, tmp_path, windows=False):
    table = imdb.soft_table(ids, lengths, labels, pad_id=0)
    suite = imdb.soft_suite(rows, VOCAB, MAX_LEN, windows)
    return runner.validate(
        "imdb_soft_labels",
        [runner.Table("soft_labels", table, suite, ("row",))],
        tmp_path / "imdb_soft_labels.json",
        data_docs=False,
    )


def test_soft_labels_pass_when_probabilities_of_well_formed_reviews(tmp_path):
    assert check_soft(*soft_labelled(), 8, tmp_path)["success"]


def test_soft_labels_with_windows_hold_a_window_of_each_review(tmp_path):
    # 4 reviews and a window of each: 8 rows
    assert check_soft(*soft_labelled(), 4, tmp_path, windows=True)["success"]
    with_windows = functools.partial(check_soft, windows=True)
    msg, report = failing(with_windows, *soft_labelled(), 8, tmp_path)
    assert failed_descriptions(report) == {
        "8 reviews (imdb.student.unsup_reviews) and a window of each (imdb.student.windows)"
    }


def test_soft_labels_out_of_range_missing_or_one_sided(tmp_path):
    ids, lengths, labels = soft_labelled()
    labels[2], labels[5] = 1.5, np.nan
    msg, report = failing(check_soft, ids, lengths, labels, 8, tmp_path)
    assert failed_descriptions(report) == {
        "labels are probabilities in [0, 1]",
        "no NaN label",
    }
    assert "row=2" in msg
    # a teacher that calls every review negative
    _, report = failing(check_soft, ids, lengths, np.full(8, 0.01, np.float32), 8, tmp_path)
    assert failed_descriptions(report) == {"the mean probability is within [0.05, 0.95]"}


def test_soft_labels_on_reviews_encoded_wrongly(tmp_path):
    ids, lengths, labels = soft_labelled()
    ids[1, 0] = VOCAB  # beyond the vocabulary
    lengths[3] += 1  # `lengths` no longer counts the ids
    msg, report = failing(check_soft, ids, lengths, labels, 9, tmp_path)
    assert failed_descriptions(report) == {
        f"every token id is below the vocabulary size {VOCAB}",
        "`lengths` counts exactly the non-padding ids",
        "9 reviews (imdb.student.unsup_reviews)",
    }
    assert "row=1" in msg and "row=3" in msg


# ------------------------------------------------------------------ charlm encoded


def char_parts(n=1000, seed=0):
    ids = np.random.default_rng(seed).integers(0, 30, size=n).astype(np.int32)
    a, b = int(n * 0.9), int(n * 0.95)
    return {
        "train": {"ids": ids[:a], "start": np.int64(0)},
        "valid": {"ids": ids[a:b], "start": np.int64(a)},
        "test": {"ids": ids[b:], "start": np.int64(b)},
    }


def check_chars(parts, tmp_path):
    table = charlm.encoded_table(parts, FRACTIONS)
    suite = charlm.encoded_suite(CharlmCheckEncodedParams(), FRACTIONS, vocab_size=30)
    return runner.validate(
        "charlm_encoded",
        [runner.Table("parts", table, suite, ("part",))],
        tmp_path / "charlm_encoded.json",
        data_docs=False,
    )


def test_charlm_encoded_passes_on_good_parts(tmp_path):
    assert check_chars(char_parts(), tmp_path)["success"]
    assert check_chars(char_parts(n=1003), tmp_path)["success"]  # rounding: within 1 char


def test_truncated_held_out_part(tmp_path):
    parts = char_parts()
    parts["test"]["ids"] = parts["test"]["ids"][:20]
    msg, report = failing(check_chars, parts, tmp_path)
    assert (
        "part sizes match the split fractions (train 0.9, valid 0.05, test 0.05) within ±1 "
        "chars" in failed_descriptions(report)
    )
    assert "part='test'" in msg


def test_held_out_part_overlapping_train(tmp_path):
    parts = char_parts()
    parts["valid"]["start"] = np.int64(850)
    _, report = failing(check_chars, parts, tmp_path)
    assert failed_descriptions(report) == {
        "each part starts where the one before it ends (train at 0)"
    }


def test_char_id_out_of_vocabulary(tmp_path):
    parts = char_parts()
    parts["valid"]["ids"][3] = 30
    _, report = failing(check_chars, parts, tmp_path)
    assert failed_descriptions(report) == {"every character id is within the vocabulary (30 ids)"}


# ------------------------------------------------------------------ the command line


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_check_raw_exit_code_stderr_and_stamp(reviews, tmp_path, capsys):
    good, bad = tmp_path / "good.parquet", tmp_path / "bad.parquet"
    reviews.to_parquet(good)
    broken = reviews.copy()
    broken.loc[broken.index[0], "rating"] = 9  # a negative review rated 9
    broken.to_parquet(bad)
    params = yaml.safe_load(TINY_PARAMS.read_text())
    params["imdb"]["ingest"]["include_unsup"] = False  # these reviews have no unsup split
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    args = ["--params", str(tmp_path / "params.yaml"), "imdb", "check_raw"]
    report = tmp_path / "q" / "imdb_raw.json"
    stamp = tmp_path / "interim" / "check_raw.json"
    assert cli.main([*args, str(good), str(report), str(stamp)]) == 0
    # the stamp names what passed, by content: the next stages depend on it
    assert json.loads(stamp.read_text()) == {
        "check": "imdb_raw",
        "passed": {"good.parquet": sha256(good)},
    }
    stamp.unlink()
    assert cli.main([*args, str(bad), str(report), str(stamp)]) == 1
    err = capsys.readouterr().err
    assert "rnnpipe imdb check_raw: error: data quality check imdb_raw failed" in err
    assert "negative reviews are rated 1..4" in err and "rating=9" in err
    assert json.loads(report.read_text())["failed"] == 1
    assert not stamp.exists()  # failed data passes nothing on

    # each check has an MLflow run of its own, tagged with the data's hash: what passed (with
    # the Data Docs) and what failed
    good_run, bad_run = check_runs(tmp_path, "imdb")
    for run, data, status in ((good_run, good, "FINISHED"), (bad_run, bad, "FAILED")):
        tags = run.data.tags
        assert run.info.run_name == "imdb_raw check" and run.info.status == status
        assert tags["stage"] == "imdb_check_raw" and tags["quality.check"] == "imdb_raw"
        assert tags["quality.passed"] == str(status == "FINISHED").lower()
        assert tags[f"data_sha256.{data.name}"] == sha256(data)
        assert artifact(run, "quality/docs/index.html").is_file()
    assert good_run.data.metrics["failed"] == 0
    assert bad_run.data.metrics["failed"] == 1
    assert bad_run.data.metrics["passed"] == bad_run.data.metrics["evaluated"] - 1
    assert artifact(bad_run, "quality/imdb_raw.json").read_bytes() == report.read_bytes()


def test_cli_check_encoded_writes_its_stamp(tmp_path):
    from rnnpipe.core.vocab import Vocabulary

    processed = tmp_path / "processed"
    processed.mkdir()
    Vocabulary("word", ("<pad>", "<oov>", *[f"w{i}" for i in range(VOCAB - 2)]), 0, 1).save(
        processed / "vocab.json"
    )
    for split, arrays in imdb_parts().items():
        np.savez(processed / f"{split}.npz", **arrays)
    stamp = processed / "check_encoded.json"
    rc = cli.main(
        [
            "--params",
            str(TINY_PARAMS),
            "imdb",
            "check_encoded",
            str(processed),
            str(tmp_path / "q" / "imdb_encoded.json"),
            str(stamp),
        ]
    )
    assert rc == 0
    files = ["vocab.json", "train.npz", "valid.npz", "test.npz"]
    assert json.loads(stamp.read_text()) == {
        "check": "imdb_encoded",
        "passed": {f: sha256(processed / f) for f in files},
    }


def test_stamp_changes_with_the_data_alone(tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"abc")
    runner.write_stamp(tmp_path / "a.json", "c", [data])
    runner.write_stamp(tmp_path / "b.json", "c", [data])  # no times: the same bytes
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    data.write_bytes(b"abd")
    runner.write_stamp(tmp_path / "b.json", "c", [data])
    assert (tmp_path / "a.json").read_bytes() != (tmp_path / "b.json").read_bytes()
