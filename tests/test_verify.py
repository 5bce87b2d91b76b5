"""`python -m rnnpipe.verify`: the comparison rules (fast), and real reruns of cheap stages of the
tiny pipeline in a scratch copy (slow)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rnnpipe import verify
from rnnpipe.core import machine
from rnnpipe.verify import DIFFERS, SAME_BYTES, SAME_RESULTS, BadInput, Verdict
from tests.conftest import copy_pipeline


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def compare(
    path: str, old: bytes, new: bytes, locked: bytes | None = None, committed: bool = True
) -> Verdict:
    """compare_output of a rerun that wrote `new` where dvc.lock recorded `locked` (default:
    `old`) and git (or, committed=False, the cache) holds `old`."""
    locked = old if locked is None else locked
    return verify.compare_output(
        path, md5(locked), md5(new), old if committed else None, None if committed else old, new
    )


def as_json(value) -> bytes:
    return json.dumps(value, indent=2).encode()


# -- timings, run ids and the registry's state ----------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "seconds",
        "minutes",
        "fit_seconds",
        "train_seconds",
        "train_minutes",
        "epoch_minutes",
        "chars_per_second",
        "reviews_per_second",
        "training minutes",
        "reviews / s (test)",
        "generated chars / s",
        "time",
        "duration",
    ],
)
def test_timing_names(name):
    assert verify.is_timing(name)


@pytest.mark.parametrize(
    "name",
    [
        "max_minutes",
        "budget_spent",
        "cut_by_budget",
        "epochs",
        "test bits/char",
        "test accuracy",
        "loss",
        "trials",
    ],
)
def test_results_are_not_timings(name):
    assert not verify.is_timing(name)


def test_same_bytes():
    data = as_json({"test": {"accuracy": 0.9}, "fit_seconds": 1.5})
    assert compare("reports/imdb/baseline.json", data, data).status == SAME_BYTES


def test_timings_alone_give_same_results_and_name_them():
    old = {"fit_seconds": 1.5, "test": {"accuracy": 0.9, "n": 40}, "max_minutes": 15.0}
    v = compare("reports/imdb/baseline.json", as_json(old), as_json(old | {"fit_seconds": 2.25}))
    assert (v.status, v.ignored) == (SAME_RESULTS, [("reports/imdb/baseline.json", "fit_seconds")])
    assert (
        verify.stage_verdict([Verdict(SAME_BYTES), v]).detail
        == "only reports/imdb/baseline.json: fit_seconds differ"
    )


def test_the_first_differing_value_is_named():
    old = {"seconds": 1.0, "test": {"accuracy": 0.9, "f1": 0.8}, "valid": {"accuracy": 0.7}}
    new = {"seconds": 2.0, "test": {"accuracy": 0.9, "f1": 0.81}, "valid": {"accuracy": 0.75}}
    v = compare("reports/imdb/metrics.json", as_json(old), as_json(new))
    assert (v.status, v.detail) == (DIFFERS, "reports/imdb/metrics.json: test.f1: 0.8 != 0.81")


@pytest.mark.parametrize(
    "old, new, detail",
    [
        ({"max_minutes": 15.0}, {"max_minutes": 10.0}, "max_minutes: 15.0 != 10.0"),
        ({"a": 1}, {"a": True}, "a: 1 != true"),  # a bool is not a number
        ({"a": 1, "b": 2}, {"a": 1}, "b: 2 != <missing>"),
        ({"a": [1, 2]}, {"a": [1, 2, 3]}, "a[2]: <missing> != 3"),
        ({"a": [{"score": 0.5}]}, {"a": [{"score": 0.25}]}, "a[0].score: 0.5 != 0.25"),
        ({"model": "GRU-64"}, {"model": "LSTM-64"}, 'model: "GRU-64" != "LSTM-64"'),
    ],
)
def test_json_differences(old, new, detail):
    v = compare("reports/x.json", as_json(old), as_json(new))
    assert (v.status, v.detail) == (DIFFERS, f"reports/x.json: {detail}")


def test_equal_numbers_of_another_spelling_and_nan_are_the_same_results():
    old = b'{"a": 1, "b": NaN, "c": 2.0}'
    new = b'{"c": 2, "b": NaN, "a": 1.0}'
    v = compare("reports/x.json", old, new)
    assert (v.status, v.ignored) == (SAME_RESULTS, [])
    assert verify.stage_verdict([v]).detail == "same values"


def test_promotion_ignores_run_ids_and_the_registry_state_not_the_metric():
    old = {
        "model_name": "imdb-sentiment",
        "version": 5,
        "run_id": "713b",
        "metric": "valid.accuracy",
        "challenger_metric": 0.9,
        "champion_metric": 0.9,
        "compared_with_version": 3,
        "decision": "candidate",
        "reason": "does not beat",
    }
    fresh = old | {
        "version": 1,
        "run_id": "a1b2",
        "champion_metric": None,
        "compared_with_version": None,
        "decision": "champion",
        "reason": "first model: no champion yet",
    }
    path = "reports/imdb/promotion.json"
    assert compare(path, as_json(old), as_json(fresh)).status == SAME_RESULTS
    v = compare(path, as_json(old), as_json(fresh | {"challenger_metric": 0.8}))
    assert v.detail == f"{path}: challenger_metric: 0.9 != 0.8"
    # the registry's keys count as results elsewhere
    assert compare("reports/x.json", as_json(old), as_json(fresh)).status == DIFFERS


def test_csv_cells_by_column_timing_columns_ignored():
    old = b"epoch,loss,seconds\n0,0.5,1.2\n1,0.4,1.1\n"
    assert (
        compare("reports/h.csv", old, b"epoch,loss,seconds\n0,0.5,9.9\n1,0.4,8.8\n").status
        == SAME_RESULTS
    )
    v = compare("reports/h.csv", old, b"epoch,loss,seconds\n0,0.5,1.2\n1,0.45,1.1\n")
    assert v.detail == "reports/h.csv: line 3, loss: 0.4 != 0.45"
    v = compare("reports/h.csv", old, old + b"2,0.3,1.0\n")
    assert v.detail == "reports/h.csv: line 4: <missing> != 2,0.3,1.0"


COMPARE_MD = """\
# imdb: recurrent vs. self-attention

At most 6 minutes each.

| row | model | test accuracy | training minutes | reviews / s (test) |
| --- | --- | --- | --- | --- |
| recurrent | BiGRU-8 x 1 | {acc} | {minutes} | {speed} |
"""


def test_markdown_tables_by_column_timing_columns_ignored():
    old = COMPARE_MD.format(acc=0.9, minutes=0.05, speed=1151).encode()
    same = COMPARE_MD.format(acc=0.9, minutes=0.07, speed=676.4).encode()
    v = compare("reports/imdb/compare.md", old, same)
    assert v.status == SAME_RESULTS
    assert (
        verify.stage_verdict([v]).detail
        == "only reports/imdb/compare.md: training minutes, reviews / s (test) differ"
    )
    v = compare(
        "reports/imdb/compare.md", old, COMPARE_MD.format(acc=0.875, minutes=0.07, speed=1).encode()
    )
    assert v.detail == "reports/imdb/compare.md: line 7, test accuracy: 0.9 != 0.875"
    v = compare("reports/imdb/compare.md", old, old.replace(b"6 minutes", b"5 minutes"))
    assert v.detail == (
        "reports/imdb/compare.md: line 3: At most 6 minutes each. != At most 5 minutes each."
    )


def test_binary_outputs_have_no_same_results():
    v = compare("models/imdb/model.keras", b"zip 1", b"zip 2", committed=False)
    assert (v.status, v.detail) == (
        DIFFERS,
        f"models/imdb/model.keras: md5 {md5(b'zip 1')} != {md5(b'zip 2')}",
    )


def test_text_outputs_outside_git_compare_with_the_cache_copy():
    old = as_json({"size": 50, "tokens": ["<pad>", "<oov>"]})
    v = compare(
        "data/processed/imdb/vocab.json", old, as_json({"size": 40, "tokens": []}), committed=False
    )
    assert v.detail == "data/processed/imdb/vocab.json: size: 50 != 40"


def test_an_edited_report_differs_from_a_rerun_that_matches_the_lock():
    locked = as_json({"test": {"accuracy": 0.9}})
    edited = as_json({"test": {"accuracy": 0.125}})
    v = compare("reports/imdb/baseline.json", edited, locked, locked=locked)
    assert v.detail == "reports/imdb/baseline.json: test.accuracy: 0.125 != 0.9"


def test_outputs_missing_on_either_side():
    assert (
        verify.compare_output("a.npz", "x", None, None, None, None).detail
        == "a.npz: not written by the rerun"
    )
    assert (
        verify.compare_output("a.npz", None, "y", None, None, None).detail
        == "a.npz: not in the committed dvc.lock"
    )
    v = verify.stage_verdict(
        [Verdict(SAME_BYTES), Verdict(DIFFERS, "first"), Verdict(DIFFERS, "second")]
    )
    assert (v.status, v.detail) == (DIFFERS, "first")


# -- the project: stages, their order, the cache -------------------------------------------

DVC_YAML = """\
stages:
  imdb_ingest:
    cmd: x
    deps: [data/raw/imdb/a.tar.gz]
    outs: [data/interim/imdb/reviews.parquet]
  imdb_train:
    cmd: x
    deps: [data/interim/imdb/reviews.parquet, src/train.py]
    outs: [models/imdb/model.keras]
  imdb_evaluate:
    cmd: x
    deps: [models/imdb/model.keras, data/interim/imdb]
    metrics:
      - reports/imdb/metrics.json:
          cache: false
  imdb_register:
    cmd: x
    deps: [models/imdb/model.keras, reports/imdb/metrics.json]
    outs:
      - reports/imdb/promotion.json:
          cache: false
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")
    return tmp_path


def test_stages_in_dag_order_register_brings_evaluate(project, capsys):
    stages = verify.load_stages(project)
    assert stages["imdb_evaluate"].outs == ["reports/imdb/metrics.json"]
    assert stages["imdb_evaluate"].cached == set()
    assert stages["imdb_train"].cached == {"models/imdb/model.keras"}
    assert verify.select(None, stages) == list(stages)
    assert verify.select(["imdb_register", "imdb_ingest"], stages) == [
        "imdb_ingest",
        "imdb_evaluate",
        "imdb_register",
    ]
    assert "rerunning imdb_evaluate too" in capsys.readouterr().err
    with pytest.raises(
        BadInput,
        match="unknown stage.s. imdb_tarin; the stages are: "
        "imdb_ingest, imdb_train, imdb_evaluate, imdb_register",
    ):
        verify.select(["imdb_tarin"], stages)


def test_inputs_missing_from_the_cache_ask_for_dvc_pull(project, tmp_path):
    stages = verify.load_stages(project)
    cache = tmp_path / "cache"
    entry = {"path": "models/imdb/model.keras", "hash": "md5", "md5": "ab" + "0" * 30}
    committed = {"imdb_train": {"models/imdb/model.keras": entry}}
    assert verify.cache_object(cache, entry) == cache / "files/md5/ab" / ("0" * 30)
    assert not verify.in_cache(cache, entry)
    copy = tmp_path / "copy"
    (copy / "reports/imdb").mkdir(parents=True)
    (copy / "reports/imdb/metrics.json").write_text("{}")  # from git
    with pytest.raises(
        BadInput,
        match=r"not in the DVC cache .*: models/imdb/model.keras: "
        r"run `dvc pull` first",
    ):
        verify.checkout_inputs(["imdb_register"], stages, copy, cache, committed, "dvc", {})
    # a directory in the cache: its listing and every file in it
    obj = verify.cache_object(cache, entry)
    obj.parent.mkdir(parents=True)
    obj.write_bytes(b"model")
    assert verify.in_cache(cache, entry)
    listing = {"hash": "md5", "md5": "cd" + "1" * 26 + ".dir"}
    verify.cache_object(cache, listing).parent.mkdir(parents=True)
    verify.cache_object(cache, listing).write_text(
        json.dumps(
            [{"md5": entry["md5"], "relpath": "a"}, {"md5": "ef" + "2" * 30, "relpath": "b"}]
        )
    )
    assert not verify.in_cache(cache, listing)


def test_the_mirror_is_the_workspaces(tmp_path, monkeypatch):
    monkeypatch.delenv("RNNPIPE_DATA_MIRROR", raising=False)
    (tmp_path / "params.yaml").write_text(
        "imdb:\n  download:\n    mirror: null\ncharlm:\n  download:\n    mirror:\n"
    )
    assert verify.mirror(tmp_path) == (tmp_path / "../shared/data").resolve()
    env = verify.environment(tmp_path, tmp_path / "copy")
    assert env["RNNPIPE_DATA_MIRROR"] == str((tmp_path / "../shared/data").resolve())
    assert env["MLFLOW_TRACKING_URI"] == f"sqlite:///{tmp_path / 'copy' / 'mlflow.db'}"
    (tmp_path / "params.yaml").write_text(
        "imdb:\n  download:\n    mirror: data\ncharlm:\n  download:\n    mirror: /elsewhere\n"
    )
    assert verify.mirror(tmp_path) is None  # each project its own: the stages decide
    monkeypatch.setenv("RNNPIPE_DATA_MIRROR", "mirror")
    assert verify.mirror(tmp_path) == tmp_path / "mirror"


def test_bad_input_exits_2(project, tmp_path, monkeypatch, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    (project / ".dvc").rename(project / ".dvc-not")
    assert verify.main([]) == 2
    assert "is not in a DVC project" in capsys.readouterr().err
    (project / ".dvc-not").rename(project / ".dvc")
    (project / "dvc.lock").unlink()
    monkeypatch.chdir(project)
    assert verify.main(["--stages", "imdb_train"]) == 2
    assert "no dvc.lock" in capsys.readouterr().err


def test_an_unknown_stage_lists_the_known_ones(project):
    proc = subprocess.run(
        [sys.executable, "-m", "rnnpipe.verify", "--stages", "imdb_tarin"],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert "unknown stage(s) imdb_tarin; the stages are: imdb_ingest, imdb_train" in proc.stderr


# -- real reruns of the tiny pipeline ---------------------------------------------------------


def _use_env(monkeypatch, env: dict[str, str]) -> None:
    for key in set(os.environ) - set(env):
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def _lines(out: str) -> dict[str, str]:
    """stage -> what verify said of it."""
    return dict(re.findall(r"^(\w+): +(.*)$", out, re.M))


@pytest.mark.slow
def test_verify_cheap_stages_then_an_edited_report_differs(
    tiny_pipeline, tmp_path, monkeypatch, capsys
):
    repo, env = copy_pipeline(tiny_pipeline, tmp_path / "repo")
    watched = [
        p
        for p in (
            "dvc.lock",
            "mlflow.db",
            "reports/imdb/baseline.json",
            "data/processed/imdb/vocab.json",
        )
        if (repo / p).exists()
    ]
    before = {p: (repo / p).read_bytes() for p in watched}
    cache = sorted(p.relative_to(repo) for p in (repo / ".dvc/cache").rglob("*"))
    _use_env(monkeypatch, env)
    monkeypatch.chdir(repo / "src")  # verify finds the project's root
    code = verify.main(["--stages", "imdb_baseline", "imdb_vocab", "--keep"])
    out, err = capsys.readouterr()
    said = _lines(out)
    assert code == 0, out + err[-3000:]
    assert said["imdb_vocab"] == SAME_BYTES
    # the baseline's report holds its fit's seconds: same results, unless the clock agrees
    assert said["imdb_baseline"] in (
        f"{SAME_RESULTS} (only reports/imdb/baseline.json: fit_seconds differ)",
        SAME_BYTES,
    )
    assert re.search(r"verify: 2 stage\(s\): \d same bytes, \d same results, 0 differ", out)
    kept = Path(re.search(r"scratch copy kept in (\S+)", out)[1])
    try:
        assert kept.name == "repo" and not kept.is_relative_to(repo)
        # the rerun's vocabulary and lock, in the copy
        assert (kept / "data/processed/imdb/vocab.json").is_file()
        assert "imdb_vocab" in (kept / "dvc.lock").read_text()
    finally:
        shutil.rmtree(kept.parent)
    # the workspace, its lock, cache and MLflow store are as they were
    assert {p: (repo / p).read_bytes() for p in watched} == before
    assert sorted(p.relative_to(repo) for p in (repo / ".dvc/cache").rglob("*")) == cache

    report = json.loads(before["reports/imdb/baseline.json"])
    accuracy = report["test"]["accuracy"]
    report["test"]["accuracy"] = 0.125
    (repo / "reports/imdb/baseline.json").write_text(json.dumps(report, indent=2))
    code = verify.main(["--stages", "imdb_baseline"])
    out, err = capsys.readouterr()
    assert code == 1, out + err[-3000:]
    assert _lines(out)["imdb_baseline"] == (
        f"{DIFFERS}: reports/imdb/baseline.json: test.accuracy: 0.125 != {json.dumps(accuracy)}"
    )
    assert "1 stage(s): 0 same bytes, 0 same results, 1 differ" in out


@pytest.mark.parametrize(
    "flags, isa",
    [
        ("fpu avx avx2 avx512f avx512bw", "AVX-512"),
        ("fpu avx avx2 fma", "AVX2"),
        ("fpu sse2", "no AVX"),
    ],
)
def test_cpu_names_the_model_and_the_widest_vector_instructions(tmp_path, flags, isa):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: {flags}\n\n")
    assert machine.cpu(info) == f"AMD EPYC 9R14, {isa}"
    assert machine.cpu(tmp_path / "missing")  # not Linux: what platform knows
