"""The language model as an MLflow pyfunc: rows of prompt, length, temperature (optional seed
and top_k) -> generated text. Logged as "models from code" (charlm_pyfunc.py): nothing pickled.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

MODEL_NAME = "mysterious-island-charlm"
PYFUNC_FILE = Path(__file__).with_name("charlm_pyfunc.py")
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

        from rnnpipe.models.generate import Generator
        from rnnpipe.text.vocab import Vocabulary

        model = keras.models.load_model(context.artifacts["model"])
        self.generator = Generator(model, Vocabulary.load(context.artifacts["vocab"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        texts = []
        for row in model_input.to_dict("records"):
            seed, top_k = row.get("seed"), row.get("top_k")
            texts.append(self.generator.generate(
                str(row["prompt"]), int(row["length"]), float(row["temperature"]),
                seed=0 if pd.isna(seed) else int(seed),
                top_k=None if top_k is None or pd.isna(top_k) else int(top_k)))
        return pd.DataFrame({"text": texts})


def log_pyfunc(model_path: Path, vocab_path: Path, registered_model_name: str | None = None):
    """Log the pyfunc into the active run (and register it); returns the ModelInfo."""
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(PYFUNC_FILE),
        artifacts={"model": str(model_path), "vocab": str(vocab_path)},
        code_paths=[str(PACKAGE)],
        signature=SIGNATURE,
        input_example=INPUT_EXAMPLE,
        registered_model_name=registered_model_name,
    )
