"""The served model as a DVC output: an MLflow pyfunc saved to models/<project>/pyfunc/ with
deterministic bytes, and logged into the MLflow run with exactly those files.

`mlflow.pyfunc.save_model` writes three things that change from one save to the next although
the model does not (measured with MLflow 3.17), all in MLmodel:

- utc_time_created, the clock;
- model_uuid, a random uuid4;
- absolute paths: the models-from-code file's (model_code_path) and each artifact's source
  (artifacts.<name>.uri; the IMDb config is written to a new temporary folder every time).

`save_pyfunc` fixes them: the time is 1980-01-01 (as rnnpipe.core.saving dates .keras zips), the
uuid is derived from the content, model_code_path keeps the file's name (all MLflow reads of it
when loading) and each artifact's uri is its path inside the model. The rest is the same for
the same model, vocabulary, config, code and installed packages.

The code shipped in code/ is the models-from-code file's import closure inside the package
(rnnpipe.core.codedeps), in the package's layout, not the whole package: a stage's DVC deps are
that closure, so no other file may change these bytes. For the same reason an __init__.py that
holds a docstring only (DVC does not track those) is shipped empty.

`log_saved` logs the folder as it is into a LoggedModel of the active run, as
`mlflow.models.Model.log` does with a folder it saves itself, and tags it `pyfunc_sha256`
(`tree_sha256` of the folder); the register stage copies that tag onto the registered version.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import uuid
from pathlib import Path

from rnnpipe.core import codedeps
from rnnpipe.core.atomic import atomic_path
from rnnpipe.core.digest import file_sha256
from rnnpipe.core.errors import PipelineError

TAG = "pyfunc_sha256"
FIXED_TIME = "1980-01-01 00:00:00.000000"  # in MLflow's format, str(datetime)
FLAVOR = "python_function"


def save_pyfunc(dst: Path, python_model: Path, artifacts: dict[str, Path], **kwargs) -> None:
    """Save the models-from-code pyfunc `python_model` (a module file of the package) with
    `artifacts` to the folder `dst`, with deterministic bytes; `kwargs` go to
    mlflow.pyfunc.save_model (signature, input_example, pip_requirements). Atomic: an existing
    folder is replaced whole, a failure leaves it as it was."""
    import mlflow

    for name, path in artifacts.items():
        if not Path(path).is_file():
            raise PipelineError(f"cannot save the pyfunc to {dst}: its {name} {path} is missing")
    with (
        tempfile.TemporaryDirectory(prefix="rnnpipe-code-") as code,
        atomic_path(dst, is_dir=True) as out,
    ):
        package = write_code(codedeps.module_name(python_model), Path(code))
        out.rmdir()  # save_model makes it again, with the usual mode (mkdtemp's is 0700)
        mlflow.pyfunc.save_model(
            path=str(out),
            python_model=str(python_model),
            artifacts={k: str(v) for k, v in artifacts.items()},
            code_paths=[str(package)],
            **kwargs,
        )
        normalize(out)


def write_code(module: str, folder: Path) -> Path:
    """Copy `module` and its import closure into `folder`, in the package's layout (trivial
    __init__.py files empty); returns folder/<package>."""
    for name in sorted(codedeps.closure(module)):
        source = codedeps.module_file(name)
        target = folder / source.relative_to(codedeps.SRC)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.name == "__init__.py" and codedeps.is_trivial(source):
            target.write_bytes(b"")
        else:
            shutil.copyfile(source, target)
    return folder / codedeps.PACKAGE


def normalize(folder: Path) -> None:
    """Fix what save_model writes differently each time (see the module's doc), and remove the
    __pycache__ folders its loading of the model may leave."""
    from mlflow.models import Model

    for cache in sorted(folder.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache)
    model = Model.load(folder / "MLmodel")
    model.utc_time_created = FIXED_TIME
    flavor = model.flavors[FLAVOR]
    if "model_code_path" in flavor:
        flavor["model_code_path"] = Path(flavor["model_code_path"]).name
    for artifact in (flavor.get("artifacts") or {}).values():
        artifact["uri"] = artifact["path"]
    model.model_uuid = ""
    model.save(folder / "MLmodel")
    # the uuid names the content: everything else, MLmodel with an empty uuid included
    model.model_uuid = uuid.uuid5(uuid.NAMESPACE_URL, f"sha256:{tree_sha256(folder)}").hex
    model.save(folder / "MLmodel")


def tree_sha256(folder: Path) -> str:
    """The SHA-256 of a folder's files: for each file, in the order of their relative paths
    (with "/"), the path, a NUL, the SHA-256 of its bytes and a newline."""
    files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(f"{rel}\0{file_sha256(files[rel])}\n".encode())
    return h.hexdigest()


def log_saved(folder: Path, name: str = "model"):
    """Log the saved model `folder` into the active run as a LoggedModel holding exactly its
    files, tagged TAG with their digest; returns the LoggedModel (status READY). As
    Model.log does: the run's params on the model, the model an output of the run, the run's
    step-0 metrics linked to it; a failure marks it FAILED."""
    import mlflow
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus

    run = mlflow.active_run()
    if run is None:
        raise PipelineError(f"no active MLflow run to log {folder} into")
    client = mlflow.MlflowClient()
    run_id = run.info.run_id
    data = client.get_run(run_id).data
    model = mlflow.initialize_logged_model(
        name=name, source_run_id=run_id, tags={TAG: tree_sha256(folder)}, params=dict(data.params)
    )
    try:
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
        _link_metrics(client, run_id, model.model_id, data.metrics)
        client.log_model_artifacts(model.model_id, str(folder))
    except BaseException:
        mlflow.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
        raise
    return mlflow.finalize_logged_model(model.model_id, LoggedModelStatus.READY)


def _link_metrics(client, run_id: str, model_id: str, names) -> None:
    """Log the run's step-0 metrics again with the model's id (the model's page shows them)."""
    from mlflow.entities import Metric

    linked = [
        Metric(
            m.key,
            m.value,
            m.timestamp,
            m.step,
            model_id=model_id,
            dataset_name=m.dataset_name,
            dataset_digest=m.dataset_digest,
            run_id=run_id,
        )
        for key in names
        for m in client.get_metric_history(run_id, key)
        if m.step == 0 and m.model_id is None
    ]
    if linked:
        client.log_batch(run_id, metrics=linked)
