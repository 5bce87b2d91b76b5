"""A project's model outside the pipeline, for `rnnpipe <project> serve`, `rnnpipe imdb predict`
and `rnnpipe charlm generate`: which model (`choose`), and its answers offline (`answers`).

Which: the model given (`--model-uri`: an MLflow model URI or a model directory); else the
registry's champion, models:/<project.promote.model_name>@champion, when the tracking store has
one; else models/<project>/pyfunc, the MLflow model directory evaluate saves (a DVC output:
`dvc pull` brings it). One line on stderr says which.

Answers from the model's own code. A pyfunc carries the package's code (code/rnnpipe) and
imports it when it loads, from the code/ folder MLflow puts first on sys.path. In the CLI's
process `rnnpipe` is imported already, from the working tree, and an imported package stays: the
model would tokenize with today's code, not with the code it was saved with, which is what
`mlflow models serve` (a fresh interpreter) runs. So the offline answers come from a fresh
interpreter too: this file run as a script (`python -I local_model.py`), in which `rnnpipe`
can be imported from the model's code/ only (`ModelCodeOnly`); hence the imports of the
package inside the functions here, none at the top. The worker is started first and imports
MLflow and Keras while the CLI looks the model up; then it reads one request (JSON on stdin),
and writes one JSON line per answer, or one with the error, on stdout.

MLflow's warnings (the model's requirements differ from the installed packages, another Python)
come out as one line each on stderr: they do not stop the answers.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

PACKAGE = "rnnpipe"
MLMODEL = "MLmodel"


# --- which model (in the CLI's process) ---------------------------------------------------------


def pyfunc_dir(project: str) -> Path:
    """models/<project>/pyfunc: the model directory the evaluate stage saves."""
    from rnnpipe.core.paths import project_root

    return project_root() / "models" / project / "pyfunc"


def choose(project: str, name: str, model_uri: str | None, verb: str) -> str:
    """Where to load the model from: `model_uri` if given, else the champion of registered model
    `name` (its files' location), else models/<project>/pyfunc. Says on stderr which, as
    "<verb> <model> (<why>)". A local directory comes back as its absolute path."""
    from rnnpipe.core.errors import PipelineError

    if model_uri:
        uri = checked(model_uri, project)
        say(f"{verb} {model_uri} (--model-uri)")
        return uri
    from rnnpipe.core import tracking

    store = tracking.tracking_uri()
    found = champion(name, store)
    if found is not None:
        version, location = found
        say(f"{verb} models:/{name}@champion (version {version} in {store})")
        path = local_path(location)
        return location if path is None else str(path)
    folder = pyfunc_dir(project)
    if not folder.exists():
        raise PipelineError(
            f"no model: {name!r} has no champion in {store}, and there is no {shown(folder)}; "
            f"run `dvc pull` (or `dvc repro {project}_evaluate`), or give --model-uri"
        )
    uri = checked(str(folder), project)
    say(f"{verb} {shown(folder)} (no champion of {name!r} in {store})")
    return uri


def checked(uri: str, project: str) -> str:
    """`uri` as given, or, for a local directory, its absolute path once it is known to hold an
    MLmodel."""
    from rnnpipe.core.errors import PipelineError

    path = local_path(uri)
    if path is None:
        return uri
    if not path.exists():
        raise PipelineError(
            f"{uri}: no such model directory; `dvc repro {project}_evaluate` "
            f"writes models/{project}/pyfunc (or `dvc pull` brings it)"
        )
    if not (path / MLMODEL).is_file():
        raise PipelineError(
            f"{uri} has no {MLMODEL}: it is not a whole MLflow model directory; "
            f"`dvc repro {project}_evaluate` writes models/{project}/pyfunc"
        )
    return str(path.resolve())


def local_path(uri: str) -> Path | None:
    """The folder a model URI names on this machine (a plain path or file:), else None."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    return Path(uri) if parsed.scheme == "" else None


def champion(name: str, store: str) -> tuple[str, str] | None:
    """(version, the location of its files) of the version of `name` that holds the champion
    alias in the tracking store `store`; None when there is none (or no store yet). A store
    that fails is an error, not "no champion"."""
    from rnnpipe.core.errors import PipelineError

    if missing_store(store):
        return None  # looking would create an empty one
    from mlflow.tracking import MlflowClient

    from rnnpipe.core import registry

    try:
        client = MlflowClient(tracking_uri=store, registry_uri=store)
        found = registry.champion(client, name)
        if found is None:
            return None
        # its files, not models:/: the worker or server loads them without the registry
        return found.version, client.get_model_version_download_uri(name, found.version)
    except PipelineError:
        raise
    except Exception as e:  # noqa: BLE001  (a broken database file, a bad URI: any failure)
        raise PipelineError(f"cannot read the MLflow store {store}: {one_line(e)}") from e


def missing_store(store: str) -> bool:
    """Whether `store` is a local SQLite file or folder that does not exist."""
    if store.startswith("sqlite:///"):
        return not Path(store.removeprefix("sqlite:///").split("?")[0]).exists()
    path = local_path(store)
    return path is not None and not path.exists()


def shown(path: Path) -> str:
    """`path` relative to the current folder when it is inside it."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def one_line(e: BaseException) -> str:
    """An exception's message (an MlflowException's without its code) on one line."""
    text = getattr(e, "message", None) or str(e) or type(e).__name__
    return " ".join(str(text).split())


# --- answers (the CLI's side of the worker) ----------------------------------------------------


def answers(project: str, name: str, model_uri: str | None, records: list[dict]) -> Iterator[dict]:
    """The chosen model's answers (`choose`) to `records`, the rows of its input DataFrame, one
    dict per row, computed with the model's own code in a fresh interpreter. A bad request or
    a model that does not load: PipelineError with the model's one-line message."""
    from rnnpipe.core.errors import PipelineError

    with worker() as proc:
        uri = choose(project, name, model_uri, "using")
        request = {
            "model": uri,
            "tracking_uri": None,
            "records": records,
            "verbose": logging.getLogger(PACKAGE).isEnabledFor(logging.DEBUG),
        }
        if local_path(uri) is None:  # models:/, runs:/ ...: from the tracking store
            from rnnpipe.core import tracking

            request["tracking_uri"] = tracking.tracking_uri()
        with contextlib.suppress(BrokenPipeError):  # it died early: its status says why
            proc.stdin.write(json.dumps(request))
            proc.stdin.close()
        for line in proc.stdout:
            message = json.loads(line)
            if "error" in message:
                raise PipelineError(message["error"])
            yield message["answer"]
        if proc.wait() != 0:
            raise PipelineError(
                f"the model's process ended with status {proc.returncode} (its messages are above)"
            )


@contextlib.contextmanager
def worker() -> Iterator[subprocess.Popen]:
    """This file as a script in a fresh interpreter, started now; killed if left running."""
    # -I: neither the script's folder (rnnpipe/core holds a `requests` module) nor PYTHONPATH
    # nor the user's site-packages on sys.path
    env = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"} | dict(os.environ)
    with subprocess.Popen(
        [sys.executable, "-I", __file__],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=env,
    ) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


# --- the worker (this file as a script) --------------------------------------------------------


class ModelCodeOnly(importlib.abc.MetaPathFinder):
    """Finds `rnnpipe` in `folder` (the model's code/) and nowhere else: not in the working tree
    (a .pth entry or an editable install's finder), not in an installed copy. Its submodules
    follow from the package's own path."""

    def __init__(self, folder: str | None):
        self.folder = folder

    def find_spec(self, name, path=None, target=None):
        if name != PACKAGE:
            return None
        spec = (
            None
            if self.folder is None
            else importlib.machinery.PathFinder.find_spec(name, [self.folder])
        )
        if spec is None:
            raise ModuleNotFoundError(
                f"the model carries no code of {PACKAGE} (code/{PACKAGE}): "
                f"it cannot load with the working tree's",
                name=name,
            )
        return spec


class OneLineWarnings(logging.Handler):
    """MLflow's warnings on stderr, one line each."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"warning: {warning_line(record.getMessage())}", file=sys.stderr, flush=True)


def warning_line(message: str) -> str:
    """An MLflow warning on one line; its list of the model's requirements that the installed
    packages do not meet (mlflow.utils.requirements_utils, one " - " line each) as a list."""
    differ = [line.removeprefix(" - ") for line in message.splitlines() if line.startswith(" - ")]
    if "mismatches between the model's dependencies" in message and differ:
        return (
            f"the model's requirements differ from the installed packages: "
            f"{'; '.join(differ)}; its answers may differ from the ones it was checked "
            f"with (mlflow.pyfunc.get_model_dependencies gives its environment)"
        )
    return " ".join(message.split())


def load(uri: str, tracking_uri: str | None, tmp: str):
    """The pyfunc at `uri`, loaded with its own code (downloaded into `tmp` unless local)."""
    import mlflow
    from mlflow.models import Model

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    path = local_path(uri)
    local = (
        str(path)
        if path is not None and path.is_dir()
        else mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
    )
    code = Model.load(local).flavors.get("python_function", {}).get("code")
    sys.meta_path.insert(0, ModelCodeOnly(os.path.join(local, code) if code else None))
    return mlflow.pyfunc.load_model(local)


def answer_request(request: dict, out) -> int:
    """Load the model, answer the request's records: one JSON line each on `out`."""
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="rnnpipe-model-") as tmp:
        try:
            model = load(request["model"], request["tracking_uri"], tmp)
        except Exception as e:  # noqa: BLE001  (whatever failed, the model is not there)
            return fail(out, f"cannot load {request['model']}: {one_line(e)}", request)
        try:
            result = model.predict(pd.DataFrame.from_records(request["records"]))
        except Exception as e:  # noqa: BLE001  (a bad request: the pyfunc's own message)
            return fail(out, one_line(e), request)
    for row in pd.DataFrame(result).to_dict("records"):
        out.write(json.dumps({"answer": row}, ensure_ascii=False) + "\n")
    out.flush()
    return 0


def fail(out, message: str, request: dict) -> int:
    if request.get("verbose"):
        traceback.print_exc()
    out.write(json.dumps({"error": message}, ensure_ascii=False) + "\n")
    out.flush()
    return 1


@contextlib.contextmanager
def held_stderr() -> Iterator[None]:
    """What this process writes to stderr inside (TensorFlow's start-up chatter), written out
    at the end: never, if the CLI kills it inside, having found no model."""
    real = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(real, 2)
            os.close(real)
            held.seek(0)
            sys.stderr.buffer.write(held.read())
            sys.stderr.flush()


def main() -> int:
    # Ctrl-C reaches the whole process group: the CLI ends this process itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    with held_stderr():
        # what the pyfuncs load with, imported while the CLI looks the model up; not rnnpipe
        import keras  # noqa: F401
        import mlflow.pyfunc  # noqa: F401
        import pandas  # noqa: F401

        request = json.loads(sys.stdin.buffer.read().decode("utf-8") or "null")
    if request is None:  # the CLI found no model
        return 0
    os.dup2(2, 1)  # what the model's code prints goes to stderr, not among the answers
    logging.getLogger("mlflow").handlers = [OneLineWarnings(logging.WARNING)]
    return answer_request(request, out)


if __name__ == "__main__":
    sys.exit(main())
