import keras
import numpy as np
import pytest

from rnnpipe.charlm.model import build_char_lm, reset_states


def hp(cell, layers=2, dropout=0.1):
    return dict(
        cell=cell,
        units=8,
        layers=layers,
        embedding_dim=4,
        dropout=dropout,
        learning_rate=1e-3,
        clipnorm=1.0,
    )


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM", "GRU"])
def test_builder_gives_logits_for_every_position(cell):
    model = build_char_lm(hp(cell), vocab_size=11)
    rnns = [layer for layer in model.layers if isinstance(layer, keras.layers.RNN)]
    assert len(rnns) == 2 and all(type(r).__name__ == cell for r in rnns)
    assert any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)
    x = np.random.default_rng(0).integers(0, 11, size=(3, 7)).astype("int32")
    assert model.predict(x, verbose=0).shape == (3, 7, 11)
    loss = model.train_on_batch(x, x)
    assert np.isfinite(loss)
    assert model.optimizer.clipnorm == 1.0


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM", "GRU"])
def test_stateful_model_carries_state_until_reset(cell):
    model = build_char_lm(hp(cell, layers=1, dropout=0.0), 11, stateful=True, batch_size=2)
    x = np.arange(1, 11, dtype="int32").reshape(2, 5)
    first = model.predict_on_batch(x)
    carried = model.predict_on_batch(x)
    assert not np.allclose(first, carried)  # the state from the first call was used
    reset_states(model)
    np.testing.assert_allclose(model.predict_on_batch(x), first, rtol=1e-5, atol=1e-6)
    # reading two halves with carried state = reading the whole at once
    reset_states(model)
    whole = model.predict_on_batch(x)
    reset_states(model)
    halves = np.concatenate(
        [model.predict_on_batch(x[:, :2]), model.predict_on_batch(x[:, 2:])], axis=1
    )
    np.testing.assert_allclose(halves, whole, rtol=1e-4, atol=1e-5)


def test_stateful_model_needs_a_batch_size():
    with pytest.raises(ValueError):
        build_char_lm(hp("LSTM"), 11, stateful=True)
