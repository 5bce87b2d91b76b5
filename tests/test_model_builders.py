"""What both projects' model builders promise the training code: every variable exists before
`fit` (so TensorFlow traces the train step once, not twice), and a weights file restores the
optimizer with the weights (Keras Tuner's Hyperband continues a trial from one)."""

import keras
import numpy as np
import pytest

from rnnpipe.charlm.model import build_char_lm
from rnnpipe.imdb.model import build_sentiment_model
from tests.tinydata import charlm_params, sentiment_params

RNG = np.random.default_rng(0)
IDS = RNG.integers(1, 20, size=(16, 7)).astype("int32")


def sentiment():
    hp = sentiment_params(cell="GRU", units=4, embedding_dim=4).model_dump()
    return build_sentiment_model(hp, 20), (IDS, (IDS[:, 0] > 10).astype("float32"))


def char_lm():
    hp = charlm_params(cell="LSTM", units=4, embedding_dim=4).model_dump()
    return build_char_lm(hp, 20), (IDS[:, :-1], IDS[:, 1:])


BUILDERS = {"sentiment": sentiment, "char_lm": char_lm}


def counting_traces(model: keras.Model) -> list:
    """A list that gets an entry each time the train step runs in Python: on TensorFlow, once
    per trace of the step."""
    calls, step = [], model.train_step

    def counted(data):
        calls.append(1)
        return step(data)

    model.train_step = counted
    return calls


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf.function tracing")
@pytest.mark.parametrize("name", BUILDERS)
def test_the_train_step_is_traced_once(name):
    model, (x, y) = BUILDERS[name]()
    traces = counting_traces(model)
    model.fit(x, y, batch_size=8, epochs=2, validation_data=(x, y), verbose=0)
    assert len(traces) == 1


@pytest.mark.parametrize("name", BUILDERS)
def test_a_weights_file_restores_the_optimizer_too(name, tmp_path):
    keras.utils.set_random_seed(0)
    model, (x, y) = BUILDERS[name]()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.save_weights(tmp_path / "trial.weights.h5")
    again, _ = BUILDERS[name]()
    again.load_weights(tmp_path / "trial.weights.h5")
    assert int(again.optimizer.iterations.numpy()) == 2
    for saved, loaded in zip(model.optimizer.variables, again.optimizer.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(loaded), np.asarray(saved))
