"""A run killed mid-training and started again ends exactly as an uninterrupted one."""

import functools
import os
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from rnnpipe.charlm import model as charlm
from rnnpipe.core import training
from rnnpipe.imdb import inputs
from rnnpipe.imdb.model import build_sentiment_model
from tests.warm_stages import python_module

SEED = 7
IMDB_HP = {
    "cell": "GRU",
    "units": 4,
    "layers": 1,
    "bidirectional": False,
    "embedding_dim": 4,
    "dropout": 0.0,
    "pooling": "max",
    "learning_rate": 0.01,
    "clipnorm": 1.0,
}
CHARLM_HP = {
    "cell": "GRU",
    "units": 8,
    "layers": 1,
    "embedding_dim": 4,
    "dropout": 0.0,
    "learning_rate": 0.01,
    "clipnorm": 1.0,
}
VOCAB, MAX_LEN, BATCH = 20, 16, 8


class Kill(keras.callbacks.Callback):
    """Interrupts training at the second batch of epoch 1, as a kill would."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 1:
            raise KeyboardInterrupt


@pytest.fixture
def epochs_told(monkeypatch):
    """The epochs fit tells its train feed (one that orders its data by (seed, epoch))."""
    told = []
    tell = training._SetEpoch.on_epoch_begin

    def spy(self, epoch, logs=None):
        told.append(epoch)
        tell(self, epoch, logs)

    monkeypatch.setattr(training._SetEpoch, "on_epoch_begin", spy)
    return told


def _same_weights(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


def _interrupted_then_resumed(run, tmp_path):
    """run(checkpoint_dir, callbacks) -> (model, history); returns both runs' results."""
    whole = run(tmp_path / "whole", [])
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed", [Kill()])
    resumed = run(tmp_path / "killed", [])
    return whole, resumed


def _imdb_split(n, seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, MAX_LEN + 1, n)
    ids = rng.integers(1, VOCAB, (n, MAX_LEN)) * (np.arange(MAX_LEN) < lengths[:, None])
    return {
        "ids": ids.astype("int32"),
        "lengths": lengths.astype("int32"),
        "labels": rng.integers(0, 2, n).astype("int8"),
    }


def _imdb_run(checkpoint_dir, callbacks, run_id="run-1", crop=0.0, timings=None):
    training.set_seed(SEED)
    train, valid = _imdb_split(96, 0), _imdb_split(32, 1)
    return training.fit(
        build_sentiment_model(IMDB_HP, VOCAB),
        inputs.dataset(train, BATCH, MAX_LEN, seed=SEED, crop=crop, crop_min_tokens=2),
        inputs.dataset(valid, BATCH, MAX_LEN),
        epochs=3,
        patience=5,
        checkpoint_dir=checkpoint_dir,
        settings={"seed": SEED},
        callbacks=callbacks,
        run_id=run_id,
        snapshots=Path(checkpoint_dir).with_name(Path(checkpoint_dir).name + "-epochs"),
        timings=timings,
        verbose=0,
        shuffle=False,
    )


def test_imdb_dataset_order_is_a_function_of_seed_and_epoch():
    split = _imdb_split(64, 0)

    def labels(ds):
        return np.concatenate([y.numpy()[:, 0] for _, y in ds])

    ds = inputs.dataset(split, BATCH, MAX_LEN, seed=SEED)
    first = labels(ds)
    assert np.array_equal(labels(ds), first)  # a new iteration does not reshuffle by itself
    ds.set_epoch(1)
    second = labels(ds)
    assert not np.array_equal(second, first)
    fresh = inputs.dataset(split, BATCH, MAX_LEN, seed=SEED)
    fresh.set_epoch(1)
    assert np.array_equal(labels(fresh), second)
    # every review once, each batch cut to its longest review
    batches = list(inputs.dataset(split, BATCH, MAX_LEN))
    assert len(batches) == ds.cardinality()
    assert sum(len(y) for _, y in batches) == 64
    assert all(x.shape[1] <= MAX_LEN for x, _ in batches)


@pytest.mark.slow  # trains and kills real runs: integration
@pytest.mark.parametrize("crop", [0.0, 0.5])  # crops: the windows of an epoch come back too
def test_imdb_resume_is_exact(tmp_path, epochs_told, crop):
    run = functools.partial(_imdb_run, crop=crop)
    (m1, h1), (m2, h2) = _interrupted_then_resumed(run, tmp_path)
    assert epochs_told == [0, 1, 2] + [0, 1] + [1, 2]  # whole, killed, resumed
    assert [e["epoch"] for e in h2] == [0, 1, 2]
    assert h2 == h1
    assert _same_weights(m2.get_weights(), m1.get_weights())
    # the weights after each epoch (the compare stage's recurrent row): the killed run's
    # first epoch kept through the resume, every file the same bytes as the whole run's
    whole, resumed = tmp_path / "whole-epochs", tmp_path / "killed-epochs"
    names = ["epoch1.npz", "epoch2.npz", "epoch3.npz", "fit.json"]
    assert sorted(p.name for p in resumed.iterdir()) == names
    assert all((whole / n).read_bytes() == (resumed / n).read_bytes() for n in names)
    best = min(h1, key=lambda e: e["val_loss"])["epoch"] + 1  # fit ends with the best
    model = build_sentiment_model(IMDB_HP, VOCAB)
    training.load_snapshot(model, resumed, best)
    assert _same_weights(model.get_weights(), m1.get_weights())


@pytest.mark.slow  # trains
def test_fit_times_every_epoch_a_resumed_run_included(tmp_path):
    timings = []
    with pytest.raises(KeyboardInterrupt):
        _imdb_run(tmp_path / "ckpt", [Kill()], timings=timings)
    assert timings == []  # filled when fit returns
    _, history = _imdb_run(tmp_path / "ckpt", [], timings=timings)
    assert len(timings) == len(history) == 3 and all(t > 0 for t in timings)


def _charlm_run(feed, dropout):
    def run(checkpoint_dir, callbacks):
        training.set_seed(SEED)
        ids = np.random.default_rng(0).integers(0, 12, 600).astype("int32")
        train_ids, valid_ids = ids[:480], ids[480:]
        hp = {**CHARLM_HP, "dropout": dropout}
        if feed == "tbptt":
            (x, y), valid = (
                charlm.stream_batches(train_ids, BATCH, 10),
                charlm.stream_batches(valid_ids, BATCH, 5),
            )
            model = charlm.build_char_lm(hp, 12, stateful=True, batch_size=BATCH)
            callbacks, shuffle = [charlm.ResetStates(), *callbacks], False
        else:
            (x, y), valid = (
                charlm.window_batches(train_ids, 10),
                charlm.window_batches(valid_ids, 10),
            )
            model = charlm.build_char_lm(hp, 12)
            shuffle = True
        return training.fit(
            model,
            x,
            valid,
            y=y,
            epochs=3,
            patience=5,
            checkpoint_dir=checkpoint_dir,
            settings={"seed": SEED, "feed": feed},
            callbacks=callbacks,
            batch_size=BATCH,
            shuffle=shuffle,
            verbose=0,
        )

    return run


@pytest.mark.slow
@pytest.mark.parametrize("feed, dropout", [("windows", 0.0), ("windows", 0.3), ("tbptt", 0.0)])
def test_charlm_resume_is_exact(tmp_path, epochs_told, feed, dropout):
    (m1, h1), (m2, h2) = _interrupted_then_resumed(_charlm_run(feed, dropout), tmp_path)
    # the windows are shuffled by (seed, epoch); TBPTT streams are fed in order
    assert epochs_told == ([0, 1, 2, 0, 1, 1, 2] if feed == "windows" else [])
    assert [e["epoch"] for e in h2] == [0, 1, 2]
    assert h2 == h1
    assert _same_weights(m2.get_weights(), m1.get_weights())


class Die(keras.callbacks.Callback):
    """SIGKILL to this process at the third batch of epoch 1: no clean-up at all."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 2:
            os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.slow  # trains and kills real runs: integration
def test_resume_after_sigkill_in_another_process(tmp_path):
    run = _charlm_run("windows", 0.3)
    whole_model, whole = run(tmp_path / "whole", [])
    from tests.conftest import warm, without_coverage  # not in the child processes

    # `python -m tests.test_resume DIR` (below), forked from the warm runner when there is one
    child = subprocess.run(
        python_module("tests.test_resume", str(tmp_path / "killed")),
        cwd=Path(__file__).parents[1],
        env=warm(without_coverage(os.environ)),
        capture_output=True,
        text=True,
    )
    assert child.returncode == -9, child.stderr[-2000:]
    assert (
        training.resumable_run_id(tmp_path / "killed", {"seed": SEED, "feed": "windows"}) is None
    )  # no run id given, but a checkpoint
    model, history = run(tmp_path / "killed", [])
    assert history == whole
    assert _same_weights(model.get_weights(), whole_model.get_weights())


@pytest.mark.slow  # trains and kills real runs: integration
def test_resumable_run_id(tmp_path):
    ckpt, settings = tmp_path / "ckpt", {"seed": SEED}
    assert training.resumable_run_id(ckpt, settings) is None
    with pytest.raises(KeyboardInterrupt):
        _imdb_run(ckpt, [Kill()], run_id="abc")
    assert training.resumable_run_id(ckpt, settings) == "abc"
    assert training.resumable_run_id(ckpt, {"seed": SEED + 1}) is None
    # the stage passes the resumable id back; the run finishes; the stage clears checkpoints
    _imdb_run(ckpt, [], run_id=training.resumable_run_id(ckpt, settings))
    assert training.resumable_run_id(ckpt, settings) == "abc"
    training.clear_checkpoints(ckpt)
    assert training.resumable_run_id(ckpt, settings) is None


if __name__ == "__main__":  # the process test_resume_after_sigkill_in_another_process kills
    _charlm_run("windows", 0.3)(sys.argv[1], [Die()])
