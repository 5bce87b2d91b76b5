import json

import keras
import numpy as np
import pytest

from rnnpipe import training


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    return x, y


def _model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def _fit(tmp_path, epochs, settings=None):
    training.set_seed(1)
    x, y = _data()
    return training.fit(_model(), x, (x, y), y=y, epochs=epochs, patience=10, verbose=0,
                        checkpoint_dir=tmp_path / "ckpt", settings=settings or {"a": 1},
                        batch_size=16, shuffle=False)


def test_same_seed_same_result(tmp_path):
    _, h1 = _fit(tmp_path / "1", 3)
    _, h2 = _fit(tmp_path / "2", 3)
    assert [e["loss"] for e in h1] == [e["loss"] for e in h2]


def test_resume_continues_after_last_finished_epoch(tmp_path):
    _, first = _fit(tmp_path, 2)
    state = json.loads(next((tmp_path / "ckpt").glob("*/state.json")).read_text())
    assert state["epoch"] == 2
    # started again with more epochs, it runs only epochs 2 and 3
    _, history = _fit(tmp_path, 4)
    assert [e["epoch"] for e in history] == [0, 1, 2, 3]
    assert history[:2] == first


def test_other_settings_do_not_resume(tmp_path):
    _fit(tmp_path, 2)
    _, history = _fit(tmp_path, 2, settings={"a": 2})
    assert [e["epoch"] for e in history] == [0, 1]


@pytest.mark.parametrize("patience", [0])
def test_early_stopping_keeps_best_weights(tmp_path, patience):
    training.set_seed(1)
    x, y = _data()
    # validation on flipped labels gets worse as training improves: stop after one bad epoch
    model, history = training.fit(_model(), x, (x, 1 - y), y=y, epochs=20, patience=patience,
                                  verbose=0, checkpoint_dir=tmp_path / "c", settings={},
                                  batch_size=16)
    assert len(history) < 20
    best = min(history, key=lambda e: e["val_loss"])
    assert model.evaluate(x, 1 - y, verbose=0) == pytest.approx(best["val_loss"], rel=1e-4)
