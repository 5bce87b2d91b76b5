"""Lint the GitHub workflows: schema (check-jsonschema), security (zizmor), actionlint, and our
own rules."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import BIN, ROOT, run

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
SHA_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
UPLOAD = "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02"  # v4.6.2


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
    proc = run(
        [
            tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, WORKFLOWS),
        ],
        ROOT,
        None,
    )
    assert "ok -- validation done" in proc.stdout


def test_the_code_passes_the_lint_jobs_ruff():
    # what the lint job runs (ci.yml, `make lint`): a formatting drift fails here first
    paths = ["src", "tests", "benchmarks"]
    run([tool("ruff"), "check", *paths], ROOT, None)
    run([tool("ruff"), "format", "--check", *paths], ROOT, None)


def test_schema_catches_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: bad\non: [push]\njobs:\n  a:\n    stepz: []\n")
    proc = run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(bad)],
        tmp_path,
        None,
        check=False,
    )
    assert proc.returncode != 0 and "bad.yml" in proc.stdout + proc.stderr


def test_zizmor_no_findings():
    # pedantic: the default findings plus the stricter ones (unnamed jobs, concurrency, ...)
    run(
        [
            tool("zizmor"),
            "--offline",
            "--persona=pedantic",
            "--no-progress",
            str(ROOT / ".github" / "workflows"),
        ],
        ROOT,
        None,
    )


def test_actionlint_no_findings():
    # a Go binary: CI's lint job builds it (ci.yml); here it runs when installed
    found = BIN / "actionlint" if (BIN / "actionlint").exists() else shutil.which("actionlint")
    if not found:
        pytest.skip(
            "actionlint is not installed (CI's lint job runs it: go install "
            "github.com/rhysd/actionlint/cmd/actionlint@v1.7.12)"
        )
    run([str(found), *map(str, WORKFLOWS)], ROOT, None)


def test_zizmor_catches_a_bad_workflow(tmp_path):
    """The check above would fail on findings: an unpinned, credential-keeping checkout."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(
        "name: bad\non: [push]\njobs:\n  a:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - uses: actions/checkout@v4\n"
    )
    proc = run(
        [tool("zizmor"), "--offline", "--no-progress", str(bad.parent)], tmp_path, None, check=False
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "unpinned-uses" in out and "artipacked" in out


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_pinned_read_only_no_credentials(path):
    wf = load(path)
    assert wf["permissions"] == {"contents": "read"}
    for name, job in wf["jobs"].items():  # only the PR report may write: its comment
        allowed = {"contents": "read"} | ({"pull-requests": "write"} if name == "report" else {})
        assert job.get("permissions", allowed) == allowed, name
    for step in steps(wf):
        if "uses" in step:
            assert SHA_PIN.match(step["uses"]), f"{step['uses']}: pin actions by commit SHA"
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


def test_ci_lint_and_test():
    wf = load(ROOT / ".github" / "workflows" / "ci.yml")
    assert set(wf["on"]) == {"push", "pull_request", "workflow_dispatch"}
    assert wf["on"]["push"] == {"branches": ["main"], "tags": ["*"]}
    # no separate smoke job: `make test` runs the whole tiny `dvc repro` already
    assert set(wf["jobs"]) == {"lint", "test", "scaleout", "python", "report"}
    runs = {
        name: " ".join(s.get("run", "") for s in job["steps"]) for name, job in wf["jobs"].items()
    }
    assert "ruff check" in runs["lint"] and "actionlint" in runs["lint"]
    assert "ruff format --check" in runs["lint"]
    assert "make test" in runs["test"]
    setup = [s for s in wf["jobs"]["test"]["steps"] if "setup-python" in s.get("uses", "")]
    assert setup[0]["with"]["python-version"] == "3.11" and setup[0]["with"]["cache"] == "pip"
    for job in wf["jobs"].values():
        assert job["runs-on"] == "ubuntu-latest"


def test_superseded_runs_cancelled_on_branches_not_on_main():
    for name in ("ci.yml", "drift.yml"):
        wf = load(ROOT / ".github" / "workflows" / name)
        assert wf["concurrency"]["group"] == "${{ github.workflow }}-${{ github.ref }}"
        assert wf["concurrency"]["cancel-in-progress"] == "${{ github.ref != 'refs/heads/main' }}"
    assert set(load(ROOT / ".github" / "workflows" / "drift.yml")["on"]) == {
        "schedule",
        "workflow_dispatch",
    }


def test_other_pythons_install_unlocked():
    job = load(ROOT / ".github" / "workflows" / "ci.yml")["jobs"]["python"]
    assert job["strategy"]["matrix"]["python"] == ["3.10", "3.12"]
    runs = " ".join(s.get("run", "") for s in job["steps"])
    assert 'pip install -e ".[dev]"' in runs and '-m "not slow"' in runs


def uploads(job: dict) -> list[dict]:
    return [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]


def test_artifacts_uploaded_always_with_a_retention():
    wf = load(ROOT / ".github" / "workflows" / "ci.yml")
    for name in ("test", "scaleout"):
        (step,) = uploads(wf["jobs"][name])
        assert step["uses"] == UPLOAD and step["if"] == "always()"
        assert 0 < step["with"]["retention-days"] <= 30
    (make_test,) = [s for s in wf["jobs"]["test"]["steps"] if s.get("run") == "make test"]
    opts = make_test["env"]["PYTEST_ADDOPTS"]
    assert "--junitxml=" in opts and "--cov-report=xml:" in opts and "--cov-report=html:" in opts
    assert make_test["env"]["RNNPIPE_TEST_ARTIFACTS"] == "${{ runner.temp }}/artifacts"


def test_failed_gates_step_keeps_only_failed_gates(tmp_path):
    """The step that copies the Data Docs of failed quality gates, run on a fake test folder."""
    job = load(ROOT / ".github" / "workflows" / "ci.yml")["jobs"]["test"]
    (step,) = [s for s in job["steps"] if s.get("name", "").startswith("Data Docs")]
    for test, success in (("popen-gw0/test_bad0", "false"), ("popen-gw1/test_good0", "true")):
        quality = tmp_path / "pytest" / test / "repo" / "reports" / "quality"
        (quality / "docs").mkdir(parents=True)
        (quality / "docs" / "index.html").write_text("<html/>")
        (quality / "imdb_raw.json").write_text(f'{{\n  "success": {success}\n}}')
    subprocess.run(
        ["bash", "-eo", "pipefail", "-c", step["run"]],
        check=True,
        env=os.environ | {"RUNNER_TEMP": str(tmp_path)},
    )
    kept = tmp_path / "artifacts" / "failed-gates"
    assert [p.relative_to(kept).as_posix() for p in sorted(kept.rglob("index.html"))] == [
        "popen-gw0/test_bad0/repo/reports/quality/docs/index.html"
    ]


def test_pr_report_summary_and_comment():
    wf = load(ROOT / ".github" / "workflows" / "ci.yml")
    job = wf["jobs"]["report"]
    assert job["if"] == "github.event_name == 'pull_request'"
    runs = " ".join(s.get("run", "") for s in job["steps"])
    assert "python -m rnnpipe.ci_report --base" in runs and "GITHUB_STEP_SUMMARY" in runs
    (comment,) = [s for s in job["steps"] if s.get("name") == "PR comment"]
    # not on a fork's pull request (read-only token): the summary alone there
    assert comment["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    assert "PATCH" in comment["run"]  # the earlier comment edited, not a new one
    (plots,) = uploads(job)
    assert plots["uses"] == UPLOAD and plots["with"]["retention-days"] > 0


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
    # the labels from a repository variable, [self-hosted, gpu] without it
    assert (
        job["runs-on"] == """${{ fromJSON(vars.GPU_RUNNER_LABELS || '["self-hosted", "gpu"]') }}"""
    )
    runs = " ".join(s.get("run", "") for s in job["steps"])
    assert '".[dev,gpu]"' in runs
    assert "dvc repro" in runs and "pytest" in runs and "dvc push" in runs
    assert "cp params_gpu.yaml params.yaml" in runs and "GITHUB_STEP_SUMMARY" in runs
    # the repro logs to the team's tracking server given by a secret
    (repro,) = [s for s in job["steps"] if "dvc repro" in s.get("run", "")]
    assert repro["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    (upload,) = uploads(job)
    assert upload["uses"] == UPLOAD and upload["if"] == "always()"
    (setup,) = [s for s in job["steps"] if "setup-python" in s.get("uses", "")]
    assert setup["with"]["cache"] == "pip"


def test_ci_entry_point_runs_make_test():
    text = (ROOT / ".ci" / "run").read_text()
    assert "make test" in text
    assert shutil.which("bash") and (ROOT / ".ci" / "run").stat().st_mode & 0o111
