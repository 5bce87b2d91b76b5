import json

import mlflow
import pandas as pd
import pytest

from tests.conftest import BIN, run


@pytest.mark.slow
def test_dvc_repro_charlm_evaluate_and_pyfunc(pipeline_repo):
    repo, env = pipeline_repo
    run([str(BIN / "dvc"), "repro", "charlm_evaluate"], repo, env)
    m = json.loads((repo / "reports/charlm/metrics.json").read_text())
    assert m["loss"] > 0 and m["bits_per_char"] == pytest.approx(m["loss"] / 0.6931471805599453)
    samples = (repo / "reports/charlm/samples.md").read_text()
    assert samples.count("## temperature") == 3 and "The island" in samples
    assert (repo / "reports/charlm/curves.csv").read_text().startswith("epoch,")

    # the CLI writes text from the saved .keras model; same seed, same text
    cmd = [str(BIN / "rnnpipe"), "charlm", "generate", "--prompt", "The island", "--length",
           "40", "--temperature", "0.8", "--seed", "3", "--model", "models/charlm/model.keras"]
    first = run(cmd, repo, env).stdout
    assert first.startswith("The island") and len(first.rstrip("\n")) == len("The island") + 40
    assert run(cmd, repo, env).stdout == first

    # the registered pyfunc generates text from rows of prompt, length, temperature
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/mysterious-island-charlm/1")
    out = model.predict(pd.DataFrame([
        {"prompt": "The island", "length": 30, "temperature": 0.5, "seed": 1},
        {"prompt": "Zebra ~", "length": 10, "temperature": 1.5, "seed": 2},
    ]))
    assert list(out.columns) == ["text"]
    assert out["text"][0].startswith("The island") and len(out["text"][0]) == 40
    assert out["text"][1].startswith("Zebra ~") and len(out["text"][1]) == 17
