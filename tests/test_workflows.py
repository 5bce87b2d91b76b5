"""Lint the GitHub workflows: schema (check-jsonschema), security (zizmor), and our own rules."""

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, ROOT, run

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'")
    return str(path)


def load(path: Path) -> dict:
    wf = yaml.safe_load(path.read_text())
    wf["on"] = wf.pop(True, wf.get("on"))  # YAML 1.1 reads the key `on` as True
    return wf


def steps(wf: dict):
    for job in wf["jobs"].values():
        yield from job.get("steps", [])


def test_workflows_exist():
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "gpu.yml"}


def test_schema():
    proc = run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                *map(str, WORKFLOWS)], ROOT, None)
    assert "ok -- validation done" in proc.stdout


def test_schema_catches_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\non: [push]\njobs:\n  a:\n    stepz: []\n")
    proc = run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                str(bad)], tmp_path, None, check=False)
    assert proc.returncode != 0 and "bad.yml" in proc.stdout + proc.stderr


def test_zizmor_no_findings():
    # pedantic: the default findings plus the stricter ones (unnamed jobs, concurrency, ...)
    run([tool("zizmor"), "--offline", "--persona=pedantic", "--no-progress",
         str(ROOT / ".github" / "workflows")], ROOT, None)


def test_zizmor_catches_a_bad_workflow(tmp_path):
    """The check above would fail on findings: an unpinned, credential-keeping checkout."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text("name: bad\non: [push]\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
                   "    steps:\n      - uses: actions/checkout@v4\n")
    proc = run([tool("zizmor"), "--offline", "--no-progress", str(bad.parent)], tmp_path, None,
               check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "unpinned-uses" in out and "artipacked" in out


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_pinned_read_only_no_credentials(path):
    wf = load(path)
    assert wf["permissions"] == {"contents": "read"}
    for step in steps(wf):
        if "uses" in step:
            assert SHA_PIN.match(step["uses"]), f"{step['uses']}: pin actions by commit SHA"
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


def test_ci_lint_and_test():
    wf = load(ROOT / ".github" / "workflows" / "ci.yml")
    assert set(wf["on"]) == {"push", "pull_request"}
    # no separate smoke job: `make test` runs the whole tiny `dvc repro` already
    assert set(wf["jobs"]) == {"lint", "test", "scaleout"}
    runs = {name: " ".join(s.get("run", "") for s in job["steps"])
            for name, job in wf["jobs"].items()}
    assert "ruff check" in runs["lint"]
    assert "make test" in runs["test"]
    setup = [s for s in wf["jobs"]["test"]["steps"] if "setup-python" in s.get("uses", "")]
    assert setup[0]["with"]["python-version"] == "3.11" and setup[0]["with"]["cache"] == "pip"
    for job in wf["jobs"].values():
        assert job["runs-on"] == "ubuntu-latest"


def test_scaleout_job_runs_against_a_postgres_service():
    wf = load(ROOT / ".github" / "workflows" / "ci.yml")
    job = wf["jobs"]["scaleout"]
    # the image pinned by digest, like the actions by commit SHA
    image = job["services"]["postgres"]["image"]
    assert re.fullmatch(r"postgres:[\w.-]+@sha256:[0-9a-f]{64}", image), image
    assert job["env"]["RNNPIPE_TEST_POSTGRES_URI"].startswith("postgresql://")
    runs = " ".join(s.get("run", "") for s in job["steps"])
    assert "pytest -m scaleout" in runs
    # the test job leaves them to this one
    (make_test,) = [s for s in wf["jobs"]["test"]["steps"] if s.get("run") == "make test"]
    assert make_test["env"]["PYTEST_ADDOPTS"].startswith('-m "not scaleout"')


def test_gpu_job_manual_only_on_self_hosted_gpu():
    wf = load(ROOT / ".github" / "workflows" / "gpu.yml")
    assert set(wf["on"]) == {"workflow_dispatch"}
    (job,) = wf["jobs"].values()
    assert job["runs-on"] == ["self-hosted", "gpu"]
    runs = " ".join(s.get("run", "") for s in job["steps"])
    assert '".[dev,gpu]"' in runs
    assert "dvc repro" in runs and "pytest" in runs
    # the repro logs to the team's tracking server given by a secret
    (repro,) = [s for s in job["steps"] if "dvc repro" in s.get("run", "")]
    assert repro["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"


def test_ci_entry_point_runs_make_test():
    text = (ROOT / ".ci" / "run").read_text()
    assert "make test" in text
    assert shutil.which("bash") and (ROOT / ".ci" / "run").stat().st_mode & 0o111
