"""Training that is deterministic given the seed and resumes where a killed run stopped.

`fit` keeps its state in a checkpoint folder (kept outside DVC's outputs, which DVC deletes
before a stage runs): the model after the last finished epoch, the best weights so far, and the
epoch/patience bookkeeping. Started again with the same settings, it goes on from there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import keras

from rnnpipe.atomic import atomic_path, write_json

log = logging.getLogger(__name__)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the backend; make TensorFlow ops deterministic."""
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def settings_key(settings: dict) -> str:
    """A short hash of everything that defines a run, so a checkpoint of other settings is not
    resumed."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class _Checkpoint(keras.callbacks.Callback):
    """After each epoch: save the model, the best weights and the state, each atomically."""

    def __init__(self, folder: Path, state: dict, monitor: str, patience: int):
        super().__init__()
        self.folder, self.state, self.monitor, self.patience = folder, state, monitor, patience

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = float(logs[self.monitor])
        self.state["history"].append({"epoch": epoch, **{k: float(v) for k, v in logs.items()}})
        if self.state["best"] is None or value < self.state["best"]:
            self.state.update(best=value, best_epoch=epoch, wait=0)
            with atomic_path(self.folder / "best.weights.h5") as tmp:
                self.model.save_weights(tmp)
        else:
            self.state["wait"] += 1
        self.state["epoch"] = epoch + 1
        with atomic_path(self.folder / "last.keras") as tmp:
            self.model.save(tmp)
        write_json(self.folder / "state.json", self.state)
        if self.state["wait"] > self.patience:
            log.info("early stop: %s has not improved for %d epochs",
                     self.monitor, self.state["wait"])
            self.model.stop_training = True


def fit(model: keras.Model, train, valid, *, epochs: int, patience: int, checkpoint_dir: Path,
        settings: dict, callbacks=(), monitor: str = "val_loss", **fit_kwargs):
    """Train `model` (compiled) on `train`, validating on `valid`, early-stopping on `monitor`
    (lower is better) after `patience` epochs without improvement, and end with the best
    weights. Returns (model, history) where history is a list of per-epoch logs, resumed epochs
    included. `settings` (params, data fingerprint) decides whether a checkpoint is resumable.
    """
    folder = Path(checkpoint_dir) / settings_key(settings)
    state_file = folder / "state.json"
    state = {"epoch": 0, "best": None, "best_epoch": None, "wait": 0, "history": []}
    if state_file.exists() and (folder / "last.keras").exists():
        state = json.loads(state_file.read_text())
        model = keras.models.load_model(folder / "last.keras")
        log.info("resuming from %s after epoch %d", folder, state["epoch"])
    else:
        if checkpoint_dir.exists():
            shutil.rmtree(checkpoint_dir)  # checkpoints of other settings are stale
        folder.mkdir(parents=True)
    done = state["epoch"] >= epochs or state["wait"] > patience
    if not done:
        model.fit(train, validation_data=valid, epochs=epochs, initial_epoch=state["epoch"],
                  callbacks=[_Checkpoint(folder, state, monitor, patience), *callbacks],
                  **fit_kwargs)
    model.load_weights(folder / "best.weights.h5")
    return model, state["history"]


def clear_checkpoints(checkpoint_dir: Path) -> None:
    """Call once the stage's outputs are written: a finished run needs no resuming."""
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
