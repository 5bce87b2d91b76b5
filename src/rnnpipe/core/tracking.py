"""MLflow: one run per trained model, shared by the train and evaluate stages.

The tracking store is `sqlite:///mlflow.db` and artifacts go to `mlartifacts/`, both in the
project's root (also for `dvc exp run --temp`, which runs in a copy), so `mlflow ui` from the
root shows every run; set MLFLOW_TRACKING_URI to use a server. Nothing a DVC stage depends on
holds a run id: evaluate and register find the train run by the SHA-256 of the model file it
trained (the tag `model_sha256`). $RNNPIPE_EXPERIMENT_SUFFIX names the experiments apart
(`make demo` logs to rnnpipe-<project>-demo).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import sqlalchemy
from mlflow.exceptions import MlflowException

from rnnpipe.core import machine
from rnnpipe.core.digest import file_sha256
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.paths import project_root

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

# MLflow 3 opens an experiment without this tag on its GenAI overview (traces, token usage)
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
MODEL_TAG = "model_sha256"
# the dependency set the run trained with: the SHA-256 of requirements.lock (`make setup`
# installs exactly its versions), "none" without one
LOCK_TAG = "requirements_lock_sha256"
# the CPU's model and vector instructions: a model trained on AVX-512 differs from one trained
# on AVX2 in the last digits (rnnpipe.core.machine)
CPU_TAG = "cpu"
# appended to the experiments' names, rnnpipe-<project><suffix>
SUFFIX_ENV = "RNNPIPE_EXPERIMENT_SUFFIX"


def local_uri() -> str:
    """The project root's own store."""
    return f"sqlite:///{project_root() / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or local_uri()


def experiment_name(project: str) -> str:
    suffix = os.environ.get(SUFFIX_ENV, "")
    if not re.fullmatch(r"[A-Za-z0-9_-]*", suffix):
        raise PipelineError(
            f"${SUFFIX_ENV} is {suffix!r}: it may hold only letters, digits, "
            f"'_' and '-' (e.g. -demo)"
        )
    return f"rnnpipe-{project}{suffix}"


def setup(project: str) -> str:
    """Point MLflow at the tracking store and the project's experiment; returns its id."""
    uri = tracking_uri()
    # by the URI, not by MLFLOW_TRACKING_URI being set: set_tracking_uri sets it
    local = uri == local_uri()
    name = experiment_name(project)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    try:
        experiment = client.get_experiment_by_name(name)
    except MlflowException as e:
        raise PipelineError(f"MLflow tracking store {uri}: {e.message}") from None
    if experiment is None:
        location = (project_root() / "mlartifacts").as_uri() if local else None
        try:
            experiment_id = client.create_experiment(
                name, artifact_location=location, tags=EXPERIMENT_TAGS
            )
        except MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            # another process (a worker of the same search) made it since we looked
            experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        experiment_id = experiment.experiment_id
        for k, v in EXPERIMENT_TAGS.items():
            if experiment.tags.get(k) != v:
                _tag_experiment(client, experiment_id, k, v)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _tag_experiment(client: mlflow.MlflowClient, experiment_id: str, key: str, value: str) -> None:
    try:
        client.set_experiment_tag(experiment_id, key, value)
    except (MlflowException, sqlalchemy.exc.IntegrityError):
        # Two processes that tag at once both insert the tag; the second insert fails. Fine
        # when the tag now holds what we meant to write.
        if client.get_experiment(experiment_id).tags.get(key) != value:
            raise


def source_tags() -> dict[str, str]:
    """The git commit and, inside `dvc exp run`, the DVC experiment's name."""
    tags = {}
    commit = os.environ.get("DVC_EXP_BASELINE_REV")
    if not commit:
        try:
            commit = subprocess.run(
                ["git", "rev-parse", "HEAD"],
                cwd=project_root(),
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            commit = ""
    if commit:
        tags["mlflow.source.git.commit"] = commit
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc.experiment"] = os.environ["DVC_EXP_NAME"]
    if os.environ.get("DVC_STAGE"):
        tags["dvc.stage"] = os.environ["DVC_STAGE"]
    return tags


def close_stale_runs(experiment_id: str, stage: str, keep: str | None = None) -> None:
    """Mark runs of `stage` still RUNNING (their process was killed) as KILLED, but `keep`."""
    client = mlflow.MlflowClient()
    for run in client.search_runs(
        [experiment_id], f"tags.stage = '{stage}' and attributes.status = 'RUNNING'"
    ):
        if run.info.run_id != keep:
            client.set_terminated(run.info.run_id, status="KILLED")
            log.info("marked run %s of %s as killed", run.info.run_id, stage)


@contextlib.contextmanager
def train_run(
    project: str, stage: str, run_name: str, resume_id: str | None = None
) -> Iterator[mlflow.ActiveRun]:
    """The train stage's run: `resume_id` (the run of an interrupted training) if given, else a
    new one. Earlier runs of the stage left RUNNING by a killed process are marked KILLED."""
    experiment_id = setup(project)
    if resume_id:
        try:
            mlflow.MlflowClient().get_run(resume_id)
        except MlflowException:
            log.info("run %s of the checkpoint is gone: starting a new one", resume_id)
            resume_id = None
    close_stale_runs(experiment_id, stage, keep=resume_id)
    if resume_id:
        run = mlflow.start_run(run_id=resume_id)
    else:
        run = mlflow.start_run(run_name=run_name, tags={"stage": stage, **source_tags()})
    with run:
        # a resumed run: the lock and CPU it resumed with
        mlflow.set_tags({LOCK_TAG: lock_sha256(), CPU_TAG: machine.cpu()})
        yield run


def lock_sha256() -> str:
    """The SHA-256 of requirements.lock at the project's root, or "none" without one."""
    lock = project_root() / "requirements.lock"
    return file_sha256(lock) if lock.is_file() else "none"


def _model_runs(project: str, digest: str) -> list:
    """Runs tagged with the model file's SHA-256, newest first."""
    experiment_id = setup(project)  # first: it points the client at the project's store
    return mlflow.MlflowClient().search_runs(
        [experiment_id],
        f"tags.{MODEL_TAG} = '{digest}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )


def run_of_model(project: str, model_path: Path) -> str:
    """The id of the run that trained (or, in another store, evaluated) `model_path`."""
    digest = file_sha256(model_path)
    runs = _model_runs(project, digest)
    if not runs:
        raise PipelineError(
            f"no run in the MLflow store {tracking_uri()} (experiment "
            f"{experiment_name(project)}) trained or evaluated {model_path} (sha256 "
            f"{digest[:12]}…): run evaluate first (dvc repro -f -s {project}_evaluate)"
        )
    return runs[0].info.run_id


def evaluation_run(project: str, model_path: Path) -> str:
    """The run evaluate logs into: the train run of `model_path`, or, when this store has none
    (a clone after `dvc pull`, a new store), a new run tagged with the model's hash, so that
    evaluate and register work without retraining."""
    digest = file_sha256(model_path)
    runs = _model_runs(project, digest)
    if runs:
        return runs[0].info.run_id
    log.warning(
        "no run in %s trained %s: it was trained with another store; logging the "
        "evaluation to a new run",
        tracking_uri(),
        model_path,
    )
    experiment_id = setup(project)
    run = mlflow.MlflowClient().create_run(
        experiment_id,
        run_name=f"{project}-evaluate",
        tags={
            "stage": f"{project}_evaluate",
            MODEL_TAG: digest,
            "train_run": "elsewhere",
            LOCK_TAG: lock_sha256(),
            **source_tags(),
        },
    )
    return run.info.run_id


def log_data(paths: dict[str, Path], context: str = "training") -> None:
    """Record the data files as MLflow dataset inputs, named by their path and content hash,
    so the runs table ties the run to the exact data version (the same hash DVC computes)."""
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource

    for name, path in paths.items():
        digest = hashlib.md5(Path(path).read_bytes()).hexdigest()  # DVC's content hash
        dataset = MetaDataset(
            LocalArtifactDatasetSource(str(path)), name=f"{name}@{digest[:8]}", digest=digest[:8]
        )
        mlflow.log_input(dataset, context=context, tags={"path": str(path), "md5": digest})


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
    import keras

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


def __getattr__(name: str):
    # keras (TensorFlow: seconds) only for the stages that train, not for the quality checks
    if name == "MlflowMetrics":
        return _metrics_callback()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _metrics_callback() -> type:
    import keras

    class MlflowMetrics(keras.callbacks.Callback):
        """Log every epoch's logs (loss, val_loss, ...) to the active MLflow run, step =
        epoch."""

        def __init__(self, transform=None):
            super().__init__()
            # optional: logs -> extra metrics, e.g. bits per character from a loss in nats
            self.transform = transform

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            if self.transform:
                logs.update(self.transform(logs))
            mlflow.log_metrics(logs, step=epoch)

    MlflowMetrics.__module__, MlflowMetrics.__qualname__ = __name__, "MlflowMetrics"
    return MlflowMetrics
