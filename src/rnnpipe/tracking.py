"""MLflow: one run per trained model, shared by the train and evaluate stages.

The tracking store is MLflow's default, `sqlite:///mlflow.db` in the directory you run from
(so `mlflow ui` from the repo root shows the runs); set MLFLOW_TRACKING_URI to use a server.
The train stage writes its run id to a file that is its DVC output and evaluate's dependency.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import keras
import mlflow

from rnnpipe.atomic import write_text

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def setup(project: str) -> None:
    """Point MLflow at the tracking store and the project's experiment."""
    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI)
    mlflow.set_experiment(f"rnnpipe-{project}")


@contextlib.contextmanager
def new_run(project: str, run_id_file: Path, run_name: str, **kwargs) -> Iterator[mlflow.ActiveRun]:
    """Start a fresh run and record its id in `run_id_file` (atomically)."""
    setup(project)
    with mlflow.start_run(run_name=run_name, **kwargs) as run:
        write_text(run_id_file, run.info.run_id + "\n")
        yield run


@contextlib.contextmanager
def resume_run(project: str, run_id_file: Path) -> Iterator[mlflow.ActiveRun]:
    """Continue the run whose id the train stage wrote."""
    setup(project)
    run_id = Path(run_id_file).read_text().strip()
    with mlflow.start_run(run_id=run_id) as run:
        yield run


def flatten(d: dict, prefix: str = "") -> dict:
    """{"model": {"units": 64}} -> {"model.units": 64}, for mlflow.log_params."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def device_name() -> str:
    """What Keras trains on: the first GPU if there is one, else the CPU."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return f"tensorflow:{gpus[0].name}" if gpus else "tensorflow:CPU"
    if backend == "jax":
        import jax

        return f"jax:{jax.devices()[0]}"
    if backend == "torch":
        import torch

        return "torch:cuda" if torch.cuda.is_available() else "torch:cpu"
    return backend


def log_model_summary(model: keras.Model) -> None:
    lines: list[str] = []
    model.summary(print_fn=lambda line, *a, **k: lines.append(line))
    mlflow.log_text("\n".join(lines), "model_summary.txt")


class MlflowMetrics(keras.callbacks.Callback):
    """Log every epoch's logs (loss, val_loss, ...) to the active MLflow run, step = epoch."""

    def __init__(self, transform=None):
        super().__init__()
        # optional: logs -> extra metrics, e.g. bits per character from a loss in nats
        self.transform = transform

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if self.transform:
            logs.update(self.transform(logs))
        mlflow.log_metrics(logs, step=epoch)
