"""The language model as an MLflow pyfunc: rows of prompt, length, temperature (optional seed
and top_k) -> generated text. Saved as "models from code" (pyfunc_model.py, shipped with the
package modules it imports): nothing pickled.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from rnnpipe.core.served import requirements

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")

SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            ColSpec("string", "prompt"),
            ColSpec("long", "length"),
            ColSpec("double", "temperature"),
            ColSpec("long", "seed", required=False),
            ColSpec("long", "top_k", required=False),
        ]
    ),
    outputs=Schema([ColSpec("string", "text")]),
)
INPUT_EXAMPLE = pd.DataFrame(
    [{"prompt": "The island", "length": 100, "temperature": 0.8, "seed": 1}]
)


class CharLM(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import keras

        from rnnpipe.charlm.sampler import Generator
        from rnnpipe.core.vocab import Vocabulary

        model = keras.models.load_model(context.artifacts["model"])
        self.generator = Generator(model, Vocabulary.load(context.artifacts["vocab"]))
        # the character steps a served request may need: measured at the first request the
        # scoring server sends (it marks itself as serving only after loading the model)
        self.max_steps = None

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        from rnnpipe.core.requests import generation_requests, serving

        if serving() and self.max_steps is None:
            self.max_steps = self._step_cap()
        # checked rows (a bad one -> HTTP 400 when served): seed defaults to 0, top_k to None
        rows = generation_requests(
            model_input,
            set(self.generator.vocab.tokens[1:]),
            self.max_steps,
            self.generator.context,
        )
        return pd.DataFrame({"text": self.generator.generate_many(rows)})

    def _step_cap(self) -> int:
        """The cap on a request's character steps, from this model's speed on this machine."""
        from rnnpipe.charlm import sampler
        from rnnpipe.core import requests

        per_step, per_row_step = sampler.step_costs(self.generator)
        return requests.step_cap(
            per_step, per_row_step, requests.longest_row(self.generator.context)
        )


def save(model_path: Path, vocab_path: Path, dst: Path) -> None:
    """Save the pyfunc to the folder `dst` (models/charlm/pyfunc): the same bytes for the same
    model, vocabulary and code (rnnpipe.core.packaging)."""
    from rnnpipe.core import packaging

    packaging.save_pyfunc(
        dst,
        python_model=PYFUNC_FILE,
        artifacts={"model": model_path, "vocab": vocab_path},
        signature=SIGNATURE,
        input_example=INPUT_EXAMPLE,
        pip_requirements=requirements(),
    )


def log_pyfunc(model_path: Path, vocab_path: Path, dst: Path):
    """Save the pyfunc to `dst`, then log that folder into the active run (the register stage
    registers it); returns the LoggedModel."""
    from rnnpipe.core import packaging

    save(model_path, vocab_path, dst)
    return packaging.log_saved(dst)
