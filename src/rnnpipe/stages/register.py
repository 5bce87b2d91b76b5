"""`register`: promote the evaluated model to `champion` when it beats the current one.
`imdb predict`: score reviews offline with a registered model, as the server would."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from rnnpipe.atomic import write_json
from rnnpipe.errors import PipelineError
from rnnpipe.params import Params
from rnnpipe.stages import arg, command

log = logging.getLogger(__name__)


@command(("imdb", "charlm"), "register",
         arg("run_id_file", type=Path, help="models/<project>/run_id.txt"),
         arg("metrics_file", type=Path, help="reports/<project>/metrics.json"),
         arg("out", type=Path, help="reports/<project>/promotion.json: the decision"),
         help="give the evaluated model version the `champion` alias if its test metric "
              "beats the champion's; otherwise tag it a candidate")
def register(params: Params, project: str, run_id_file: Path, metrics_file: Path,
             out: Path) -> None:
    from mlflow.tracking import MlflowClient

    from rnnpipe import registry, tracking

    p = getattr(params, project).promote
    try:
        run_id = run_id_file.read_text().strip()
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise PipelineError(f"{metrics_file} is not valid JSON: {e}") from None
    if not run_id:
        raise PipelineError(f"{run_id_file} is empty")
    value = registry.metric_value(metrics, p.metric)
    tracking.setup(project)
    decision = registry.promote(MlflowClient(), p.model_name, run_id, p.metric, value,
                                p.greater_is_better)
    write_json(out, decision)


@command("imdb", "predict",
         arg("texts", nargs="+", metavar="TEXT", help="reviews to score"),
         arg("--model-uri", default="models:/imdb-sentiment@champion",
             help="an MLflow model URI (default: %(default)s)"),
         help="positive probability and label of each review (JSON lines), as the server gives",
         needs_params=False)
def predict(texts: list[str], model_uri: str) -> None:
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from rnnpipe import tracking

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI") or tracking.DEFAULT_TRACKING_URI)
    try:
        model = mlflow.pyfunc.load_model(model_uri)
        # one column "text", as the server builds from {"inputs": [...]}
        answers = model.predict(pd.DataFrame({"text": list(texts)}))
    except MlflowException as e:
        raise PipelineError(e.message) from None
    # the server's JSON: {"predictions": [...]}; one line per review here
    if hasattr(answers, "to_dict"):
        answers = answers.to_dict("records")
    for a in answers:
        print(json.dumps(a, ensure_ascii=False))
