"""MLflow "models from code" definition of the language model pyfunc (see charlm.py)."""

import mlflow

from rnnpipe.serving.charlm import CharLM

mlflow.models.set_model(CharLM())
