"""The attention models through the same pipeline as the recurrent ones: train, evaluate,
register and the pyfunc (which the REST server runs, tests/test_serving.py) do not care which
builder made the model."""

from __future__ import annotations

import json
import math

import mlflow
import pandas as pd
import pytest
import yaml

from tests.conftest import DVC, copy_pipeline, run

pytestmark = pytest.mark.slow


def test_transformers_train_register_and_generate_like_the_recurrent_models(
    tiny_pipeline, tmp_path
):
    repo, env = copy_pipeline(tiny_pipeline, tmp_path / "repo")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["imdb"]["train"]["use_tuned"] = False
    params["imdb"]["train"]["model"].update(cell="Transformer", units=8, heads=2, max_positions=30)
    params["charlm"]["train"]["use_tuned"] = False
    params["charlm"]["train"]["model"].update(cell="Transformer", units=16, heads=2, seq_length=20)
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run([str(DVC), "repro", "imdb_register", "charlm_register"], repo, env)
    ran = {
        line.split("'")[1] for line in proc.stdout.splitlines() if line.startswith("Running stage")
    }
    # the search fixes the keys it does not search at train.model's values: it reruns too;
    # the IMDb Transformer teaches a Transformer student, which is evaluated and registered
    assert ran == {
        f"{p}_{s}"
        for p in ("imdb", "charlm")
        for s in ("tune", "hparams", "train", "evaluate", "register")
    } | {"imdb_teach", "imdb_student"}
    for project in ("imdb", "charlm"):
        assert (
            json.loads((repo / f"models/{project}/hparams.json").read_text())["cell"]
            == "Transformer"
        )
        decision = json.loads((repo / f"reports/{project}/promotion.json").read_text())
        assert decision["version"] == 2  # registered beside the recurrent version 1
    metrics = json.loads((repo / "reports/charlm/metrics.json").read_text())
    vocab = json.loads((repo / "data/processed/charlm/vocab.json").read_text())
    assert metrics["test"]["loss"] < 0.9 * math.log(vocab["size"])

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    sentiment = mlflow.pyfunc.load_model("models:/imdb-sentiment/2")
    out = sentiment.predict(pd.DataFrame({"text": ["Wonderful, I loved it!", "Awful."]}))
    assert list(out.columns) == ["probability", "label"] and len(out) == 2
    generator = mlflow.pyfunc.load_model("models:/mysterious-island-charlm/2")
    rows = pd.DataFrame([{"prompt": "The island", "length": 60, "temperature": 0.8, "seed": 1}])
    text = generator.predict(rows)["text"][0]
    # longer than the Transformer's context of 20: its cache slid along
    assert text.startswith("The island") and len(text) == len("The island") + 60
    assert generator.predict(rows)["text"][0] == text
