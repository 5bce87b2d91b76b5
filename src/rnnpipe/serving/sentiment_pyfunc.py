"""MLflow "models from code" definition of the sentiment pyfunc (see sentiment.py)."""

import mlflow

from rnnpipe.serving.sentiment import Sentiment

mlflow.models.set_model(Sentiment())
