import numpy as np
import pandas as pd
import pytest

from rnnpipe.errors import PipelineError
from rnnpipe.params import load_params
from rnnpipe.stages import imdb
from rnnpipe.text.vocab import Vocabulary
from tests.conftest import TINY_PARAMS

ROWS = [
    ("train", 1, "Great film, great cast"),
    ("train", 0, "Awful film"),
    ("valid", 1, "Great valid_only_word"),
    ("test", 0, "Awful test_only_word"),
    ("test", 1, "Great great great great great great great great great great film"),
    ("unsup", -1, "unsup_only_word"),
]


@pytest.fixture
def reviews(tmp_path):
    df = pd.DataFrame(ROWS, columns=["split", "label", "text"])
    df["label"] = df["label"].astype("int8")
    path = tmp_path / "reviews.parquet"
    df.to_parquet(path)
    return path


@pytest.fixture
def params():
    return load_params(TINY_PARAMS)


def test_vocab_comes_from_the_train_split_only(params, reviews, tmp_path):
    imdb.vocab(params, reviews, tmp_path / "vocab.json")
    v = Vocabulary.load(tmp_path / "vocab.json")
    assert v.tokens[:4] == ("<pad>", "<oov>", "film", "great")  # 2 each: alphabetical
    assert set(v.tokens) == {"<pad>", "<oov>", "great", "film", ",", "cast", "awful"}


def test_encode_writes_the_contract(params, reviews, tmp_path):
    imdb.vocab(params, reviews, tmp_path / "vocab.json")
    imdb.encode(params, reviews, tmp_path / "vocab.json", tmp_path / "enc")
    v = Vocabulary.load(tmp_path / "vocab.json")
    max_len = params.imdb.encode.max_len
    for split, n in (("train", 2), ("valid", 1), ("test", 2)):
        with np.load(tmp_path / "enc" / f"{split}.npz") as z:
            assert z["ids"].dtype == np.int32 and z["ids"].shape == (n, max_len)
            assert z["lengths"].dtype == np.int32 and z["labels"].dtype == np.int8
            labels, lengths, ids = z["labels"], z["lengths"], z["ids"]
        assert labels.tolist() == [r[1] for r in ROWS if r[0] == split]  # parquet order
        assert ((ids != 0).sum(axis=1) == lengths).all()  # right-padded with 0
    with np.load(tmp_path / "enc" / "test.npz") as z:
        assert z["ids"][0, :2].tolist() == [v.index["awful"], v.oov_id]


def test_missing_column_is_a_clear_error(params, tmp_path):
    pd.DataFrame({"split": ["train"], "text": ["x"]}).to_parquet(tmp_path / "r.parquet")
    with pytest.raises(PipelineError, match="label"):
        imdb.vocab(params, tmp_path / "r.parquet", tmp_path / "v.json")
    assert not (tmp_path / "v.json").exists()


def test_missing_encoded_split_is_a_clear_error(tmp_path):
    with pytest.raises(PipelineError, match="train.npz"):
        imdb.read_split(tmp_path, "train")


def test_use_tuned_reads_best_hparams(params, tmp_path):
    path = tmp_path / "best_hparams.json"
    path.write_text('{"hparams": {"cell": "LSTM", "units": 5}, "score": 0.3}')
    tuned = params.model_copy(update={"imdb": params.imdb.model_copy(update={
        "train": params.imdb.train.model_copy(update={"use_tuned": True})})})
    hp = imdb.model_hparams(tuned, path)
    assert (hp["cell"], hp["units"]) == ("LSTM", 5)
    assert imdb.model_hparams(params, path)["cell"] == params.imdb.train.model.cell
    with pytest.raises(PipelineError, match="best_hparams"):
        imdb.model_hparams(tuned, None)


def _split(n, max_len, seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_len + 1, size=n).astype("int32")
    labels = rng.integers(0, 2, size=n).astype("int8")
    ids = rng.integers(2, 30, size=(n, max_len)).astype("int32")
    ids[:, 0] = 2 + labels  # a learnable signal
    ids[np.arange(max_len)[None, :] >= lengths[:, None]] = 0
    return {"ids": ids, "lengths": lengths, "labels": labels}


def test_batches_are_bucketed_by_length():
    split = _split(200, 40, 0)
    widths = [int(x.shape[1]) for x, _ in imdb.dataset(split, 16, 40, seed=1)]
    assert sum(1 for _ in widths) >= 200 // 16
    assert min(widths) < 40  # short reviews are not padded to the longest one


@pytest.mark.slow
def test_same_seed_same_metrics(params, tmp_path):
    from rnnpipe import training
    from rnnpipe.models.sentiment import build_sentiment_model

    hp = params.imdb.train.model.model_dump()
    tr, va = _split(64, 12, 0), _split(32, 12, 1)

    def train_once(folder):
        training.set_seed(7)
        model = build_sentiment_model(hp, 30)
        _, history = training.fit(model, imdb.dataset(tr, 8, 12, seed=7), imdb.dataset(va, 8, 12),
                                  epochs=2, patience=5, checkpoint_dir=folder, settings={},
                                  verbose=0)
        return history

    first, second = train_once(tmp_path / "a"), train_once(tmp_path / "b")
    assert [h["loss"] for h in first] == [h["loss"] for h in second]
    assert [h["val_accuracy"] for h in first] == [h["val_accuracy"] for h in second]
