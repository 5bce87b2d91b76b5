"""The embed stage: word2vec vectors for the vocabulary, from train (+ unsup) only."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import load_params
from rnnpipe.core.vocab import Vocabulary
from rnnpipe.imdb import embed
from rnnpipe.imdb.params import ImdbEmbedParams
from tests.conftest import TINY_PARAMS

GOOD = ["a great film , truly great", "great acting and a great story", "wonderful , great"]
BAD = ["an awful film , truly awful", "awful acting and an awful story", "boring , awful"]


def reviews(unsup: bool = True) -> pd.DataFrame:
    rows = [("train", 1, t) for t in GOOD * 5] + [("train", 0, t) for t in BAD * 5]
    rows += [("test", 1, "secret test words only here")]  # never learnt from
    if unsup:
        rows += [("unsup", -1, t) for t in (GOOD + BAD) * 5]
    return pd.DataFrame(rows, columns=["split", "label", "text"])


def vocab() -> Vocabulary:
    return Vocabulary("word", ("<pad>", "<oov>", "great", "awful", "film", "secret"), 0, 1)


def run(tmp_path, params, df: pd.DataFrame):
    df.to_parquet(tmp_path / "reviews.parquet")
    vocab().save(tmp_path / "vocab.json")
    out, report = tmp_path / "vectors.npy", tmp_path / "embed.json"
    embed.embed(params, tmp_path / "reviews.parquet", tmp_path / "vocab.json", out, report)
    return np.load(out, allow_pickle=False), json.loads(report.read_text())


@pytest.fixture
def params():
    return load_params(TINY_PARAMS)


def test_a_vector_per_vocabulary_id_the_same_for_the_same_seed(tmp_path, params):
    vectors, report = run(tmp_path, params, reviews())
    assert vectors.shape == (6, params.imdb.embed.dim) and vectors.dtype == np.float32
    assert not vectors[0].any()  # padding
    assert report["reviews"] == 30 + 30 and report["vocabulary"] == 6
    again, _ = run(tmp_path, params, reviews())
    np.testing.assert_array_equal(vectors, again)
    other = params.model_copy(update={"seed": params.seed + 1})
    assert not np.array_equal(run(tmp_path, other, reviews())[0], vectors)


def test_words_only_in_test_get_no_learnt_vector(tmp_path, params):
    df = reviews()
    df.loc[df.split == "test", "text"] = "great " * 20
    vectors, _ = run(tmp_path, params, df)
    p = params.imdb.embed
    sentences = [t.split() for t in list(df[df.split != "test"].text)]
    learnt = embed.word_vectors(sentences, vocab(), p, params.seed)
    np.testing.assert_array_equal(vectors, learnt)  # test's text changed nothing


def test_unlabelled_split_missing_is_an_error_naming_the_keys(tmp_path, params):
    with pytest.raises(PipelineError, match="imdb.ingest.include_unsup"):
        run(tmp_path, params, reviews(unsup=False))
    assert not (tmp_path / "vectors.npy").exists() and not (tmp_path / "embed.json").exists()
    no_unsup = params.model_copy(
        update={
            "imdb": params.imdb.model_copy(
                update={"embed": ImdbEmbedParams(dim=8, min_count=1, use_unsup=False)}
            )
        }
    )
    vectors, report = run(tmp_path, no_unsup, reviews(unsup=False))
    assert report["reviews"] == 30 and vectors.shape == (6, 8)
