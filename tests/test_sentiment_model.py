import keras
import numpy as np
import pytest

from rnnpipe.imdb.model import MaskedPooling, build_sentiment_model, predict_proba
from tests.tinydata import sentiment_params

VOCAB = 50


def _hp(**kw):
    return sentiment_params(units=4, embedding_dim=4, dropout=0.0, **kw).model_dump()


def _ids(seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, VOCAB, size=(3, 7)).astype("int32")
    lengths = np.array([7, 4, 2], dtype="int32")
    ids[np.arange(7)[None, :] >= lengths[:, None]] = 0  # right padding
    return ids, lengths


CASES = [
    dict(cell=cell, bidirectional=bi, layers=layers, pooling=pooling)
    for cell in ("SimpleRNN", "LSTM", "GRU")
    for bi, layers, pooling in ((True, 1, "max"), (False, 2, "last"), (True, 2, "mean"))
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_output_shape_and_padding_does_not_change_the_prediction(case):
    keras.utils.set_random_seed(0)
    model = build_sentiment_model(_hp(**case), VOCAB)
    ids, _ = _ids()
    p = np.asarray(model(ids))
    assert p.shape == (3, 1)
    assert ((p > 0) & (p < 1)).all()
    # the same reviews with 5 more padding steps: same probabilities
    padded = np.pad(ids, ((0, 0), (0, 5)))
    np.testing.assert_allclose(np.asarray(model(padded)), p, rtol=1e-5, atol=1e-6)


def test_layers_follow_the_hyperparameters():
    model = build_sentiment_model(_hp(cell="LSTM", layers=2, bidirectional=True), VOCAB)
    bi = [layer for layer in model.layers if isinstance(layer, keras.layers.Bidirectional)]
    assert len(bi) == 2
    assert all(isinstance(b.forward_layer, keras.layers.LSTM) for b in bi)
    assert bi[0].forward_layer.return_sequences and bi[1].forward_layer.return_sequences
    emb = model.get_layer("embedding")
    assert emb.mask_zero and emb.input_dim == VOCAB
    assert model.optimizer.clipnorm == 1.0


def test_cudnn_compatible_settings():
    model = build_sentiment_model(_hp(cell="GRU", bidirectional=False), VOCAB)
    gru = next(layer for layer in model.layers if isinstance(layer, keras.layers.GRU))
    assert gru.cell.reset_after and gru.cell.recurrent_dropout == 0
    assert gru.cell.activation is keras.activations.tanh
    assert gru.cell.recurrent_activation is keras.activations.sigmoid


@pytest.mark.parametrize("mode", ["max", "mean"])
def test_masked_pooling_ignores_padded_steps(mode):
    x = np.array([[[1.0], [3.0], [100.0]]], dtype="float32")
    mask = np.array([[True, True, False]])
    out = np.asarray(MaskedPooling(mode)(x, mask=mask))
    assert out.tolist() == [[3.0 if mode == "max" else 2.0]]


def test_saved_model_loads_and_predict_proba_keeps_row_order(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_sentiment_model(_hp(), VOCAB)
    ids, lengths = _ids()
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    expected = np.asarray(model(ids)).reshape(-1)
    np.testing.assert_allclose(
        predict_proba(loaded, ids, lengths, batch_size=2), expected, rtol=1e-5, atol=1e-6
    )


def test_pretrained_vectors_are_the_embeddings_start():
    vectors = np.random.default_rng(1).normal(size=(VOCAB, 4)).astype("float32")
    model = build_sentiment_model(
        _hp(pretrained=True, pooling="maxmean", embedding_dropout=0.2), VOCAB, vectors
    )
    np.testing.assert_array_equal(model.get_layer("embedding").get_weights()[0], vectors)
    other = build_sentiment_model(_hp(pretrained=False), VOCAB, vectors)
    assert not np.allclose(other.get_layer("embedding").get_weights()[0], vectors)
    with pytest.raises(ValueError, match="embedding_dim must be the vectors' size"):
        build_sentiment_model(_hp(pretrained=True), VOCAB, vectors[:, :3])
    with pytest.raises(ValueError, match="no word vectors"):
        build_sentiment_model(_hp(pretrained=True), VOCAB)


def test_maxmean_pools_both_and_ignores_padding():
    keras.utils.set_random_seed(0)
    model = build_sentiment_model(_hp(pooling="maxmean"), VOCAB)
    assert model.get_layer("maxmean_pool").output.shape[-1] == 2 * 2 * 4  # 2 directions, 2 pools
    ids, _ = _ids()
    p = np.asarray(model(ids))
    np.testing.assert_allclose(
        np.asarray(model(np.pad(ids, ((0, 0), (0, 5))))), p, rtol=1e-5, atol=1e-6
    )


def test_training_accuracy_reads_soft_labels_by_their_side_of_one_half(tmp_path):
    # the student learns from a teacher's probabilities: its "accuracy" must say how often the
    # model agrees with them, not how often a probability equals 0 or 1
    keras.utils.set_random_seed(0)
    model = build_sentiment_model(_hp(), VOCAB)
    ids, _ = _ids()
    p = np.asarray(model(ids)).reshape(-1)
    agree = np.where(p > 0.5, 0.9, 0.1).astype("float32")  # soft labels on the model's side
    hard = (p > 0.5).astype("float32")
    for labels, want in ((agree, 1.0), (1 - agree, 0.0), (hard, 1.0), (1 - hard, 0.0)):
        got = model.evaluate(ids, labels, verbose=0, return_dict=True)["accuracy"]
        assert got == pytest.approx(want)
    # hard labels: the same as Keras' BinaryAccuracy, on a mix of right and wrong
    mixed = hard.copy()
    mixed[0] = 1 - mixed[0]
    keras_acc = keras.metrics.BinaryAccuracy()
    keras_acc.update_state(mixed, p)
    got = model.evaluate(ids, mixed, verbose=0, return_dict=True)["accuracy"]
    assert float(keras_acc.result()) == pytest.approx(2 / 3)
    assert got == pytest.approx(2 / 3)
    # and the compiled metric survives saving and loading
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.evaluate(ids, 1 - agree, verbose=0, return_dict=True)["accuracy"] == 0.0
