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


@pytest.mark.parametrize("cell", ["GRU", "Transformer"])
def test_weight_decay_shrinks_the_weights_apart_from_the_gradient(cell):
    # one step from the same weights: the decayed model's weights are the plain model's less
    # learning_rate x weight_decay of where they started; biases and layer norms do not decay
    x = np.random.default_rng(1).integers(0, 11, size=(3, 7)).astype("int32")
    after = {}
    for decay in (0.0, 0.5):
        keras.utils.set_random_seed(2)
        params = hp(cell, dropout=0.0) | {"heads": 2, "seq_length": 7, "weight_decay": decay}
        model = build_char_lm(params, 11)
        start = {w.path: np.array(w) for w in model.trainable_weights}
        model.train_on_batch(x, x)
        after[decay] = {w.path: np.array(w) for w in model.trainable_weights}
    assert after[0.0].keys() == start.keys()
    kept = [p for p in start if p.rsplit("/", 1)[-1] in ("bias", "gamma", "beta")]
    assert kept and len(kept) < len(start)
    if cell == "Transformer":
        assert any(p.endswith("gamma") for p in kept)
    for path, w0 in start.items():
        if path in kept:
            np.testing.assert_array_equal(after[0.5][path], after[0.0][path], err_msg=path)
        else:
            shrink = 1e-3 * 0.5 * w0
            assert np.abs(shrink).max() > 1e-6, path
            np.testing.assert_allclose(
                after[0.5][path], after[0.0][path] - shrink, rtol=0, atol=1e-7, err_msg=path
            )
