"""The compare stages' recurrent row is the train stage's model after the epochs the row would
run (rnnpipe.core.compare.from_train), when train's model, batches, seed and data are the row's:
the same figures as training it again, to the bit; otherwise it trains in the stage."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import yaml

from rnnpipe.core.compare import announce, stop_point
from rnnpipe.core.params import CompareParams
from tests.conftest import RNNPIPE, copy_pipeline, run

TIMING = {"train_minutes", "reviews_per_second", "chars_per_second", "from_train_stage"}
COMMANDS = {
    "imdb": [
        "data/processed/imdb",
        "data/processed/imdb/vocab.json",
        "models/imdb/hparams.json",
        "models/imdb/word_vectors.npy",
    ],
    "charlm": [
        "data/processed/charlm",
        "data/processed/charlm/vocab.json",
        "models/charlm/hparams.json",
    ],
}


def keras_stop(val_losses, epochs, patience):
    """Keras' own EarlyStopping (restore best weights) fed these epochs' logs: (epochs run, the
    best epoch), counted from 1, and whether it stopped training early."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    stop = keras.callbacks.EarlyStopping(patience=patience, restore_best_weights=True)
    stop.set_model(model)
    model.stop_training = False
    stop.on_train_begin()
    for epoch, loss in enumerate(val_losses[:epochs]):
        stop.on_epoch_end(epoch, {"val_loss": loss})
        if model.stop_training:
            return (epoch + 1, stop.best_epoch + 1), True
    return (min(epochs, len(val_losses)), stop.best_epoch + 1), False


def test_stop_point_is_where_keras_early_stopping_ends():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 9))
        # ties and rises as well as falls
        losses = [float(x) for x in rng.choice([0.5, 0.6, 0.7, 0.8], n)]
        history = [{"epoch": i, "val_loss": x} for i, x in enumerate(losses)]
        epochs, patience = int(rng.integers(1, 9)), int(rng.integers(0, 4))
        got = stop_point(history, epochs, patience)
        if n >= epochs or keras_stop(losses, n, patience)[1]:
            assert got == keras_stop(losses, epochs, patience)[0], (losses, epochs, patience)
        else:  # the history ends before Keras would have stopped: unknown
            assert got is None, (losses, epochs, patience)


def _compare(repo, env, project, out, *extra):
    proc = run([str(RNNPIPE), project, "compare", *COMMANDS[project], str(out), *extra], repo, env)
    return json.loads((out / "compare.json").read_text())["recurrent"], proc.stderr


@pytest.mark.slow  # trains both projects' recurrent rows again
@pytest.mark.parametrize("project", ["imdb", "charlm"])
def test_the_row_from_train_is_the_row_trained_here_to_the_bit(tiny_pipeline, tmp_path, project):
    repo, env = copy_pipeline(tiny_pipeline, tmp_path / "repo")
    taken = json.loads((repo / f"reports/{project}/compare.json").read_text())["recurrent"]
    assert taken["from_train_stage"] is True
    train = json.loads((repo / f"reports/{project}/train.json").read_text())
    assert len(train["epoch_minutes"]) == train["epochs"]
    assert taken["train_minutes"] == round(sum(train["epoch_minutes"][: taken["epochs"]]), 2)
    assert "not trained again" in (repo / f"reports/{project}/compare.md").read_text()

    trained, _ = _compare(repo, env, project, tmp_path / "here")  # no --train-epochs
    assert trained["from_train_stage"] is False
    assert {k: v for k, v in trained.items() if k not in TIMING} == {
        k: v for k, v in taken.items() if k not in TIMING
    }

    # another batch size: not train's computation, so the row trains here, and says why
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[project]["compare"]["batch_size"] += 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    row, log = _compare(
        repo, env, project, tmp_path / "other", "--train-epochs", f"models/{project}/epochs"
    )
    assert row["from_train_stage"] is False
    assert "recurrent row: trained here (the train stage's train.batch_size differs)" in log


def test_the_first_line_counts_only_the_models_trained_in_the_stage(tmp_path):
    (tmp_path / "compare.json").write_text(
        json.dumps(
            {
                "recurrent": {"train_minutes": 3.05, "from_train_stage": True},
                "attention": {"train_minutes": 4.45, "from_train_stage": False},
            }
        )
    )
    hps = {
        "recurrent": {"cell": "GRU", "units": 128, "layers": 1, "bidirectional": True},
        "attention": {"cell": "Transformer", "units": 128, "layers": 1, "heads": 4},
    }
    line = announce(
        "imdb",
        hps,
        {"recurrent": 316, "attention": 316},
        "20,001 reviews",
        CompareParams(epochs=2, attention={}),
        tmp_path,
    )
    assert line.endswith(
        f"last run: 1 of 2 models trained here in 4.5 min ({tmp_path}/compare.json)"
    )
