"""Training that is deterministic given the seed and resumes exactly where a killed run stopped.

`fit` trains with Keras' own `BackupAndRestore` and `EarlyStopping(restore_best_weights=True)`,
each subclassed only to keep its state in a checkpoint folder (kept outside DVC's outputs,
which DVC deletes before a stage runs): the weights and optimizer after the last finished
epoch, the dropout RNG states, the early-stopping counters and best weights, the history and
the MLflow run id. Started again with the same settings, it goes on from there and ends as an
uninterrupted run would: the data order of an epoch is a function of (seed, epoch), not of
how many epochs this process has run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np

from rnnpipe.core.atomic import atomic_path, write_json

log = logging.getLogger(__name__)

STATE = "training_metadata.json"  # BackupAndRestore's metadata file, holding the whole state


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the backend; make TensorFlow ops deterministic."""
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def _tty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no stream, or a closed one
        return False


def verbosity() -> int:
    """Keras' `verbose` for fit: 1, a progress bar redrawn each batch, when a person watches
    (stdout, where Keras draws it, and stderr, where the logs go, both terminals); else 2, one
    line per epoch, which reads well in a log file where the bar's carriage returns do not."""
    return 1 if _tty(sys.stdout) and _tty(sys.stderr) else 2


def batches(train, batch_size: int | None = None) -> int:
    """Batches in an epoch of `train`: arrays in batches of `batch_size` (fit's default 32), or
    a feed that knows its length (a tf.data dataset of known size, a PyDataset)."""
    if isinstance(train, np.ndarray):
        return -(-len(train) // (batch_size or 32))
    if hasattr(train, "cardinality"):
        return int(train.cardinality())
    return len(train)


def report(
    history: list[dict],
    batches: int,
    batch_size: int,
    seconds: float,
    epoch_seconds: list[float] = (),
    monitor: str = "val_loss",
) -> dict:
    """A train stage's report (reports/<project>/train.json): epochs run, the best by `monitor`
    (counted from 1), batches per epoch of batch_size, minutes, and the minutes of each epoch
    (the compare stage's recurrent row counts those of the epochs it takes). Only the minutes
    vary between two runs of the same data and params."""
    scored = [e for e in history if monitor in e]
    best = min(scored, key=lambda e: e[monitor])["epoch"] + 1 if scored else None
    return {
        "epochs": len(history),
        "best_epoch": best,
        "batches": batches,
        "batch_size": batch_size,
        "minutes": round(seconds / 60, 2),
        "epoch_minutes": [round(s / 60, 3) for s in epoch_seconds],
    }


def settings_key(settings: dict) -> str:
    """A short hash of everything that defines a run, so a checkpoint of other settings is not
    resumed."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _read_state(folder: Path) -> dict | None:
    try:
        return json.loads((folder / STATE).read_text())
    except (OSError, ValueError):
        return None


def resumable_run_id(checkpoint_dir: Path, settings: dict) -> str | None:
    """The MLflow run id stored by an unfinished run with these settings, else None."""
    state = _read_state(Path(checkpoint_dir) / settings_key(settings))
    return state.get("run_id") if state else None


def load_snapshot(model: keras.Model, snapshots: Path, epoch: int) -> None:
    """Set `model`'s weights to those after `epoch` (counted from 1) of a fit with
    `snapshots` (the model built as that one was)."""
    model.set_weights(_load_arrays(Path(snapshots) / _snapshot(epoch)))


def clear_checkpoints(checkpoint_dir: Path) -> None:
    """Call once the stage's outputs are written: a finished run needs no resuming."""
    shutil.rmtree(checkpoint_dir, ignore_errors=True)


def _rng_variables(model: keras.Model) -> list:
    """The model's variables that save_weights leaves out: the dropout seed generators."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def _save_arrays(path: Path, arrays: list) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, *arrays)


def _load_arrays(path: Path) -> list:
    with np.load(path) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


class _EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' early stopping, its counters and best weights kept in the run's state."""

    def __init__(self, folder: Path, state: dict, **kwargs):
        super().__init__(restore_best_weights=True, **kwargs)
        self.folder, self.state = folder, state

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        saved = self.state["early"]
        if saved:
            self.wait, self.best = saved["wait"], saved["best"]
            self.best_epoch, self.stopped_epoch = saved["best_epoch"], saved["stopped_epoch"]
            self.best_weights = _load_arrays(self.folder / saved["best_weights"])

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self.best_weights is None:
            return
        name = f"best{self.best_epoch}.npz"
        if self.best_epoch == epoch:
            _save_arrays(self.folder / name, self.best_weights)
        self.state["early"] = {
            "wait": self.wait,
            "best": float(self.best),
            "best_epoch": self.best_epoch,
            "stopped_epoch": self.stopped_epoch,
            "best_weights": name,
        }

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        # some Keras 3 versions restore only after an early stop; end with the best in any case
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def _snapshot(epoch: int) -> str:
    """The file of the weights after `epoch` epochs (counted from 1)."""
    return f"epoch{epoch}.npz"


class _Backup(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore, with the run's whole state in its metadata file.

    Each epoch's weights go to a new file, written atomically, and the metadata naming it is
    written (atomically) last, so a kill at any moment leaves a consistent backup."""

    def __init__(self, folder: Path, state: dict, keep_epochs: bool = False):
        super().__init__(str(folder), delete_checkpoint=False)
        self.folder, self.state, self.keep_epochs = folder, state, keep_epochs
        if state["weights"]:
            self._weights_path = str(folder / state["weights"])

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self.epoch_start = time.perf_counter()

    def _load_model(self):
        super()._load_model()
        if self.state["weights"]:
            for v, value in zip(_rng_variables(self.model), self.state["rng"], strict=True):
                v.assign(np.asarray(value, dtype=v.dtype))

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self.state["history"].append({"epoch": epoch, **logs})
        self.state["seconds"].append(time.perf_counter() - self.epoch_start)
        super().on_epoch_end(epoch, logs)

    def _save_model(self):
        name = f"epoch{self._current_epoch}.weights.h5"
        with atomic_path(self.folder / name) as tmp:
            self.model.save_weights(tmp)
        if self.keep_epochs:  # the model's weights alone, for fit's `snapshots`
            _save_arrays(self.folder / _snapshot(self._current_epoch), self.model.get_weights())
        self.state.update(
            epoch=self._current_epoch,
            weights=name,
            stopped=bool(self.model.stop_training),
            rng=[np.asarray(v).tolist() for v in _rng_variables(self.model)],
        )
        write_json(self.folder / STATE, self.state)
        keep = {STATE, name, (self.state["early"] or {}).get("best_weights")}
        if self.keep_epochs:
            keep |= {_snapshot(e) for e in range(1, self._current_epoch + 1)}
        for path in self.folder.iterdir():
            if path.name not in keep:
                path.unlink()


class _Shuffled(keras.utils.PyDataset):
    """Arrays in batches, shuffled in an order that is a function of (seed, epoch): Keras' own
    shuffle would start again from its first order after a resume."""

    def __init__(self, arrays: list, batch_size: int, seed: int):
        super().__init__()
        self.arrays, self.batch_size, self.seed = arrays, batch_size, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.order = np.random.default_rng([self.seed, epoch]).permutation(len(self.arrays[0]))

    def __len__(self):
        return -(-len(self.arrays[0]) // self.batch_size)

    def __getitem__(self, i):
        rows = self.order[i * self.batch_size : (i + 1) * self.batch_size]
        return tuple(a[rows] for a in self.arrays)


class EpochDecay(keras.callbacks.Callback):
    """Learning rate = base x decay^epoch, set when each epoch begins: a resumed run, or a
    Hyperband trial that goes on from an earlier one, gets the rate of its epoch."""

    def __init__(self, base: float, decay: float):
        super().__init__()
        self.base, self.decay = base, decay

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.learning_rate = self.base * self.decay**epoch


def schedule(hp: dict) -> list:
    """The callbacks that the hyperparameters ask for (lr_decay below 1)."""
    decay = hp.get("lr_decay", 1.0)
    return [EpochDecay(hp["learning_rate"], decay)] if decay != 1.0 else []


class TimeLimit(keras.callbacks.Callback):
    """Stops training at the end of the first epoch that ends `minutes` after training began
    (None: never); `cut` says whether it did."""

    def __init__(self, minutes: float | None):
        super().__init__()
        self.minutes, self.cut = minutes, False

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        last = epoch + 1 >= self.params.get("epochs", epoch + 2)  # ends anyway: not a cut
        if (
            self.minutes is not None
            and not last
            and time.perf_counter() - self.start >= 60 * self.minutes
        ):
            self.model.stop_training = self.cut = True


class _SetEpoch(keras.callbacks.Callback):
    """Tells a feed that orders its data by (seed, epoch) which epoch begins."""

    def __init__(self, feed):
        super().__init__()
        self.feed = feed

    def on_epoch_begin(self, epoch, logs=None):
        self.feed.set_epoch(epoch)


def _feed(train, seed: int, fit_kwargs: dict):
    """Arrays Keras would shuffle (fit's default) are shuffled by (seed, epoch) instead."""
    if not isinstance(train, np.ndarray) or not fit_kwargs.get("shuffle", True):
        return train
    arrays = [train, fit_kwargs.pop("y", None), fit_kwargs.pop("sample_weight", None)]
    fit_kwargs["shuffle"] = False
    return _Shuffled(
        [a for a in arrays if a is not None], fit_kwargs.pop("batch_size", None) or 32, seed
    )


def _new_state() -> dict:
    return {
        "epoch": 0,
        "batch": 0,
        "weights": None,
        "rng": [],
        "early": None,
        "stopped": False,
        "history": [],
        "seconds": [],  # of each epoch
        "run_id": None,
    }


def fit(
    model: keras.Model,
    train,
    valid,
    *,
    epochs: int,
    patience: int,
    checkpoint_dir: Path,
    settings: dict,
    callbacks=(),
    monitor: str = "val_loss",
    run_id: str | None = None,
    snapshots: Path | None = None,
    timings: list | None = None,
    **fit_kwargs,
):
    """Train `model` (compiled, built) on `train`, validating on `valid`; stop once `monitor`
    has not improved for `patience` epochs (Keras' EarlyStopping: 0 stops at the first epoch
    without improvement; the direction follows the name, lower for losses) and end with the
    best weights. Returns (model, history): history is a list of per-epoch logs, epochs of an
    earlier, killed run included.

    `settings` (params, seed, data fingerprint) decides whether a checkpoint is resumed; its
    "seed" (0 if absent) orders numpy `train` arrays, which are shuffled per epoch by
    (seed, epoch) unless shuffle=False. A `train` feed with a `set_epoch(epoch)` method (such as
    rnnpipe.imdb.inputs.dataset) is told each epoch before it is read. `run_id` (an MLflow run
    id) is kept with the checkpoint, for resumable_run_id. `verbose` defaults to verbosity().

    `snapshots` (a folder): the model's weights after each epoch, epoch1.npz, epoch2.npz, ...
    (np.savez of get_weights(), counted from 1, before any restore of the best), and
    fit.json, the settings and the history; kept in the checkpoint until the run ends, so a
    resumed run has them all. `timings` (a list) is extended with each epoch's seconds.
    """
    folder = Path(checkpoint_dir) / settings_key(settings)
    state = _read_state(folder)
    if state is not None and snapshots is not None and not _has_snapshots(folder, state):
        log.info("the checkpoint in %s kept no weights per epoch: training from the start", folder)
        state = None
    if state is None:
        clear_checkpoints(checkpoint_dir)  # checkpoints of other settings are stale
        folder.mkdir(parents=True)
        state = _new_state()
    elif state["epoch"]:
        log.info("resuming from %s after epoch %d", folder, state["epoch"])
    state.setdefault("seconds", [])  # a checkpoint of an older rnnpipe
    if run_id is not None:
        state["run_id"] = run_id
    write_json(folder / STATE, state)  # the run id is resumable even if killed in epoch 0
    if state["stopped"] or state["epoch"] >= epochs:
        if state["early"]:
            model.set_weights(_load_arrays(folder / state["early"]["best_weights"]))
        elif state["weights"]:  # `monitor` never logged: the last weights
            model.load_weights(folder / state["weights"])
        return _finish(model, folder, state, settings, snapshots, timings)
    fit_kwargs.setdefault("verbose", verbosity())
    train = _feed(train, int(settings.get("seed", 0)), fit_kwargs)
    set_epoch = [_SetEpoch(train)] if hasattr(train, "set_epoch") else []
    # user callbacks see (and may add to) an epoch's logs before its state is saved
    model.fit(
        train,
        validation_data=valid,
        epochs=epochs,
        callbacks=[
            *set_epoch,
            *callbacks,
            _EarlyStopping(folder, state, monitor=monitor, patience=patience),
            _Backup(folder, state, keep_epochs=snapshots is not None),
        ],
        **fit_kwargs,
    )
    if state["stopped"] and state["early"]:
        log.info(
            "early stop after epoch %d: best %s at epoch %d",
            state["epoch"] - 1,
            monitor,
            state["early"]["best_epoch"],
        )
    return _finish(model, folder, state, settings, snapshots, timings)


def _has_snapshots(folder: Path, state: dict) -> bool:
    """Whether a checkpoint holds the weights and seconds of every epoch it ran."""
    epochs = state.get("epoch", 0)
    return len(state.get("seconds", [])) == epochs and all(
        (folder / _snapshot(e)).is_file() for e in range(1, epochs + 1)
    )


def _finish(model, folder: Path, state: dict, settings: dict, snapshots, timings):
    """fit's return value, after writing its snapshots and timings when asked."""
    if timings is not None:
        timings.extend(state["seconds"])
    if snapshots is not None:
        snapshots = Path(snapshots)
        snapshots.mkdir(parents=True, exist_ok=True)
        for e in range(1, state["epoch"] + 1):
            with atomic_path(snapshots / _snapshot(e)) as tmp:
                shutil.copyfile(folder / _snapshot(e), tmp)
        write_json(snapshots / "fit.json", {"settings": settings, "history": state["history"]})
    return model, state["history"]
