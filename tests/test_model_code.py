"""Which model the CLI uses (the champion, else models/<project>/pyfunc), bad model folders and
stores, and offline answers from the model's own code, as the server gives them
(rnnpipe.core.local_model)."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR
from mlflow.tracking import MlflowClient

from rnnpipe import cli
from rnnpipe.core import local_model
from rnnpipe.core.errors import PipelineError
from tests.conftest import BIN, RNNPIPE, ROOT, TINY_PARAMS, run, warm, without_coverage

NAME = "imdb-sentiment"  # imdb.promote.model_name in tests/params_tiny.yaml


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder with no tracking store and no models/ yet, as the current folder.
    `rnnpipe <project> serve` may not become the server here."""

    def execve(*args):
        raise AssertionError(f"serve started {args[1]}")

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(os, "execve", execve)
    return tmp_path


def model_dir(folder: Path) -> Path:
    """A folder that passes for an MLflow model directory (an MLmodel file), loaded by none of
    these tests."""
    folder.mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors: {}\n")
    return folder


def cli_error(capsys, *argv: str) -> tuple[int, list[str]]:
    """(exit status, stderr lines) of `rnnpipe --params <tiny> argv` run here."""
    rc = cli.main(["--params", str(TINY_PARAMS), *argv])
    return rc, capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(
    "argv",
    [["imdb", "predict", "good"], ["imdb", "serve"], ["charlm", "generate", "--length", "5"]],
)
def test_a_model_folder_without_mlmodel_names_the_stage_that_writes_it(project, capsys, argv):
    project_name = argv[0]
    (project / "models" / project_name / "pyfunc" / "code").mkdir(parents=True)
    rc, err = cli_error(capsys, *argv)
    assert rc == 1
    assert err == [
        f"rnnpipe {' '.join(argv[:2])}: error: {project / 'models' / project_name}"
        f"/pyfunc has no MLmodel: it is not a whole MLflow model directory; "
        f"`dvc repro {project_name}_evaluate` writes models/{project_name}/pyfunc"
    ]
    # the same for a folder given
    given = project / "elsewhere"
    given.mkdir()
    rc, err = cli_error(capsys, *argv, "--model-uri", str(given))
    assert rc == 1 and len(err) == 1
    assert "elsewhere has no MLmodel" in err[0] and f"dvc repro {project_name}_evaluate" in err[0]
    rc, err = cli_error(capsys, *argv, "--model-uri", str(project / "missing"))
    assert rc == 1 and len(err) == 1 and "missing: no such model directory" in err[0]


def test_no_champion_and_no_model_folder_names_what_to_run(project, capsys):
    rc, err = cli_error(capsys, "imdb", "predict", "good")
    assert rc == 1
    assert err == [
        f"rnnpipe imdb predict: error: no model: {NAME!r} has no champion in "
        f"sqlite:///{project / 'mlflow.db'}, and there is no models/imdb/pyfunc; "
        "run `dvc pull` (or `dvc repro imdb_evaluate`), or give --model-uri"
    ]
    assert not (project / "mlflow.db").exists()  # looking created no store


def test_the_champion_first_then_the_model_folder(project, capsys, monkeypatch, copy_empty_store):
    store = copy_empty_store(project)
    folder = model_dir(project / "models" / "imdb" / "pyfunc")
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    client.create_registered_model(NAME)
    client.create_model_version(NAME, str(model_dir(project / "v1")))
    v2 = client.create_model_version(NAME, str(model_dir(project / "v2")))
    client.set_registered_model_alias(NAME, "champion", v2.version)

    # the champion's files, loaded without the registry
    assert local_model.choose("imdb", NAME, None, "serving") == str(project / "v2")
    assert capsys.readouterr().err == (f"serving models:/{NAME}@champion (version 2 in {store})\n")
    client.delete_registered_model_alias(NAME, "champion")
    assert local_model.choose("imdb", NAME, None, "serving") == str(folder)
    assert capsys.readouterr().err == (
        f"serving models/imdb/pyfunc (no champion of {NAME!r} in {store})\n"
    )
    # a model given wins, a folder as its absolute path
    monkeypatch.chdir(folder.parent)
    assert local_model.choose("imdb", NAME, "pyfunc", "using") == str(folder)
    assert capsys.readouterr().err == "using pyfunc (--model-uri)\n"
    assert local_model.choose("imdb", NAME, "models:/x/1", "using") == "models:/x/1"


def test_serve_runs_mlflow_on_the_model_folder(project, capsys, monkeypatch):
    folder = model_dir(project / "models" / "imdb" / "pyfunc")
    calls = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: calls.append((argv, env)))
    assert cli.main(["--params", str(TINY_PARAMS), "imdb", "serve", "--port", "5123"]) == 0
    [(argv, env)] = calls
    assert argv[1:] == [
        "models",
        "serve",
        "-m",
        str(folder.resolve()),
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        "5123",
    ]
    assert env["PATH"].split(os.pathsep)[0] == str(BIN)  # uvicorn from the venv
    assert capsys.readouterr().err == (
        f"serving models/imdb/pyfunc (no champion of {NAME!r} in "
        f"sqlite:///{project / 'mlflow.db'})\n"
    )


def test_a_store_that_fails_is_an_error_not_no_champion(
    project, capsys, monkeypatch, copy_empty_store
):
    model_dir(project / "models" / "imdb" / "pyfunc")  # there to fall back on: not taken
    (project / "mlflow.db").write_bytes(b"this is not a database" * 100)
    rc, err = cli_error(capsys, "imdb", "serve")
    assert rc == 1 and len(err) == 1
    assert err[0].startswith(
        f"rnnpipe imdb serve: error: cannot read the MLflow store "
        f"sqlite:///{project / 'mlflow.db'}: "
    )

    copy_empty_store(project)

    def fails(self, name, alias):
        raise MlflowException("the server is down", INTERNAL_ERROR)

    monkeypatch.setattr(MlflowClient, "get_model_version_by_alias", fails)
    with pytest.raises(PipelineError, match="not taken as 'no champion yet'"):
        local_model.choose("imdb", NAME, None, "serving")


def test_mlflows_warnings_on_one_line():
    mismatch = (
        "Detected one or more mismatches between the model's dependencies and the "
        "current Python environment:\n - keras (current: 3.15.0, required: "
        "keras==3.1.0)\n - nosuch (current: uninstalled, required: nosuch==1.0)\n"
        "To fix the mismatches, call `mlflow.pyfunc.get_model_dependencies(model_uri)`"
    )
    line = local_model.warning_line(mismatch)
    assert line.startswith(
        "the model's requirements differ from the installed packages: "
        "keras (current: 3.15.0, required: keras==3.1.0); nosuch (current: "
        "uninstalled, required: nosuch==1.0); "
    )
    assert "\n" not in line
    assert local_model.warning_line("one\n  two") == "one two"


# --- the worker's parts, in this process ----------------------------------------------------------

ECHO = """
import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException


class Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        if (model_input["text"] == "").any():
            raise MlflowException("an empty\\ntext")
        return pd.DataFrame({"text": model_input["text"], "length": model_input["text"].str.len()})


mlflow.models.set_model(Echo())
"""


@pytest.fixture
def echo_model(tmp_path, monkeypatch) -> Path:
    """A models-from-code pyfunc without the package's code; the import finder its loading
    adds is gone after the test."""
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    (tmp_path / "echo.py").write_text(ECHO)
    mlflow.pyfunc.save_model(
        str(tmp_path / "echo"), python_model=str(tmp_path / "echo.py"), pip_requirements=[]
    )
    return tmp_path / "echo"


def test_the_worker_answers_one_json_line_per_record(echo_model):
    out = io.StringIO()
    request = {
        "model": str(echo_model),
        "tracking_uri": None,
        "records": [{"text": "good"}, {"text": "très bien 😀"}],
    }
    assert local_model.answer_request(request, out) == 0
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {"answer": {"text": "good", "length": 4}},
        {"answer": {"text": "très bien 😀", "length": 11}},
    ]
    # a bad request: the model's message, on one line
    out = io.StringIO()
    assert local_model.answer_request(request | {"records": [{"text": ""}]}, out) == 1
    assert out.getvalue() == '{"error": "an empty text"}\n'
    out = io.StringIO()
    missing = echo_model.parent / "nothing"
    assert local_model.answer_request(request | {"model": str(missing)}, out) == 1
    assert json.loads(out.getvalue())["error"].startswith(f"cannot load {missing}: ")


def test_the_package_is_found_in_the_models_code_only(tmp_path):
    code = tmp_path / "code"
    (code / "rnnpipe").mkdir(parents=True)
    (code / "rnnpipe" / "__init__.py").write_text("")
    spec = local_model.ModelCodeOnly(str(code)).find_spec("rnnpipe")
    assert spec.origin == str(code / "rnnpipe" / "__init__.py")
    assert local_model.ModelCodeOnly(str(code)).find_spec("numpy") is None
    # submodules: found on the package's own path, by the usual finders
    assert local_model.ModelCodeOnly(str(code)).find_spec("rnnpipe.imdb", [str(code)]) is None
    for folder in (None, str(tmp_path)):
        with pytest.raises(ModuleNotFoundError, match="the model carries no code of rnnpipe"):
            local_model.ModelCodeOnly(folder).find_spec("rnnpipe")


# --- answers from the model's own code ---------------------------------------------------------

# A sentiment pyfunc saved as evaluate saves it (models from code, the package as code_paths),
# from whichever rnnpipe this interpreter imports: one weight per known word.
SAVE = """
import json, sys, tempfile
from pathlib import Path

import keras, mlflow, numpy as np

import rnnpipe
from rnnpipe.core.served import requirements
from rnnpipe.core.vocab import Vocabulary
from rnnpipe.imdb import pyfunc

vocab = Vocabulary("word", ("<pad>", "<oov>", "good", "bad", "film"), 0, 1)
model = keras.Sequential([keras.Input((None,), dtype="int32"),
                          keras.layers.Embedding(len(vocab), 1, mask_zero=True),
                          keras.layers.GlobalAveragePooling1D(),
                          keras.layers.Dense(1, activation="sigmoid")])
model.layers[0].set_weights([np.array([[0], [0], [4], [-4], [0]], "float32")])
model.layers[-1].set_weights([np.ones((1, 1), "float32"), np.zeros(1, "float32")])
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    model.save(tmp / "model.keras")
    vocab.save(tmp / "vocab.json")
    (tmp / "config.json").write_text(json.dumps({"max_len": 10, "truncate": "end",
                                                 "threshold": 0.5}))
    mlflow.pyfunc.save_model(
        sys.argv[1], python_model=str(pyfunc.PYFUNC_FILE),
        artifacts={"model": str(tmp / "model.keras"), "vocab": str(tmp / "vocab.json"),
                   "config": str(tmp / "config.json")},
        code_paths=[str(Path(rnnpipe.__file__).parent)], signature=pyfunc.SIGNATURE,
        input_example=pyfunc.INPUT_EXAMPLE, pip_requirements=requirements())
print(rnnpipe.__file__)
"""
LOWER = "    arr = pc.utf8_lower(arr)\n"  # in rnnpipe/imdb/words.py


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# the tests of `versions` run on one pytest-xdist worker: it saves the two models once (12 s)
ON_THE_VERSIONS_WORKER = pytest.mark.xdist_group("model_code_versions")


@pytest.fixture(scope="module")
def versions(tmp_path_factory) -> dict[str, Path]:
    """{"old": a model saved with the working tree's package, "new": one saved from a copy whose
    tokenizer keeps the case ("GOOD" is not "good")}; saved at once, each by its own process."""
    tmp = tmp_path_factory.mktemp("model_code")
    copy = tmp / "src_new"
    shutil.copytree(ROOT / "src", copy, ignore=shutil.ignore_patterns("__pycache__"))
    words = copy / "rnnpipe" / "imdb" / "words.py"
    assert LOWER in words.read_text()
    words.write_text(words.read_text().replace(LOWER, ""))
    env = without_coverage(os.environ) | {
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    env.pop("PYTHONPATH", None)
    procs = {
        which: subprocess.Popen(
            [sys.executable, "-c", SAVE, str(tmp / which)],
            cwd=tmp,
            text=True,
            env=env | ({"PYTHONPATH": str(copy)} if which == "new" else {}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for which in ("old", "new")
    }
    saved_from = {}
    for which, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        saved_from[which] = Path(out.splitlines()[-1]).parent.parent
    assert saved_from == {"old": ROOT / "src", "new": copy}
    return {which: tmp / which for which in procs}


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory) -> dict[str, str]:
    """The tests' `rnnpipe` (a process that has imported the working tree's package) and the
    venv's bin/ first on PATH (`mlflow models serve` starts uvicorn from there)."""
    env = without_coverage(os.environ)
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
    env["KERAS_BACKEND"] = env.get("KERAS_BACKEND", "tensorflow")
    # no store: the models are given as folders
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    return warm(env)


def offline(model: Path, reviews: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return run(
        [
            str(RNNPIPE),
            "--params",
            str(TINY_PARAMS),
            "imdb",
            "predict",
            "--model-uri",
            str(model),
            *reviews,
        ],
        cwd,
        env,
        check=False,
    )


def answers(proc: subprocess.CompletedProcess) -> list[dict]:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


REVIEWS = ["GOOD film", "good film", "Bad film!"]  # the tokenizers disagree on 0 and 2


@pytest.mark.slow
@ON_THE_VERSIONS_WORKER
def test_offline_answers_come_from_the_models_own_code_as_served(versions, cli_env, tmp_path):
    from rnnpipe.imdb.words import tokenize
    from tests.test_serving import post, served

    assert tokenize("GOOD film") == ["good", "film"]  # the working tree's: lower case
    old = offline(versions["old"], REVIEWS, cli_env, tmp_path)
    assert f"using {versions['old']} (--model-uri)" in old.stderr.splitlines()
    old = answers(old)
    new = answers(offline(versions["new"], REVIEWS, cli_env, tmp_path))
    # old: "good" weighs 4, "bad" -4, "film" 0 (the mean of the words through a sigmoid)
    assert [a["probability"] for a in old] == pytest.approx(
        [sigmoid(2), sigmoid(2), sigmoid(-4 / 3)], abs=1e-6
    )
    # new: "GOOD" and "Bad" are unknown words (weight 0), as its own code splits them,
    # although the command's process imported the working tree's tokenizer
    assert [a["probability"] for a in new] == pytest.approx([0.5, sigmoid(2), 0.5], abs=1e-6)
    assert [a["label"] for a in old] == [1, 1, 0] and [a["label"] for a in new] == [1, 1, 1]

    with served(str(versions["old"]), tmp_path, cli_env) as url:
        r = post(url, {"inputs": REVIEWS})
    assert r.status_code == 200, r.text[:500]
    for a, b in zip(old, r.json()["predictions"], strict=True):
        assert a["label"] == b["label"]
        assert a["probability"] == pytest.approx(b["probability"], abs=1e-6)


@pytest.mark.slow
@ON_THE_VERSIONS_WORKER
def test_a_bad_request_and_other_requirements(versions, cli_env, tmp_path):
    bad = offline(versions["old"], ["fine", "  "], cli_env, tmp_path)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.splitlines()[-1] == "rnnpipe imdb predict: error: review 1 is empty"

    # the model asks for another keras and a package that is not installed: one line says
    # so, and the answers come
    other = tmp_path / "other"
    shutil.copytree(versions["old"], other)
    reqs = other / "requirements.txt"
    lines = [
        ("keras==3.0.1" if line.startswith("keras==") else line)
        for line in reqs.read_text().splitlines()
    ]
    reqs.write_text("\n".join([*lines, "rnnpipe-no-such-package==1.0"]) + "\n")
    proc = offline(other, ["good film"], cli_env, tmp_path)
    assert answers(proc)[0]["probability"] == pytest.approx(sigmoid(2), abs=1e-6)
    warnings = [line for line in proc.stderr.splitlines() if "requirements differ" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "warning: the model's requirements differ from the installed packages: keras (current: "
    )
    assert "required: keras==3.0.1); rnnpipe-no-such-package (current: uninstalled" in warnings[0]


@pytest.mark.slow
@ON_THE_VERSIONS_WORKER
def test_the_working_trees_package_cannot_load_a_model_without_code(versions, cli_env, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(versions["old"], bare)
    shutil.rmtree(bare / "code" / "rnnpipe")
    proc = offline(bare, ["good film"], cli_env, tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    last = proc.stderr.splitlines()[-1]
    assert last.startswith(f"rnnpipe imdb predict: error: cannot load {bare}: ")
    assert "the model carries no code of rnnpipe" in last
