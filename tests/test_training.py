import json

import keras
import numpy as np
import pytest

from rnnpipe.core import training


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    return x, y


def _model():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def _fit(tmp_path, epochs, settings=None, **kwargs):
    training.set_seed(1)
    x, y = _data()
    kwargs = {"patience": 10, "shuffle": False, **kwargs}
    return training.fit(
        _model(),
        x,
        (x, y),
        y=y,
        epochs=epochs,
        verbose=0,
        checkpoint_dir=tmp_path / "ckpt",
        settings=settings or {"a": 1},
        batch_size=16,
        **kwargs,
    )


class FakeValLoss(keras.callbacks.Callback):
    """Replaces val_loss by a schedule (early stopping reads the logs after user callbacks) and
    notes the weights at the end of each epoch."""

    def __init__(self, schedule, stop_at=None):
        super().__init__()
        self.schedule, self.stop_at, self.weights = schedule, stop_at, {}

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.stop_at:
            raise KeyboardInterrupt

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.schedule[epoch]
        self.weights[epoch] = self.model.get_weights()


def _same_weights(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


def test_same_seed_same_result(tmp_path):
    _, h1 = _fit(tmp_path / "1", 3, shuffle=True)
    _, h2 = _fit(tmp_path / "2", 3, shuffle=True)
    assert [e["loss"] for e in h1] == [e["loss"] for e in h2]


def test_resume_continues_after_last_finished_epoch(tmp_path):
    _, first = _fit(tmp_path, 2)
    state = json.loads(next((tmp_path / "ckpt").glob(f"*/{training.STATE}")).read_text())
    assert state["epoch"] == 2
    # started again with more epochs, it runs only epochs 2 and 3
    _, history = _fit(tmp_path, 4)
    assert [e["epoch"] for e in history] == [0, 1, 2, 3]
    assert history[:2] == first


def test_other_settings_do_not_resume(tmp_path):
    _fit(tmp_path, 2)
    _, history = _fit(tmp_path, 2, settings={"a": 2})
    assert [e["epoch"] for e in history] == [0, 1]
    assert len(list((tmp_path / "ckpt").iterdir())) == 1  # the other settings' folder is gone


@pytest.mark.parametrize("patience", [0, 1, 2, 3])
def test_patience_n_stops_after_n_epochs_without_improvement(tmp_path, patience):
    # best at epoch 2, then no improvement until epoch 8; 0 stops at the first bad epoch, as 1
    fake = FakeValLoss([5, 4, 3, 3.5, 3.6, 3.7, 3.8, 3.9, 2, 1])
    model, history = _fit(tmp_path, 10, patience=patience, callbacks=[fake])
    assert [e["epoch"] for e in history] == list(range(3 + max(patience, 1)))
    assert _same_weights(model.get_weights(), fake.weights[2])


def test_best_weights_when_all_epochs_run(tmp_path):
    fake = FakeValLoss([3, 1, 2])
    model, history = _fit(tmp_path, 3, patience=5, callbacks=[fake])
    assert len(history) == 3
    assert _same_weights(model.get_weights(), fake.weights[1])


def test_best_weights_after_a_resume(tmp_path):
    # the best epoch (0) is before the kill; the resumed process never sees it improve
    first = FakeValLoss([1, 2, 3, 4], stop_at=2)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, 4, callbacks=[first])
    model, history = _fit(tmp_path, 4, callbacks=[FakeValLoss([1, 2, 3, 4])])
    assert [e["epoch"] for e in history] == [0, 1, 2, 3]
    assert _same_weights(model.get_weights(), first.weights[0])
    # a finished run started again trains no more and returns the best weights too
    again, history_again = _fit(tmp_path, 4)
    assert history_again == history
    assert _same_weights(again.get_weights(), first.weights[0])


def test_patience_counts_epochs_before_a_resume(tmp_path):
    # killed after one bad epoch (1); the resumed run stops after the second (2)
    with pytest.raises(KeyboardInterrupt):
        _fit(tmp_path, 6, patience=2, callbacks=[FakeValLoss([1, 2, 3, 4, 5, 6], stop_at=2)])
    _, history = _fit(tmp_path, 6, patience=2, callbacks=[FakeValLoss([1, 2, 3, 4, 5, 6])])
    assert [e["epoch"] for e in history] == [0, 1, 2]


def test_early_stop_is_final(tmp_path):
    fake = FakeValLoss([1, 2, 3, 4, 5, 6])
    _, history = _fit(tmp_path, 6, patience=1, callbacks=[fake])
    assert len(history) == 2
    # started again, it does not go on training after the early stop
    _, again = _fit(tmp_path, 6, patience=1)
    assert again == history


def test_shuffled_arrays_order_is_a_function_of_seed_and_epoch():
    x = np.arange(10)
    feed = training._Shuffled([x], 4, seed=3)
    rows = lambda: np.concatenate([feed[i][0] for i in range(len(feed))])  # noqa: E731
    assert len(feed) == 3
    first = rows()
    assert sorted(first) == list(range(10))
    feed.set_epoch(1)
    assert not np.array_equal(rows(), first)
    feed.set_epoch(0)
    assert np.array_equal(rows(), first)


class RecordRate(keras.callbacks.Callback):
    """Records the optimizer's learning rate after each epoch (at="epoch") or batch."""

    def __init__(self, at: str):
        super().__init__()
        self.at, self.seen = at, []

    def _record(self):
        self.seen.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    def on_epoch_end(self, epoch, logs=None):
        if self.at == "epoch":
            self._record()

    def on_train_batch_end(self, batch, logs=None):
        if self.at == "batch":
            self._record()


def _dense_model() -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.01), "mse")
    return model


def test_epoch_decay_sets_each_epochs_learning_rate():
    from rnnpipe.core.training import EpochDecay, schedule

    assert (
        schedule({"learning_rate": 0.1}) == []
        and schedule({"learning_rate": 0.1, "lr_decay": 1.0}) == []
    )
    (decay,) = schedule({"learning_rate": 0.01, "lr_decay": 0.5})
    assert isinstance(decay, EpochDecay)
    model, x, record = _dense_model(), np.zeros((8, 2), "float32"), RecordRate("epoch")
    model.fit(x, x[:, :1], epochs=3, verbose=0, callbacks=[decay, record])
    assert record.seen == pytest.approx([0.01, 0.005, 0.0025])
    # from epoch 2 on (a resumed run, a Hyperband trial going on): epoch 2's rate
    record.seen.clear()
    model.fit(x, x[:, :1], initial_epoch=2, epochs=3, verbose=0, callbacks=[decay, record])
    assert record.seen == pytest.approx([0.0025])


def test_warmup_rises_over_the_first_epochs_start_then_decays_per_epoch():
    from rnnpipe.charlm.warmup import WarmUp, schedule, warmup_batches
    from rnnpipe.core.training import EpochDecay

    assert [warmup_batches(s, 156) for s in (0.0, 0.5, 1.0, 0.001)] == [0, 78, 156, 1]
    (plain,) = schedule({"learning_rate": 0.01, "lr_decay": 0.5}, 0.0, 4)
    assert type(plain) is EpochDecay  # no warm-up: train's schedule as before
    assert schedule({"learning_rate": 0.01}, 0.0, 4) == []
    (warm,) = schedule({"learning_rate": 0.01, "lr_decay": 0.5}, 0.5, 4)
    assert isinstance(warm, WarmUp) and warm.batches == 2
    model, x, record = _dense_model(), np.zeros((8, 2), "float32"), RecordRate("batch")
    # 4 batches of 2 an epoch
    model.fit(x, x[:, :1], batch_size=2, epochs=2, verbose=0, callbacks=[warm, record])
    # batch b of the first 2 gets 0.01 x (b + 1) / 2; the second epoch is decayed only
    assert record.seen == pytest.approx([0.005, 0.01, 0.01, 0.01, 0.005, 0.005, 0.005, 0.005])
    # a resumed run that starts at epoch 1 gets no warm-up
    record.seen.clear()
    model.fit(
        x, x[:, :1], batch_size=2, initial_epoch=1, epochs=2, verbose=0, callbacks=[warm, record]
    )
    assert record.seen == pytest.approx([0.005] * 4)


class _Stream:
    def __init__(self, tty):
        self.tty = tty

    def isatty(self):
        if self.tty is None:
            raise ValueError("I/O operation on closed file")
        return self.tty


@pytest.mark.parametrize(
    "out, err, verbose",
    [
        (True, True, 1),  # a person watches: Keras' bar, redrawn each batch
        (True, False, 2),  # logs to a file
        (False, True, 2),  # stdout, where Keras draws the bar, to a file: no carriage returns in it
        (False, False, 2),  # dvc repro in CI, a log file
        (None, True, 2),  # a closed stream
    ],
)
def test_verbosity_shows_the_bar_only_on_a_terminal(monkeypatch, out, err, verbose):
    monkeypatch.setattr("sys.stdout", _Stream(out))
    monkeypatch.setattr("sys.stderr", _Stream(err))
    assert training.verbosity() == verbose


def test_fit_is_as_verbose_as_verbosity_says(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(training, "verbosity", lambda: 0)
    monkeypatch.setattr(keras.Model, "fit", lambda self, *a, **k: seen.append(k["verbose"]))
    x, y = _data()
    training.fit(
        _model(), x, (x, y), y=y, epochs=1, patience=1, checkpoint_dir=tmp_path, settings={"a": 1}
    )
    training.fit(
        _model(),
        x,
        (x, y),
        y=y,
        epochs=1,
        patience=1,
        checkpoint_dir=tmp_path,
        settings={"a": 2},
        verbose=2,
    )
    assert seen == [0, 2]


def test_batches_of_arrays_and_feeds():
    x = np.zeros((65, 3))
    assert training.batches(x, 16) == 5 and training.batches(x) == 3  # fit's default: 32
    assert training.batches(training._Shuffled([x], 16, seed=0)) == 5


def test_report_holds_no_run_ids_and_counts_the_best_epoch_from_1():
    history = [
        {"epoch": 0, "loss": 1.0, "val_loss": 0.9},
        {"epoch": 1, "val_loss": 0.7},
        {"epoch": 2, "val_loss": 0.8},
    ]
    assert training.report(history, 313, 64, 252.0, [100.0, 80.0, 72.0]) == {
        "epochs": 3,
        "best_epoch": 2,
        "batches": 313,
        "batch_size": 64,
        "minutes": 4.2,
        "epoch_minutes": [1.667, 1.333, 1.2],
    }
