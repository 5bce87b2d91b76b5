"""The DAG is exact: each stage depends on the code it runs and the params it reads, nothing
more, and reruns when, and only when, one of them changes."""

from __future__ import annotations

import ast
import json
import sys

import pytest
import yaml

from tests.conftest import DVC, ROOT, copy_pipeline, run
from tests.depgraph import SRC, _imports, module_file, stage_code

DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = DVC_YAML["stages"]


def stage_names(project: str) -> list[str]:
    return [s for s in STAGES if s.startswith(project + "_")]


@pytest.mark.parametrize("name", list(STAGES))
def test_code_deps_are_the_stage_modules_import_closure(name):
    project, command = name.split("_", 1)
    stage = STAGES[name]
    assert stage["cmd"].startswith(f"rnnpipe {project} {command} ")
    declared = {d for d in stage["deps"] if d.startswith("src/")}
    expected = stage_code(project, command)
    assert declared == expected, (
        f"{name}: missing {sorted(expected - declared)}, extra {sorted(declared - expected)}"
    )


def test_package_inits_import_nothing():
    for init in SRC.rglob("__init__.py"):
        body = ast.parse(init.read_text()).body
        assert all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body), (
            f"{init} runs code: every stage would depend on it"
        )


def test_projects_never_import_each_other_and_core_imports_neither():
    for path in (SRC / "rnnpipe").rglob("*.py"):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts)
        wing = module.split(".")[1] if module.count(".") else ""
        imported = {m.split(".")[1] for m in _imports(path, module) if m.count(".")}
        others = {"imdb": {"charlm"}, "charlm": {"imdb"}, "core": {"imdb", "charlm"}}
        assert not imported & others.get(wing, set()), f"{module} imports {imported}"


def test_depgraph_finds_lazy_imports_and_the_pyfunc_file():
    code = stage_code("imdb", "evaluate")
    assert "src/rnnpipe/imdb/model.py" in code  # imported inside evaluate()
    assert "src/rnnpipe/imdb/pyfunc_model.py" in code  # named as a file, not imported
    assert module_file("rnnpipe.nope") is None


def covers(declared: str, key: str) -> bool:
    return key == declared or key.startswith(declared + ".")


@pytest.mark.slow
def test_each_stage_declares_exactly_the_params_it_reads(tiny_pipeline):
    read = tiny_pipeline.params_read()
    assert set(read) == {n.replace("_", " ", 1) for n in STAGES}  # every stage ran
    for name, stage in STAGES.items():
        keys = read[name.replace("_", " ", 1)]
        declared = stage.get("params", [])
        unread = [d for d in declared if not any(covers(d, k) for k in keys)]
        undeclared = [k for k in keys if not any(covers(d, k) for d in declared)]
        assert not unread and not undeclared, (
            f"{name}: declares {unread} it never reads; reads {undeclared} it does not declare"
        )


def dvc(repo, env, *args, check=True):
    return run([str(DVC), *args], repo, env, check=check)


def changed(repo, env) -> set[str]:
    return set(json.loads(dvc(repo, env, "status", "--json").stdout or "{}"))


@pytest.mark.slow
def test_second_repro_runs_nothing(tiny_pipeline, tmp_path):
    repo, env = copy_pipeline(tiny_pipeline, tmp_path / "repo")
    assert changed(repo, env) == set()
    proc = dvc(repo, env, "repro")
    assert "Running stage" not in proc.stdout + proc.stderr
    assert changed(repo, env) == set()


@pytest.mark.slow
def test_forced_gates_leave_status_clean(tiny_pipeline, tmp_path):
    repo, env = copy_pipeline(tiny_pipeline, tmp_path / "repo")
    for gate in ("imdb_check_encoded", "imdb_check_raw", "charlm_check_raw"):
        dvc(repo, env, "repro", "-f", "-s", gate)
        assert changed(repo, env) == set(), f"after forcing {gate}"


PARAM_EDITS = [
    ("imdb.baseline.C", 1.0, {"imdb_baseline"}),
    ("imdb.student.nbsvm.C", 1.0, {"imdb_teach"}),
    ("imdb.train.epochs", 3, {"imdb_train"}),
    ("imdb.student.epochs", 3, {"imdb_student"}),
    ("imdb.student.unsup_reviews", 4, {"imdb_teach"}),
    ("imdb.student.teacher", "rnn", {"imdb_teach"}),
    ("imdb.student.windows", False, {"imdb_teach"}),
    ("imdb.student.window_min_words", 2, {"imdb_teach"}),
    ("imdb.train.use_tuned", False, {"imdb_hparams"}),
    # the search fixes the model keys it does not search at train.model's values, so it
    # depends on the model section too (a searched key's value there: the hparams stage says
    # that the search decides it)
    ("imdb.train.model.units", 4, {"imdb_tune", "imdb_hparams"}),
    ("imdb.train.model.layers", 2, {"imdb_tune", "imdb_hparams"}),
    ("imdb.train.batch_size", 4, {"imdb_train", "imdb_student"}),
    ("imdb.tune.max_trials", 3, {"imdb_tune"}),
    ("imdb.embed.epochs", 3, {"imdb_embed"}),
    # the threshold policy is part of what register compares on
    ("imdb.evaluate.threshold", 0.4, {"imdb_evaluate", "imdb_register"}),
    ("imdb.promote.model_name", "other-name", {"imdb_register"}),
    ("imdb.check_raw.min_text_chars", 5, {"imdb_check_raw"}),
    ("imdb.vocab.max_tokens", 100, {"imdb_vocab"}),
    ("imdb.ingest.include_unsup", False, {"imdb_ingest", "imdb_check_raw"}),
    (
        "imdb.encode.max_len",
        20,
        {"imdb_encode", "imdb_check_encoded", "imdb_teach", "imdb_evaluate"},
    ),
    ("charlm.evaluate.sample_length", 10, {"charlm_evaluate"}),
    ("charlm.train.model.seq_length", 10, {"charlm_tune", "charlm_hparams"}),
    ("charlm.train.epochs", 3, {"charlm_train"}),
    ("charlm.tune.max_trials", 1, {"charlm_tune"}),
    ("charlm.promote.metric", "bits_per_char", {"charlm_register"}),
    # the comparison trains its own models: the main train stage never reruns for it
    ("imdb.compare.epochs", 1, {"imdb_compare"}),
    ("charlm.compare.sample_length", 10, {"charlm_compare"}),
    ("charlm.train.feed", "windows", {"charlm_tune", "charlm_train", "charlm_compare"}),
]
MODULE_EDITS = [
    ("src/rnnpipe/imdb/baseline.py", {"imdb_baseline", "imdb_teach"}),
    # register scores a champion of other validation data as evaluate does
    ("src/rnnpipe/charlm/sampler.py", {"charlm_evaluate", "charlm_compare", "charlm_register"}),
    (
        "src/rnnpipe/imdb/metrics.py",
        {"imdb_evaluate", "imdb_baseline", "imdb_teach", "imdb_compare", "imdb_register"},
    ),
    (
        "src/rnnpipe/core/hparams.py",
        {
            "imdb_hparams",
            "charlm_hparams",
            "imdb_train",
            "imdb_student",
            "charlm_train",
            "imdb_compare",
            "charlm_compare",
        },
    ),
    ("src/rnnpipe/core/compare.py", {"imdb_compare", "charlm_compare"}),
    # a project's schema: that project's stages, and none of the other project's
    ("src/rnnpipe/charlm/params.py", {n for n in STAGES if n.startswith("charlm_")}),
    ("src/rnnpipe/imdb/params.py", {n for n in STAGES if n.startswith("imdb_")}),
]


@pytest.mark.slow
def test_an_edit_flags_exactly_the_stages_that_read_it(tiny_pipeline, tmp_path):
    repo, env = copy_pipeline(tiny_pipeline, tmp_path / "repo")
    params_file = repo / "params.yaml"
    original = params_file.read_text()
    for key, value, expected in PARAM_EDITS:
        params = yaml.safe_load(original)
        *path, last = key.split(".")
        section = params
        for part in path:
            section = section[part]
        assert section[last] != value, key
        section[last] = value
        params_file.write_text(yaml.safe_dump(params))
        assert changed(repo, env) == expected, key
    params_file.write_text(original)
    for file, expected in MODULE_EDITS:
        source = (repo / file).read_text()
        (repo / file).write_text(source + "\n# edited\n")
        assert changed(repo, env) == expected, file
        (repo / file).write_text(source)
    assert changed(repo, env) == set()


@pytest.mark.slow
def test_a_new_param_or_command_of_one_project_leaves_the_other_alone(tiny_pipeline, tmp_path):
    repo, env = copy_pipeline(tiny_pipeline, tmp_path / "repo")
    # a new charlm key, with its default: the charlm stages alone
    schema = repo / "src/rnnpipe/charlm/params.py"
    source = schema.read_text()
    anchor = "class CharlmEvaluateParams(Section):\n"
    assert anchor in source
    schema.write_text(source.replace(anchor, anchor + "    top_k: int | None = None\n"))
    assert changed(repo, env) == {n for n in STAGES if n.startswith("charlm_")}
    schema.write_text(source)
    # a new command (a module of its name): no stage of either project reruns
    (repo / "src/rnnpipe/imdb/explain.py").write_text(
        '"""`rnnpipe imdb explain`."""\n\nfrom rnnpipe.core.commands import command\n\n\n'
        '@command("imdb", "explain", help="explain a review")\n'
        'def explain(params):\n    print("explained")\n'
    )
    assert changed(repo, env) == set()
    # found by its name alone: no table lists it (the copy's src/ first on the path)
    proc = run(
        [sys.executable, "-m", "rnnpipe", "imdb", "explain"],
        repo,
        {**env, "PYTHONPATH": str(repo / "src")},
    )
    assert proc.stdout.strip() == "explained"
