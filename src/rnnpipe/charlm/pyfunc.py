"""The language model as an MLflow pyfunc: rows of prompt, length, temperature (optional seed
and top_k) -> generated text. Logged as "models from code" (pyfunc_model.py): nothing pickled.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from rnnpipe.core.served import requirements

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
PACKAGE = Path(__file__).resolve().parents[1]  # src/rnnpipe, shipped with the model

SIGNATURE = ModelSignature(
    inputs=Schema([
        ColSpec("string", "prompt"),
        ColSpec("long", "length"),
        ColSpec("double", "temperature"),
        ColSpec("long", "seed", required=False),
        ColSpec("long", "top_k", required=False),
    ]),
    outputs=Schema([ColSpec("string", "text")]),
)
INPUT_EXAMPLE = pd.DataFrame([{"prompt": "The island", "length": 100, "temperature": 0.8,
                               "seed": 1}])


class CharLM(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import keras

        from rnnpipe.charlm.sampler import Generator
        from rnnpipe.core.vocab import Vocabulary

        model = keras.models.load_model(context.artifacts["model"])
        self.generator = Generator(model, Vocabulary.load(context.artifacts["vocab"]))

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        from rnnpipe.core.requests import generation_requests

        # checked rows (a bad one -> HTTP 400 when served): seed defaults to 0, top_k to None
        rows = generation_requests(model_input, set(self.generator.vocab.tokens[1:]))
        return pd.DataFrame({"text": [self.generator.generate(**row) for row in rows]})


def log_pyfunc(model_path: Path, vocab_path: Path):
    """Log the pyfunc into the active run (the register stage registers it); returns the
    ModelInfo."""
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(PYFUNC_FILE),
        artifacts={"model": str(model_path), "vocab": str(vocab_path)},
        code_paths=[str(PACKAGE)],
        signature=SIGNATURE,
        input_example=INPUT_EXAMPLE,
        pip_requirements=requirements(),
    )
