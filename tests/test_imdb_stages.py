"""The IMDb stages that need no model: vocab, encode, hparams; the input pipeline; and the
metrics of evaluate (the decision threshold chosen on validation)."""

import json

import numpy as np
import pandas as pd
import pytest

from rnnpipe import cli
from rnnpipe.core import hparams
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import load_params
from rnnpipe.core.vocab import Vocabulary
from rnnpipe.imdb import baseline, inputs, metrics, prepare, teach
from rnnpipe.imdb.params import ImdbBaselineParams, ImdbNbsvmParams
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
    prepare.vocab(params, reviews, tmp_path / "vocab.json")
    v = Vocabulary.load(tmp_path / "vocab.json")
    assert v.tokens[:4] == ("<pad>", "<oov>", "film", "great")  # 2 each: alphabetical
    assert set(v.tokens) == {"<pad>", "<oov>", "great", "film", ",", "cast", "awful"}


def test_encode_writes_the_contract(params, reviews, tmp_path):
    prepare.vocab(params, reviews, tmp_path / "vocab.json")
    prepare.encode(params, reviews, tmp_path / "vocab.json", tmp_path / "enc")
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
        prepare.vocab(params, tmp_path / "r.parquet", tmp_path / "v.json")
    assert not (tmp_path / "v.json").exists()


def test_missing_encoded_split_is_a_clear_error(tmp_path):
    from rnnpipe.imdb.inputs import read_split

    with pytest.raises(PipelineError, match="train.npz"):
        read_split(tmp_path, "train")


def with_use_tuned(params, use_tuned: bool):
    return params.model_copy(
        update={
            "imdb": params.imdb.model_copy(
                update={"train": params.imdb.train.model_copy(update={"use_tuned": use_tuned})}
            )
        }
    )


def test_hparams_stage_resolves_params_or_tuned(params, tmp_path):
    best = tmp_path / "best_hparams.json"
    best.write_text('{"cell": "LSTM", "units": 5}')  # what tune writes: hparams only
    out = tmp_path / "models" / "imdb" / "hparams.json"
    given = params.imdb.train.model.model_dump()

    hparams.hparams(with_use_tuned(params, False), best, out, project="imdb")
    assert json.loads(out.read_text()) == given

    hparams.hparams(with_use_tuned(params, True), best, out, project="imdb")
    assert json.loads(out.read_text()) == {**given, "cell": "LSTM", "units": 5}
    assert hparams.read(out) == {**given, "cell": "LSTM", "units": 5}

    with pytest.raises(PipelineError, match="imdb.train.use_tuned is true"):
        hparams.hparams(with_use_tuned(params, True), None, out, project="imdb")
    with pytest.raises(PipelineError, match="cannot read hyperparameters"):
        hparams.read(tmp_path / "missing.json")


def test_cli_hparams_for_each_project(tmp_path):
    best = tmp_path / "best_hparams.json"
    best.write_text('{"units": 3}')
    for project in ("imdb", "charlm"):
        out = tmp_path / project / "hparams.json"
        assert (
            cli.main(["--params", str(TINY_PARAMS), project, "hparams", str(best), str(out)]) == 0
        )
        model = getattr(load_params(TINY_PARAMS), project).train.model
        # use_tuned (the tiny params' too): the search's values over the model params
        assert json.loads(out.read_text()) == {**model.model_dump(), "units": 3}


def _split(n, max_len, seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_len + 1, size=n).astype("int32")
    labels = rng.integers(0, 2, size=n).astype("int8")
    ids = rng.integers(2, 30, size=(n, max_len)).astype("int32")
    ids[:, 0] = 2 + labels  # a learnable signal
    ids[np.arange(max_len)[None, :] >= lengths[:, None]] = 0
    return {"ids": ids, "lengths": lengths, "labels": labels}


def test_batches_are_bucketed_by_length():
    from rnnpipe.imdb.inputs import dataset

    split = _split(200, 40, 0)
    batches = list(dataset(split, 16, 40, seed=1))
    widths = [int(x.shape[1]) for x, _ in batches]
    assert len(widths) >= 200 // 16
    assert min(widths) < 40  # short reviews are not padded to the longest one
    # every review once an epoch
    assert sum(int(y.shape[0]) for _, y in batches) == 200
    assert sum(float(y.numpy().sum()) for _, y in batches) == split["labels"].sum()


def _epoch(ds, epoch):
    ds.set_epoch(epoch)
    return [(x.numpy(), y.numpy()) for x, y in ds]


def _rows(batches):
    """Each review of an epoch's batches as (its tokens without padding, label), in order."""
    return [
        (x[x > 0].tolist(), float(y[0])) for xb, yb in batches for x, y in zip(xb, yb, strict=True)
    ]


def test_crops_cut_reviews_to_windows_drawn_from_seed_and_epoch():
    from rnnpipe.imdb.inputs import dataset

    split = _split(300, 40, 0)
    whole = dataset(split, 16, 40, seed=3)
    cropped = dataset(split, 16, 40, seed=3, crop=0.5, crop_min_tokens=4)
    for epoch in (0, 1):
        full, cut = _rows(_epoch(whole, epoch)), _rows(_epoch(cropped, epoch))
        # the same reviews in the same batches, each whole or a window of itself
        assert len(cut) == len(full) == 300
        assert cropped.cardinality() == whole.cardinality()
        windows = 0
        for (w, label_w), (r, label_r) in zip(cut, full, strict=True):
            assert label_w == label_r
            if w != r:
                windows += 1
                assert 4 <= len(w) < len(r)
                assert any(r[i : i + len(w)] == w for i in range(len(r) - len(w) + 1))
        assert 0.25 < windows / 300 < 0.5  # about half, less the windows as long as the review
    # a function of (seed, epoch): again the same; another epoch, other windows
    again = dataset(split, 16, 40, seed=3, crop=0.5, crop_min_tokens=4)
    first = _epoch(cropped, 1)
    assert all((a == b).all() for (a, _), (b, _) in zip(first, _epoch(again, 1), strict=True))
    assert _rows(first) != _rows(_epoch(again, 0))


def test_no_crops_are_whole_reviews_and_short_reviews_stay_whole():
    from rnnpipe.imdb.inputs import dataset

    split = _split(100, 40, 1)
    base = _epoch(dataset(split, 8, 40, seed=5), 2)
    zero = _epoch(dataset(split, 8, 40, seed=5, crop=0.0), 2)
    assert all((a == b).all() for (a, _), (b, _) in zip(base, zero, strict=True))
    # every review cut where it can be: none at or under crop_min_tokens
    all_cut = _rows(_epoch(dataset(split, 8, 40, seed=5, crop=1.0, crop_min_tokens=6), 2))
    full = _rows(base)
    for (w, _), (r, _) in zip(all_cut, full, strict=True):
        if len(r) <= 6:
            assert w == r
        else:
            assert 6 <= len(w) <= len(r)


def test_crop_params_are_checked(tmp_path):
    import yaml

    raw = yaml.safe_load(TINY_PARAMS.read_text())
    for key, value in (("crop", 1.5), ("crop", -0.1), ("crop_min_tokens", 0)):
        bad = yaml.safe_load(yaml.safe_dump(raw))
        bad["imdb"]["train"][key] = value
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(bad))
        with pytest.raises(PipelineError, match=f"imdb.train.{key}"):
            load_params(path)


@pytest.mark.slow
def test_same_seed_same_metrics(params, tmp_path):
    from rnnpipe.core import training
    from rnnpipe.imdb.inputs import dataset
    from rnnpipe.imdb.model import build_sentiment_model

    hp = params.imdb.train.model.model_dump()
    tr, va = _split(64, 12, 0), _split(32, 12, 1)

    def train_once(folder):
        training.set_seed(7)
        model = build_sentiment_model(hp, 30)
        _, history = training.fit(
            model,
            dataset(tr, 8, 12, seed=7),
            dataset(va, 8, 12),
            epochs=2,
            patience=5,
            checkpoint_dir=folder,
            settings={},
            verbose=0,
        )
        return history

    first, second = train_once(tmp_path / "a"), train_once(tmp_path / "b")
    assert [h["loss"] for h in first] == [h["loss"] for h in second]
    assert [h["val_accuracy"] for h in first] == [h["val_accuracy"] for h in second]


# ------------------------------------------------------------------ evaluate's metrics


def brute_force_best_accuracy(labels, proba) -> float:
    """The best accuracy of `proba >= t` over every threshold that splits the scores
    differently (each distinct score, and one above them all)."""
    thresholds = [*np.unique(proba), np.inf]
    return max(float(np.mean((proba >= t) == labels)) for t in thresholds)


@pytest.mark.parametrize("seed", range(8))
def test_best_threshold_maximises_accuracy(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    labels = rng.integers(0, 2, size=n)
    # scores that lean towards the label, some of them tied (rounded)
    proba = np.clip(rng.normal(0.35 + 0.3 * labels, 0.25), 0.001, 0.999)
    if seed % 2:
        proba = np.round(proba, 1).clip(0.05, 0.95)
    t = metrics.best_threshold(labels, proba)
    assert 0 < t < 1
    accuracy = metrics.binary_metrics(labels, proba, t)["accuracy"]
    assert accuracy == pytest.approx(brute_force_best_accuracy(labels, proba))
    assert accuracy >= metrics.binary_metrics(labels, proba, 0.5)["accuracy"]
    # between two scores, so a tiny shift of one does not flip it (0.5, the tie-breaker, is a
    # candidate of its own even where a score is exactly 0.5)
    assert t not in set(proba) or t == 0.5


def test_best_threshold_examples():
    labels = np.array([0, 0, 1, 1])
    # separable with room: of the thresholds that are all right, the one nearest 0.5
    assert metrics.best_threshold(labels, np.array([0.1, 0.2, 0.6, 0.9])) == 0.5
    # separable only above 0.5: the midpoint of the gap
    assert metrics.best_threshold(labels, np.array([0.7, 0.75, 0.8, 0.9])) == pytest.approx(0.775)
    # every label the same: everything on that side
    assert metrics.best_threshold(np.array([1, 1]), np.array([0.3, 0.4])) < 0.3
    assert metrics.best_threshold(np.array([0, 0]), np.array([0.6, 0.7])) > 0.7


def test_binary_metrics():
    labels = np.array([0, 0, 1, 1, 1])
    proba = np.array([0.2, 0.6, 0.4, 0.8, 0.9])
    m = metrics.binary_metrics(labels, proba, 0.5)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["threshold"] == 0.5 and m["n"] == 5
    assert m["roc_auc"] == pytest.approx(5 / 6)
    assert metrics.binary_metrics(np.array([1, 1]), np.array([0.6, 0.7]), 0.5)["roc_auc"] is None


# ------------------------------------------------------------------ self-training


def split(n, width=6, label=1):
    return {
        "ids": np.full((n, width), 2, np.int32),
        "lengths": np.full(n, width, np.int32),
        "labels": np.full(n, label, np.int8),
    }


def test_soft_labels_follow_the_training_reviews_as_floats():
    soft = split(3) | {"labels": np.array([0.2, 0.9, 0.5], np.float32)}
    both = inputs.with_soft_labels(split(2, label=1), soft, vocab_size=3)
    assert both["ids"].shape == (5, 6) and both["lengths"].tolist() == [6] * 5
    assert both["labels"].dtype == np.float32
    assert both["labels"].tolist() == pytest.approx([1, 1, 0.2, 0.9, 0.5])


@pytest.mark.parametrize(
    ("soft", "message"),
    [
        (split(2, width=5), "5 tokens wide, the training split 6: rerun the teach stage"),
        (split(2) | {"labels": np.array([0.5, 1.5])}, "probabilities in \\[0, 1\\]"),
        (split(2) | {"labels": np.array([0.5, np.nan])}, "probabilities in \\[0, 1\\]"),
        (split(2) | {"ids": np.full((2, 6), 3)}, "token ids beyond the vocabulary \\(3\\)"),
    ],
)
def test_soft_labels_that_do_not_fit_the_training_split_are_refused(soft, message):
    with pytest.raises(PipelineError, match=message):
        inputs.with_soft_labels(split(2), soft, vocab_size=3)


def test_stack_weights_mix_logits_and_validation_chooses_the_weight():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    good = np.where(labels == 1, 0.8, 0.2)  # right, fairly sure
    noise = rng.uniform(0.05, 0.95, 400)  # knows nothing
    assert teach.stacked(1.0, good, noise) == pytest.approx(good)
    assert teach.stacked(0.0, good, noise) == pytest.approx(noise)
    assert teach.stacked(0.5, np.array([0.9]), np.array([0.1])) == pytest.approx([0.5])
    assert teach.best_weight(labels, good, noise) >= 0.9
    assert teach.best_weight(labels, noise, good) <= 0.1
    # the chosen mixture is never worse on validation than either teacher alone
    other = np.where(rng.uniform(size=400) < 0.7, good, 1 - good)
    w = teach.best_weight(labels, noise, other)
    mixed = teach.log_loss(labels, teach.stacked(w, noise, other))
    assert mixed <= min(teach.log_loss(labels, noise), teach.log_loss(labels, other))
    assert teach.scores(labels, good) == {"accuracy": 1.0, "log_loss": pytest.approx(0.2231, 1e-3)}


def test_windows_are_runs_of_each_texts_words_of_log_uniform_length():
    long = " ".join(f"w{i}" for i in range(200))
    texts = [long] * 400 + ["one two  three", "a b c d", "  "]
    cut = teach.windows(texts, 4, np.random.default_rng(7))
    assert cut == teach.windows(texts, 4, np.random.default_rng(7))  # a function of the seed
    assert cut != teach.windows(texts, 4, np.random.default_rng(8))
    # texts of at most min_words words stay whole (white space made single)
    assert cut[-3:] == ["one two three", "a b c d", ""]
    sizes = []
    for window in cut[:400]:
        words = window.split()
        first = int(words[0][1:])
        assert words == [f"w{i}" for i in range(first, first + len(words))]  # consecutive
        sizes.append(len(words))
    assert min(sizes) >= 4 and max(sizes) <= 200
    # log-uniform in [4, 200]: half the windows under sqrt(4 x 201), about 28 words; some whole
    assert 0.4 < np.mean(np.array(sizes) < 28) < 0.6
    assert max(sizes) > 150
    starts = [int(w.split()[0][1:]) for w in cut[:400]]
    assert min(starts) == 0 and max(starts) > 150  # anywhere in the text


def test_nbsvm_weighs_each_ngram_by_its_log_count_ratio():
    text = pd.Series(["a good film", "good fun", "a bad film", "bad acting", "good", "bad"])
    labels = np.array([1, 1, 0, 0, 1, 0])
    predict = baseline.fit_nbsvm(ImdbNbsvmParams(min_df=1, C=1.0), text, labels)
    good, bad, film, unseen = predict(pd.Series(["good", "bad", "a film", "zebra"]))
    assert good > 0.5 > bad
    # "a", "film" and "a film" are in one positive and one negative review: ratio 0, no weight
    assert film == pytest.approx(unseen) and film == pytest.approx(0.5, abs=0.05)
    # the same fit twice gives the same probabilities (the teach stage's output is a DVC out)
    again = baseline.fit_nbsvm(ImdbNbsvmParams(min_df=1, C=1.0), text, labels)
    assert np.array_equal(again(text), predict(text))
    # min_df drops the n-grams of fewer reviews: "fun" and "acting" (one review each) say nothing
    predict = baseline.fit_nbsvm(ImdbNbsvmParams(min_df=2), text, labels)
    fun, acting = predict(pd.Series(["fun", "acting"]))
    assert fun == pytest.approx(acting)


@pytest.mark.parametrize(
    "fit, params, key",
    [
        (baseline.fit_nbsvm, ImdbNbsvmParams(min_df=7), "imdb.student.nbsvm.min_df"),
        (baseline.fit, ImdbBaselineParams(min_df=7), "imdb.baseline.min_df"),
    ],
)
def test_a_min_df_above_the_reviews_names_its_params_key(fit, params, key):
    # scikit-learn's ValueError ("max_df corresponds to < documents than min_df") says neither
    # which section nor which review count: the stage's one-line error says both
    text = pd.Series(["a good film", "good fun", "a bad film", "bad acting", "good", "bad"])
    with pytest.raises(PipelineError, match=rf"{key} is 7: .* 6 training reviews"):
        fit(params, text, np.array([1, 1, 0, 0, 1, 0]))
