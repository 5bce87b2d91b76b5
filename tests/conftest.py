from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import tinydata

ROOT = Path(__file__).resolve().parents[1]
TINY_PARAMS = ROOT / "tests" / "params_tiny.yaml"
BIN = Path(sys.executable).parent  # the virtualenv's bin/: rnnpipe, dvc, mlflow


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items):
    # with pytest-xdist (--dist loadgroup), the tests of the shared tiny pipeline run on one
    # worker, so its `dvc repro` runs once
    for item in items:
        if "tiny_pipeline" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("tiny_pipeline"))


@pytest.fixture
def tiny_mirror(tmp_path: Path) -> Path:
    """A mirror folder holding a tiny aclImdb archive and a tiny Gutenberg text."""
    mirror = tmp_path / "mirror"
    tinydata.write_imdb_archive(mirror / "aclImdb_v1.tar.gz")
    tinydata.write_gutenberg(mirror / "mysterious_island_1268-0.txt")
    return mirror


def pipeline_env(mirror: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["RNNPIPE_DATA_MIRROR"] = str(mirror)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("MLFLOW_TRACKING_URI", None)
    env["KERAS_BACKEND"] = env.get("KERAS_BACKEND", "tensorflow")
    return env


@dataclass(frozen=True)
class Pipeline:
    repo: Path
    env: dict
    log: str  # what `dvc repro` printed
    trace: Path  # params each stage read (RNNPIPE_PARAMS_TRACE)

    def params_read(self) -> dict[str, set[str]]:
        """stage ("imdb train") -> the params keys it read."""
        out: dict[str, set[str]] = {}
        for line in self.trace.read_text().splitlines():
            row = json.loads(line)
            out.setdefault(row["stage"], set()).update(row["keys"])
        return out


def tiny_repo(tmp: Path, env: dict | None = None) -> tuple[Path, dict]:
    """A project repo in `tmp` (dvc.yaml, src/, the tiny params, git and DVC initialised) and
    a mirror of tiny data beside it; returns (repo, the environment to run it with). `env`
    adds to or overrides that environment."""
    mirror = tmp / "mirror"
    tinydata.write_imdb_archive(mirror / "aclImdb_v1.tar.gz")
    tinydata.write_gutenberg(mirror / "mysterious_island_1268-0.txt")
    repo = tmp / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    shutil.copy(TINY_PARAMS, repo / "params.yaml")
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    env = pipeline_env(mirror) | (env or {})
    run(["git", "init", "-q"], repo, env)
    run(["git", "config", "user.email", "tests@localhost"], repo, env)
    run(["git", "config", "user.name", "tests"], repo, env)
    run([str(BIN / "dvc"), "init", "-q"], repo, env)
    run([str(BIN / "dvc"), "config", "core.analytics", "false"], repo, env)
    return repo, env


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> Pipeline:
    """The whole pipeline of both projects, through register, run once per test run by
    `dvc repro` on tiny data. Read it; to change anything, work on `copy_pipeline(...)`."""
    tmp = tmp_path_factory.mktemp("pipeline")
    trace = tmp / "params_trace.jsonl"
    repo, env = tiny_repo(tmp, {"RNNPIPE_PARAMS_TRACE": str(trace)})
    proc = run([str(BIN / "dvc"), "repro"], repo, env)
    env = {k: v for k, v in env.items() if k != "RNNPIPE_PARAMS_TRACE"}
    return Pipeline(repo, env, proc.stdout + proc.stderr, trace)


def copy_pipeline(pipeline: Pipeline, dest: Path) -> tuple[Path, dict]:
    """A copy of the pipeline's repo (workspace, DVC cache, git, MLflow store) to change."""
    shutil.copytree(pipeline.repo, dest, symlinks=True)
    return dest, dict(pipeline.env)


def run(cmd: list[str], cwd: Path, env: dict[str, str], check: bool = True,
        timeout: float = 1200) -> subprocess.CompletedProcess:
    """Run a command, capturing output; on an unexpected exit code, fail showing the output."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout}"
                    f"\n--- stderr\n{proc.stderr}")
    return proc
