"""predict: score reviews offline with a registered model, as the server would."""

from __future__ import annotations

import json
from pathlib import Path

from rnnpipe.core.commands import arg, command
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import Params


@command("imdb", "predict",
         arg("texts", nargs="*", metavar="TEXT", help="reviews to score"),
         arg("--file", type=Path, default=None,
             help="a CSV with a `text` column, or a text file of one review per line"),
         arg("--model-uri", default=None,
             help="an MLflow model URI (default: models:/<imdb.promote.model_name>@champion)"),
         help="positive probability and label of each review (JSON lines), as the server gives")
def predict(params: Params, texts: list[str], file: Path | None, model_uri: str | None) -> None:
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from rnnpipe.core import tracking

    texts = list(texts)
    if file is not None:
        if file.suffix == ".csv":
            texts += pd.read_csv(file)["text"].astype(str).tolist()
        else:
            texts += [line for line in file.read_text(encoding="utf-8").splitlines() if line]
    if not texts:
        raise PipelineError("no reviews: give them as arguments or with --file")
    mlflow.set_tracking_uri(tracking.tracking_uri())
    uri = model_uri or f"models:/{params.imdb.promote.model_name}@champion"
    try:
        model = mlflow.pyfunc.load_model(uri)
        # one column "text", as the server builds from {"inputs": [...]}
        answers = model.predict(pd.DataFrame({"text": texts}))
    except MlflowException as e:
        raise PipelineError(e.message) from None
    for a in answers.to_dict("records"):
        print(json.dumps(a, ensure_ascii=False))
