"""The sentiment model as an MLflow pyfunc: raw reviews -> probability of positive and label.

It carries the Keras model, the vocabulary and the encoding policy (max_len, truncate,
threshold) as artifacts and tokenizes as rnnpipe.imdb.words did in training (through
rnnpipe.imdb.served_tokens, which gives the same ids faster for a few reviews). Saved
as "models from code" (pyfunc_model.py, shipped with the package modules it imports): nothing
is pickled.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from rnnpipe.core.served import requirements

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
CHUNK = 4096  # reviews tokenized and scored at a time

SIGNATURE = ModelSignature(
    # one unnamed string column: a list of reviews, {"inputs": [...]} or a DataFrame column
    inputs=Schema([ColSpec("string")]),
    outputs=Schema([ColSpec("double", "probability"), ColSpec("long", "label")]),
)
INPUT_EXAMPLE = pd.DataFrame(
    {
        "text": [
            "What a wonderful film, I loved every minute.",
            "Boring plot, awful acting. A waste of time.",
        ]
    }
)


class Sentiment(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import keras

        import rnnpipe.imdb.model  # noqa: F401  (registers MaskedPooling and side_agreement for loading)
        from rnnpipe.core.vocab import Vocabulary
        from rnnpipe.imdb.served_tokens import ServedEncoder

        self.model = keras.models.load_model(context.artifacts["model"])
        self.vocab = Vocabulary.load(context.artifacts["vocab"])
        self.config = json.loads(Path(context.artifacts["config"]).read_text())
        # words.encode_texts' ids, without its per-call regex compiling (~10 ms a request)
        self.encoder = ServedEncoder(self.vocab, self.config["max_len"], self.config["truncate"])

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        from rnnpipe.core.requests import reviews

        texts = reviews(model_input)  # list of str / Series / DataFrame column "text"
        # in chunks: memory stays bounded however many reviews come
        parts = [self._score(texts[i : i + CHUNK]) for i in range(0, len(texts), CHUNK)]
        proba = np.concatenate(parts).astype("float64")
        return pd.DataFrame(
            {"probability": proba, "label": (proba >= self.config["threshold"]).astype("int64")}
        )

    def _score(self, texts: list[str]) -> np.ndarray:
        from rnnpipe.imdb.model import predict_proba

        ids, lengths = self.encoder.encode(texts)
        return predict_proba(self.model, ids, lengths)


def save(modeldir: Path, encode_params, threshold: float, dst: Path) -> None:
    """Save the pyfunc of models/imdb to the folder `dst` (models/imdb/pyfunc): the same bytes
    for the same model, vocabulary, config and code (rnnpipe.core.packaging)."""
    from rnnpipe.core import packaging

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "serving_config.json"
        config.write_text(
            json.dumps(
                {
                    "max_len": encode_params.max_len,
                    "truncate": encode_params.truncate,
                    "threshold": threshold,
                }
            )
        )
        packaging.save_pyfunc(
            dst,
            python_model=PYFUNC_FILE,
            artifacts={
                "model": modeldir / "model.keras",
                "vocab": modeldir / "vocab.json",
                "config": config,
            },
            signature=SIGNATURE,
            input_example=INPUT_EXAMPLE,
            pip_requirements=requirements(),
        )


def log_model(modeldir: Path, encode_params, threshold: float, dst: Path):
    """Save the pyfunc to `dst`, then log that folder into the active run (the register stage
    registers it); returns the LoggedModel."""
    from rnnpipe.core import packaging

    save(modeldir, encode_params, threshold, dst)
    return packaging.log_saved(dst)
