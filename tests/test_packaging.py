"""The served model as a DVC output (rnnpipe.core.packaging): models/<project>/pyfunc holds the
MLflow pyfunc with the same bytes for the same model, vocabulary, config and code, ships only
the package modules it runs, loads from its folder alone, and is what the train run logs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.entities import LoggedModelStatus

from rnnpipe.charlm import pyfunc as charlm_pyfunc
from rnnpipe.core import codedeps, packaging, tracking
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.saving import save_model
from rnnpipe.core.vocab import Vocabulary
from rnnpipe.imdb import pyfunc as imdb_pyfunc
from tests import tinydata
from tests.conftest import ROOT

ENCODE = SimpleNamespace(max_len=5, truncate="end")
REVIEWS = pd.DataFrame({"text": ["good good film", "bad plot"]})
PROMPTS = pd.DataFrame([{"prompt": "the", "length": 12, "temperature": 0.8, "seed": 1}])


def files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def sentiment_dir(folder: Path) -> Path:
    """models/imdb as train leaves it: model.keras (mean of a weight per word through a
    sigmoid) and vocab.json."""
    import keras

    folder.mkdir(parents=True)
    vocab = Vocabulary("word", ("<pad>", "<oov>", "good", "bad", "film", "plot"), 0, 1)
    vocab.save(folder / "vocab.json")
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(len(vocab), 1, mask_zero=True),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    table = np.zeros((len(vocab), 1), "float32")
    table[vocab.index["good"]], table[vocab.index["bad"]] = 3.0, -3.0
    model.layers[0].set_weights([table])
    model.layers[-1].set_weights([np.ones((1, 1), "float32"), np.zeros(1, "float32")])
    save_model(model, folder / "model.keras")
    return folder


def charlm_dir(folder: Path) -> Path:
    """models/charlm as train leaves it: an untrained GRU char LM and its vocab.json."""
    import keras

    from rnnpipe.charlm.model import build_char_lm

    folder.mkdir(parents=True)
    vocab = Vocabulary("char", ("<unk>", *sorted(set("the island was quiet"))), None, 0)
    vocab.save(folder / "vocab.json")
    hp = dict(tinydata.SMALL_CHAR_LM)
    keras.utils.set_random_seed(0)
    save_model(build_char_lm(hp, len(vocab)), folder / "model.keras")
    return folder


# how each project saves its pyfunc from its model folder, in this process or another
SAVE = {
    "imdb": lambda models, dst: imdb_pyfunc.save(models, ENCODE, 0.5, dst),
    "charlm": lambda models, dst: charlm_pyfunc.save(
        models / "model.keras", models / "vocab.json", dst
    ),
}
SAVE_IN_A_NEW_PROCESS = {
    "imdb": "from rnnpipe.imdb.pyfunc import save; from types import SimpleNamespace; "
    "save(m, SimpleNamespace(max_len=5, truncate='end'), 0.5, d)",
    "charlm": "from rnnpipe.charlm.pyfunc import save; save(m / 'model.keras', "
    "m / 'vocab.json', d)",
}
MODEL_DIR = {"imdb": sentiment_dir, "charlm": charlm_dir}
EXAMPLE = {"imdb": REVIEWS, "charlm": PROMPTS}


# -- the code it ships -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "project, runs",
    [
        ("imdb", {"rnnpipe.imdb.model", "rnnpipe.imdb.words", "rnnpipe.core.requests"}),
        ("charlm", {"rnnpipe.charlm.sampler", "rnnpipe.core.requests"}),
    ],
)
def test_the_closure_of_a_pyfunc_is_what_it_imports(project, runs):
    modules = codedeps.closure(f"rnnpipe.{project}.pyfunc_model")
    # what load_context and predict import inside the functions, and the packages on the way
    assert (
        runs
        | {
            f"rnnpipe.{project}.pyfunc",
            "rnnpipe.core.vocab",
            "rnnpipe",
            "rnnpipe.core",
            f"rnnpipe.{project}",
        }
        <= modules
    )
    other = "charlm" if project == "imdb" else "imdb"
    assert not any(m.startswith(f"rnnpipe.{other}") for m in modules)
    assert not {m.rpartition(".")[2] for m in modules} & {
        "cli",
        "tracking",
        "train",
        "tune",
        "evaluate",
        "register",
    }
    for module in modules:
        assert codedeps.module_name(codedeps.module_file(module)) == module
    with pytest.raises(ValueError, match="no module rnnpipe.nope"):
        codedeps.closure("rnnpipe.nope")


def test_write_code_ships_the_closure_in_the_package_layout(tmp_path):
    module = "rnnpipe.imdb.pyfunc_model"
    assert packaging.write_code(module, tmp_path) == tmp_path / "rnnpipe"
    shipped = files(tmp_path)
    expected = {
        codedeps.module_file(m).relative_to(codedeps.SRC).as_posix()
        for m in codedeps.closure(module)
    }
    assert set(shipped) == expected
    assert "rnnpipe/cli.py" not in shipped and "rnnpipe/imdb/train.py" not in shipped
    for rel, data in shipped.items():
        source = codedeps.SRC / rel
        trivial = source.name == "__init__.py" and codedeps.is_trivial(source)
        # a docstring-only __init__.py is no stage's DVC dep: its words must not reach the bytes
        assert data == (b"" if trivial else source.read_bytes()), rel
    assert shipped["rnnpipe/__init__.py"] == b""


def test_tree_sha256_covers_paths_and_bytes(tmp_path):
    def tree(name: str, content: dict[str, bytes]) -> str:
        for rel, data in content.items():
            (tmp_path / name / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name / rel).write_bytes(data)
        return packaging.tree_sha256(tmp_path / name)

    digest = tree("a", {"x": b"12", "sub/y": b"3"})
    entries = "".join(
        f"{rel}\0{hashlib.sha256(data).hexdigest()}\n"
        for rel, data in (("sub/y", b"3"), ("x", b"12"))
    )
    assert digest == hashlib.sha256(entries.encode()).hexdigest()
    assert tree("b", {"sub/y": b"3", "x": b"12"}) == digest  # another folder, same files
    assert tree("c", {"x": b"1", "sub/y": b"23"}) != digest  # a byte moved between files
    assert tree("d", {"z": b"12", "sub/y": b"3"}) != digest  # a file renamed


@pytest.mark.parametrize("project", ["imdb", "charlm"])
@pytest.mark.parametrize("missing", ["model.keras", "vocab.json"])
def test_a_missing_model_or_vocab_is_named_and_the_old_folder_stays(tmp_path, project, missing):
    models = tmp_path / "models"
    models.mkdir()
    for name in {"model.keras", "vocab.json"} - {missing}:
        (models / name).write_text("here")
    (models / "pyfunc").mkdir()
    (models / "pyfunc" / "MLmodel").write_text("the old one")
    with pytest.raises(PipelineError, match=re.escape(f"{models / missing} is missing")):
        SAVE[project](models, models / "pyfunc")
    assert files(models / "pyfunc") == {"MLmodel": b"the old one"}
    assert sorted(p.name for p in models.iterdir()) == sorted(
        {"model.keras", "vocab.json", "pyfunc"} - {missing}
    )  # no temporary folder left


def test_a_save_that_fails_half_way_leaves_the_old_folder(tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    for name in ("model.keras", "vocab.json"):
        (models / name).write_text("here")
    (models / "pyfunc").mkdir()
    (models / "pyfunc" / "MLmodel").write_text("the old one")

    def half_saved(path, **kwargs):
        Path(path).mkdir()
        (Path(path) / "MLmodel").write_text("half")
        raise OSError("No space left on device")

    monkeypatch.setattr(mlflow.pyfunc, "save_model", half_saved)
    with pytest.raises(OSError, match="No space left"):
        SAVE["charlm"](models, models / "pyfunc")
    assert files(models / "pyfunc") == {"MLmodel": b"the old one"}
    assert sorted(p.name for p in models.iterdir()) == ["model.keras", "pyfunc", "vocab.json"]


# -- the saved folder --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("project", ["imdb", "charlm"])
def test_the_same_model_gives_the_same_bytes_in_a_new_process(tmp_path, project):
    from mlflow.models import Model

    models = MODEL_DIR[project](tmp_path / "models")
    SAVE[project](models, tmp_path / "a")
    script = (
        f"from pathlib import Path; m = Path({str(models)!r}); "
        f"d = Path({str(tmp_path / 'b')!r}); {SAVE_IN_A_NEW_PROCESS[project]}"
    )
    subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, check=True, capture_output=True, timeout=300
    )
    saved = files(tmp_path / "a")
    assert saved == files(tmp_path / "b")
    # what save_model writes differently each time, fixed
    mlmodel = Model.load(tmp_path / "a")
    assert mlmodel.utc_time_created == packaging.FIXED_TIME
    assert re.fullmatch(r"[0-9a-f]{32}", mlmodel.model_uuid)
    flavor = mlmodel.flavors["python_function"]
    assert flavor["model_code_path"] == "pyfunc_model.py"
    assert {a["uri"] for a in flavor["artifacts"].values()} == {
        a["path"] for a in flavor["artifacts"].values()
    }
    assert {
        "MLmodel",
        "pyfunc_model.py",
        "requirements.txt",
        "python_env.yaml",
        "input_example.json",
        "artifacts/model.keras",
        "artifacts/vocab.json",
        f"code/rnnpipe/{project}/pyfunc_model.py",
    } <= set(saved)
    assert (tmp_path / "a/artifacts/model.keras").read_bytes() == (
        models / "model.keras"
    ).read_bytes()
    # no machine's paths, no stray files
    for rel, data in saved.items():
        assert not re.search(r"__pycache__|\.pyc$", rel), rel
        assert str(tmp_path).encode() not in data and str(codedeps.SRC).encode() not in data, rel
    # saved again over it: replaced whole, the same bytes
    (tmp_path / "a" / "stray.txt").write_text("left from before")
    SAVE[project](models, tmp_path / "a")
    assert files(tmp_path / "a") == saved


LOAD_ALONE = """
import importlib.util, json, sys
from pathlib import Path
folder, src, example = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
sys.path = [p for p in sys.path if Path(p).resolve() != Path(src).resolve()]
assert importlib.util.find_spec("rnnpipe") is None, "the checkout's package is importable"
import mlflow
import pandas as pd
answer = mlflow.pyfunc.load_model(str(folder)).predict(pd.read_json(example, orient="records"))
print(json.dumps({"answer": answer.to_dict(orient="records"),
                  "modules": {n: getattr(m, "__file__", None) for n, m in sys.modules.items()
                              if n == "rnnpipe" or n.startswith("rnnpipe.")}}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("project", ["imdb", "charlm"])
def test_the_saved_pyfunc_runs_from_its_folder_alone(tmp_path, project):
    models = MODEL_DIR[project](tmp_path / "models")
    SAVE[project](models, tmp_path / "saved")
    served = tmp_path / "elsewhere" / "pyfunc"
    shutil.copytree(tmp_path / "saved", served)
    example = tmp_path / "example.json"
    EXAMPLE[project].to_json(example, orient="records")
    nowhere = tmp_path / "cwd"
    nowhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-I", "-c", LOAD_ALONE, str(served), str(codedeps.SRC), str(example)],
        cwd=nowhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.splitlines()[-1])
    code = (served / "code").resolve()
    assert f"rnnpipe.{project}.pyfunc" in got["modules"]
    for name, file in got["modules"].items():
        assert file is not None and Path(file).resolve().is_relative_to(code), (name, file)
    # the same answers as the folder loaded here
    expected = mlflow.pyfunc.load_model(str(tmp_path / "saved")).predict(EXAMPLE[project])
    assert got["answer"] == expected.to_dict(orient="records")


# -- the logged model ---------------------------------------------------------------------------


@pytest.fixture
def project_store(tmp_path, monkeypatch, copy_empty_store):
    """An empty MLflow store as the project's own (tmp_path/mlflow.db, artifacts in
    tmp_path/mlartifacts)."""
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", copy_empty_store(tmp_path))
    monkeypatch.delenv(tracking.SUFFIX_ENV, raising=False)
    yield tmp_path
    mlflow.set_tracking_uri(None)


@pytest.mark.slow
def test_the_logged_model_holds_the_saved_files(project_store):
    tmp = project_store
    models = sentiment_dir(tmp / "models" / "imdb")
    tracking.setup("imdb")
    with mlflow.start_run(
        tags={tracking.MODEL_TAG: tracking.file_sha256(models / "model.keras")}
    ) as run:
        mlflow.log_params({"units": 1})
        mlflow.log_metric("valid_accuracy", 0.75)
        logged = imdb_pyfunc.log_model(models, ENCODE, 0.5, models / "pyfunc")
    saved = files(models / "pyfunc")
    assert logged.status == LoggedModelStatus.READY
    assert logged.source_run_id == run.info.run_id
    assert logged.tags[packaging.TAG] == packaging.tree_sha256(models / "pyfunc")
    assert logged.params == {"units": "1"}
    # what the store holds (a download of models:/... adds a registered_model_meta file)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=logged.artifact_location, dst_path=str(tmp / "downloaded")
    )
    assert files(Path(local)) == saved
    # as a model log_model logged: an output of the run, its metrics, it loads and answers
    outputs = mlflow.get_run(run.info.run_id).outputs.model_outputs
    assert [o.model_id for o in outputs] == [logged.model_id]
    model = mlflow.get_logged_model(logged.model_id)
    assert {m.key: m.value for m in model.metrics} == {"valid_accuracy": 0.75}
    answer = mlflow.pyfunc.load_model(f"models:/{logged.model_id}").predict(REVIEWS)
    assert answer["label"].tolist() == [1, 0]
    found = mlflow.search_logged_models(
        filter_string=f"source_run_id = '{run.info.run_id}'", output_format="list"
    )
    assert [m.model_id for m in found] == [logged.model_id]


def test_logging_without_a_run_is_an_error(tmp_path):
    (tmp_path / "MLmodel").write_text("saved")
    with pytest.raises(PipelineError, match="no active MLflow run"):
        packaging.log_saved(tmp_path)


# -- make verify ------------------------------------------------------------------------------


def test_verify_names_the_file_of_a_folder_output_that_differs(tmp_path):
    from rnnpipe import verify

    def md5(data: bytes) -> str:
        return hashlib.md5(data).hexdigest()

    path = "models/imdb/pyfunc"
    stages = {"imdb_evaluate": verify.Stage("imdb_evaluate", [], [path], {path})}
    cache, copy = tmp_path / "cache", tmp_path / "copy"
    entry = {"path": path, "hash": "md5", "md5": "ab" + "0" * 30 + ".dir"}
    listing = verify.cache_object(cache, entry)
    listing.parent.mkdir(parents=True)
    listing.write_text(
        json.dumps(
            [
                {"md5": md5(b"same"), "relpath": "MLmodel"},
                {"md5": md5(b"old"), "relpath": "code/rnnpipe/x.py"},
            ]
        )
    )
    (copy / path / "code/rnnpipe").mkdir(parents=True)
    (copy / path / "MLmodel").write_bytes(b"same")
    (copy / path / "code/rnnpipe/x.py").write_bytes(b"new")

    def compare(new_md5: str) -> verify.Verdict:
        return verify.compare_stage(
            "imdb_evaluate",
            stages,
            copy,
            cache,
            {"imdb_evaluate": {path: entry}},
            {"imdb_evaluate": {path: entry | {"md5": new_md5}}},
            {},
        )

    assert compare(entry["md5"]).status == verify.SAME_BYTES
    v = compare("cd" + "1" * 30 + ".dir")
    assert (v.status, v.detail) == (
        verify.DIFFERS,
        f"{path}/code/rnnpipe/x.py: md5 {md5(b'old')} != {md5(b'new')}",
    )
    (copy / path / "code/rnnpipe/x.py").write_bytes(b"old")
    (copy / path / "stray.txt").write_bytes(b"")
    assert (
        compare("cd" + "1" * 30 + ".dir").detail == f"{path}/stray.txt: md5 <missing> != {md5(b'')}"
    )
    listing.unlink()  # not in the cache: the folder's md5s
    assert (
        compare("cd" + "1" * 30 + ".dir").detail
        == f"{path}: md5 {entry['md5']} != cd{'1' * 30}.dir"
    )
