"""Data quality gates: each suite passes on good tiny data and names the expectation that
breaks on data broken the way it guards against."""

import json

import numpy as np
import pytest

from rnnpipe import cli
from rnnpipe.data import imdb as ingest
from rnnpipe.errors import PipelineError
from rnnpipe.params import (
    CharlmCheckEncodedParams,
    CharlmCheckRawParams,
    ImdbCheckEncodedParams,
    ImdbCheckRawParams,
)
from rnnpipe.quality import charlm, imdb, runner
from tests import tinydata
from tests.conftest import TINY_PARAMS

RAW = ImdbCheckRawParams(test_size=40, train_valid_size=40, unsup_size=10)
CHAR_RAW = CharlmCheckRawParams(min_chars=10_000, max_chars=40_000)
FRACTIONS = {"train": 0.9, "valid": 0.05, "test": 0.05}
VOCAB, MAX_LEN = 50, 20


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    archive = tinydata.write_imdb_archive(tmp_path_factory.mktemp("imdb") / "a.tar.gz")
    return ingest.split_valid(ingest.read_reviews(archive), 0.25, seed=42)


def check_reviews(df, tmp_path, data_docs=False):
    table = runner.Table("reviews", imdb.raw_table(df), imdb.raw_suite(RAW, False),
                         ("split", "label", "id"))
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
    pos_valid = df.index[(df.split == "valid") & (df.label == 1)][:2]
    neg_train = df.index[(df.split == "train") & (df.label == 0)][:2]
    df.loc[pos_valid, "split"] = "train"
    df.loc[neg_train, "split"] = "valid"
    msg, report = failing(check_reviews, df, tmp_path)
    assert failed_descriptions(report) == {
        "train: share of positive reviews within 0.5 ± 0.02",
        "valid: share of positive reviews within 0.5 ± 0.02"}
    assert "expect_column_mean_to_be_between" in msg and "observed 0.3" in msg


def test_duplicated_id_within_split_and_label(reviews, tmp_path):
    df = reviews.copy()
    rows = df.index[(df.split == "test") & (df.label == 0)][:2]
    df.loc[rows[1], "id"] = df.loc[rows[0], "id"]
    msg, report = failing(check_reviews, df, tmp_path)
    assert failed_descriptions(report) == {"ids are unique within a split and label"}
    assert "expect_compound_columns_to_be_unique" in msg


def test_ids_may_repeat_across_folders_as_in_the_real_data(reviews, tmp_path):
    df = reviews.copy()
    # real ids restart in every folder: test/neg and train/pos reuse the ids of test/pos
    test_pos = df[(df.split == "test") & (df.label == 1)]["id"].to_numpy()
    df.loc[(df.split == "test") & (df.label == 0), "id"] = test_pos
    assert check_reviews(df, tmp_path)["success"]


def test_valid_overlapping_train(reviews, tmp_path):
    df = reviews.copy()
    t = df.index[(df.split == "train") & (df.label == 1)][0]
    v = df.index[(df.split == "valid") & (df.label == 1)][0]
    df.loc[v, "id"] = df.loc[t, "id"]  # the same review in both
    msg, report = failing(check_reviews, df, tmp_path)
    assert failed_descriptions(report) == {"valid is disjoint from train (no label+id in both)"}


def test_split_sizes(reviews, tmp_path):
    df = reviews.drop(reviews.index[reviews.split == "test"][:3])
    msg, report = failing(check_reviews, df, tmp_path)
    assert "test has 40 reviews" in failed_descriptions(report)
    assert "observed 37; expected value=40" in msg


def test_imdb_raw_with_unlabelled_reviews(tmp_path):
    archive = tinydata.write_imdb_archive(tmp_path / "a.tar.gz")
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
    table = runner.Table("corpus", charlm.raw_table(text), charlm.raw_suite(CHAR_RAW),
                         ("licence_line",))
    return runner.validate("charlm_raw", [table], tmp_path / "charlm_raw.json", data_docs=False)


def corpus(**kwargs):
    from rnnpipe.data import novel

    text = tinydata.gutenberg_text(**kwargs).replace("\r\n", "\n")
    return novel.cut_novel(text, "THE MYSTERIOUS ISLAND", "End of the Project Gutenberg")


def test_charlm_raw_passes_on_good_corpus(tmp_path):
    assert check_corpus(corpus(), tmp_path)["success"]


def test_corpus_with_licence_header_left_in(tmp_path):
    text = tinydata.gutenberg_text().replace("\r\n", "\n").split("End of the Project")[0]
    msg, report = failing(check_corpus, text, tmp_path)
    assert failed_descriptions(report) == {
        "no licence header or footer left: 'Project Gutenberg' never occurs",
        "the first line is the title 'THE MYSTERIOUS ISLAND'"}
    assert "licence_line='The Project Gutenberg EBook" in msg


def test_corpus_too_short_and_too_many_characters(tmp_path):
    text = corpus()[:5000] + "".join(chr(0x400 + i) for i in range(120))
    _, report = failing(check_corpus, text, tmp_path)
    assert failed_descriptions(report) == {"the corpus has 10000..40000 characters",
                                           "at most 100 distinct characters"}


# ------------------------------------------------------------------ IMDb encoded


def imdb_parts(seed=0):
    rng = np.random.default_rng(seed)
    parts = {}
    for split, n in (("train", 8), ("valid", 4), ("test", 4)):
        lengths = rng.integers(1, MAX_LEN + 1, size=n).astype(np.int32)
        ids = np.zeros((n, MAX_LEN), np.int32)
        for i, k in enumerate(lengths):
            ids[i, :k] = rng.integers(2, VOCAB, size=k)  # no pad (0), no OOV (1)
        parts[split] = {"ids": ids, "lengths": lengths,
                        "labels": np.array([0, 1] * (n // 2), np.int8)}
    return parts


def check_encoded(parts, tmp_path):
    table = imdb.encoded_table(parts, pad_id=0, oov_id=1)
    suite = imdb.encoded_suite(ImdbCheckEncodedParams(max_oov_rate=0.05), VOCAB, MAX_LEN)
    return runner.validate("imdb_encoded", [runner.Table("sequences", table, suite,
                                                         ("split", "row"))],
                           tmp_path / "imdb_encoded.json", data_docs=False)


def test_imdb_encoded_passes_on_good_arrays(tmp_path):
    assert check_encoded(imdb_parts(), tmp_path)["success"]


def test_imdb_id_out_of_vocabulary(tmp_path):
    parts = imdb_parts()
    parts["test"]["ids"][2, 0] = VOCAB
    msg, report = failing(check_encoded, parts, tmp_path)
    assert failed_descriptions(report) == {
        "every token id is below the vocabulary size 50"}
    assert "split='test', row=2" in msg


def test_imdb_all_padding_and_oov(tmp_path):
    parts = imdb_parts()
    parts["valid"]["ids"][1] = 0
    parts["valid"]["lengths"][1] = 0
    parts["test"]["ids"][:, 0] = 1  # one OOV token in every test review: far above 5 %
    _, report = failing(check_encoded, parts, tmp_path)
    assert failed_descriptions(report) == {"no sequence is all padding",
                                           "test: out-of-vocabulary rate at most 0.05"}


# ------------------------------------------------------------------ charlm encoded


def char_parts(n=1000, seed=0):
    ids = np.random.default_rng(seed).integers(0, 30, size=n).astype(np.int32)
    a, b = int(n * 0.9), int(n * 0.95)
    return {"train": {"ids": ids[:a], "start": np.int64(0)},
            "valid": {"ids": ids[a:b], "start": np.int64(a)},
            "test": {"ids": ids[b:], "start": np.int64(b)}}


def check_chars(parts, tmp_path):
    table = charlm.encoded_table(parts, FRACTIONS)
    suite = charlm.encoded_suite(CharlmCheckEncodedParams(), FRACTIONS, vocab_size=30)
    return runner.validate("charlm_encoded", [runner.Table("parts", table, suite, ("part",))],
                           tmp_path / "charlm_encoded.json", data_docs=False)


def test_charlm_encoded_passes_on_good_parts(tmp_path):
    assert check_chars(char_parts(), tmp_path)["success"]
    assert check_chars(char_parts(n=1003), tmp_path)["success"]  # rounding: within 1 char


def test_truncated_held_out_part(tmp_path):
    parts = char_parts()
    parts["test"]["ids"] = parts["test"]["ids"][:20]
    msg, report = failing(check_chars, parts, tmp_path)
    assert "part sizes match the split fractions (train 0.9, valid 0.05, test 0.05) within ±1 " \
           "chars" in failed_descriptions(report)
    assert "part='test'" in msg


def test_held_out_part_overlapping_train(tmp_path):
    parts = char_parts()
    parts["valid"]["start"] = np.int64(850)
    _, report = failing(check_chars, parts, tmp_path)
    assert failed_descriptions(report) == {
        "each part starts where the one before it ends (train at 0)"}


def test_char_id_out_of_vocabulary(tmp_path):
    parts = char_parts()
    parts["valid"]["ids"][3] = 30
    _, report = failing(check_chars, parts, tmp_path)
    assert failed_descriptions(report) == {
        "every character id is within the vocabulary (30 ids)"}


# ------------------------------------------------------------------ the command line


def test_cli_check_raw_exit_code_and_stderr(reviews, tmp_path, capsys):
    good, bad = tmp_path / "good.parquet", tmp_path / "bad.parquet"
    reviews.to_parquet(good)
    broken = reviews.copy()
    broken.loc[broken.index[0], "rating"] = 9  # a negative review rated 9
    broken.to_parquet(bad)
    args = ["--params", str(TINY_PARAMS), "imdb", "check_raw"]
    assert cli.main([*args, str(good), str(tmp_path / "q" / "imdb_raw.json")]) == 0
    assert cli.main([*args, str(bad), str(tmp_path / "q" / "imdb_raw.json")]) == 1
    err = capsys.readouterr().err
    assert "rnnpipe imdb check_raw: error: data quality check imdb_raw failed" in err
    assert "negative reviews are rated 1..4" in err and "rating=9" in err
    report = json.loads((tmp_path / "q" / "imdb_raw.json").read_text())
    assert report["failed"] == 1


def test_report_and_docs_logged_to_the_active_mlflow_run(reviews, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        with mlflow.start_run() as run:
            check_reviews(reviews, tmp_path, data_docs=True)
        client = mlflow.MlflowClient()
        names = {a.path for a in client.list_artifacts(run.info.run_id, "quality")}
        assert names == {"quality/imdb_raw.json", "quality/docs"}
        docs = {a.path for a in client.list_artifacts(run.info.run_id, "quality/docs")}
        assert "quality/docs/index.html" in docs
        assert client.get_run(run.info.run_id).data.metrics["quality.imdb_raw.failed"] == 0
    finally:
        mlflow.set_tracking_uri(None)
