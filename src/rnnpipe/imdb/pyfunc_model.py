"""MLflow "models from code" definition of the sentiment pyfunc (see pyfunc.py)."""

import mlflow

from rnnpipe.imdb.pyfunc import Sentiment

mlflow.models.set_model(Sentiment())
