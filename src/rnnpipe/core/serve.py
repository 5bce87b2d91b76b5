"""serve: `mlflow models serve` of a project's model over REST, on 127.0.0.1 by default: the
champion, else models/<project>/pyfunc (rnnpipe.core.local_model.choose)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from rnnpipe.core import local_model
from rnnpipe.core.commands import PROJECTS, arg, command
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import Params


@command(
    PROJECTS,
    "serve",
    arg("--host", default="127.0.0.1", help="address to bind (default: %(default)s)"),
    arg("--port", type=int, default=5001, help="(default: %(default)s)"),
    arg(
        "--model-uri",
        default=None,
        help="an MLflow model URI or model directory (default: the champion, "
        "models:/<project.promote.model_name>@champion, else models/<project>/pyfunc)",
    ),
    help="serve the champion model (else models/<project>/pyfunc) over REST with "
    "`mlflow models serve`",
)
def serve(params: Params, host: str, port: int, model_uri: str | None, *, project: str) -> None:
    from rnnpipe.core import tracking

    name = getattr(params, project).promote.model_name
    uri = local_model.choose(project, name, model_uri, "serving")
    # `mlflow models serve --env-manager local` starts uvicorn from PATH: the venv's bin/ first
    bin_dir = str(Path(sys.executable).parent)
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=tracking.tracking_uri(),
        PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
    )
    mlflow = shutil.which("mlflow", path=env["PATH"])
    if mlflow is None:
        raise PipelineError("the mlflow command is not installed")
    os.execve(
        mlflow,
        [
            mlflow,
            "models",
            "serve",
            "-m",
            uri,
            "--env-manager",
            "local",
            "-h",
            host,
            "-p",
            str(port),
        ],
        env,
    )
