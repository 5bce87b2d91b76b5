"""MLflow "models from code" definition of the language model pyfunc (see pyfunc.py)."""

import mlflow

from rnnpipe.charlm.pyfunc import CharLM

mlflow.models.set_model(CharLM())
