from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from tests import tinydata, warm_stages

ROOT = Path(__file__).resolve().parents[1]
TINY_PARAMS = ROOT / "tests" / "params_tiny.yaml"
BIN = Path(sys.executable).parent  # the virtualenv's bin/: rnnpipe, dvc, mlflow

# MLflow's usage telemetry sets and unsets a variable in os.environ from a thread of its own,
# which can break another thread iterating os.environ (urllib's proxy lookup: KeyError
# '_MLFLOW_TELEMETRY_SESSION_ID', seen in test_scaleout); the tests send none, nor do the
# processes they start, which inherit this
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

# Coverage of subprocesses (`make test`: coverage's patch = subprocess) costs 2-3 s of CPU in
# every Python process it starts in, most of it while TensorFlow or DVC imports. Only the
# `rnnpipe` processes run the code it measures: dvc, mlflow and moto run without it, and the
# `rnnpipe` they start is this stand-in for the console script, which starts coverage itself.
# The stand-ins hand their commands to a warm runner (tests/warm_stages.py).
COVERAGE_ENV = "COVERAGE_PROCESS_CONFIG"
_COVERAGE = os.environ.get(COVERAGE_ENV)
_SHIM_SOURCE = """#!{python}
import sys
sys.path.insert(0, {root!r})
from tests.warm_stages import {function}
sys.exit({function}())
"""


def _shims() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="rnnpipe-bin-"))
    atexit.register(shutil.rmtree, folder, True)
    for name, function in (("rnnpipe", "stand_in"), ("dvc", "stand_in_dvc")):
        (folder / name).write_text(
            _SHIM_SOURCE.format(python=sys.executable, root=str(ROOT), function=function)
        )
        (folder / name).chmod(0o755)
    return folder


SHIM = _shims()
RNNPIPE = SHIM / "rnnpipe"  # what the tests (and dvc.yaml's stages) run as `rnnpipe`
DVC = SHIM / "dvc"  # the tests' `dvc`: forked from the warm runner (tests/warm_stages.py)
_warm_socket: str | None = None


def warm_socket() -> str | None:
    """The socket of this process's warm stage runner, started on first use; None when
    RNNPIPE_TEST_COLD_STAGES=1."""
    global _warm_socket
    if os.environ.get("RNNPIPE_TEST_COLD_STAGES") == "1":
        return None
    if _warm_socket is None:
        folder = Path(tempfile.mkdtemp(prefix="rnnpipe-warm-"))
        env = {k: v for k, v in os.environ.items() if k != COVERAGE_ENV}
        env.setdefault("KERAS_BACKEND", "tensorflow")
        with open(folder / "server.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.warm_stages", "serve", str(folder / "socket")],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        if proc.stdout.readline().strip() != b"ready":
            proc.kill()
            pytest.fail(
                f"the warm stage runner did not start:\n"
                f"{(folder / 'server.log').read_text()[-3000:]}"
            )

        def stop() -> None:
            proc.kill()
            proc.wait()
            shutil.rmtree(folder, ignore_errors=True)

        atexit.register(stop)
        _warm_socket = str(folder / "socket")
    return _warm_socket


def without_coverage(env: dict[str, str]) -> dict[str, str]:
    """`env` for a process that runs none of rnnpipe's code: coverage stays out of it, but
    passes on to the `rnnpipe` it may start."""
    env = {k: v for k, v in env.items() if k != COVERAGE_ENV}
    if _COVERAGE:
        env[warm_stages.COVERAGE_ENV] = _COVERAGE
    return env


# the longest tests (20-30 s each, `make test`): each starts first among its kind, so that
# the two workers do not end with one of them still running a long test
LONG_TESTS = {
    "test_imdb_hyperband_then_train_with_the_tuned_hyperparameters",
    "test_an_interrupted_search_continues_from_its_finished_trials",
    "test_exp_run_in_workspace_and_temp_logs_into_the_project_store",
    "test_an_edit_flags_exactly_the_stages_that_read_it",
}


def _order(item) -> tuple[int, int]:
    """Where a test goes in the run (pytest-xdist hands them out in this order, when run with
    --no-loadscope-reorder as `make test` does)."""
    group = item.get_closest_marker("xdist_group")
    if group and group.args == ("scaleout",):
        return 1, 0  # the team's stack and its own pipeline, while the tiny pipeline runs
    # then the tests that need nothing, then everything else that reads the tiny pipeline;
    # the long ones and the server groups first in each
    kind = 3 if "tiny_pipeline" in getattr(item, "fixturenames", ()) else 2
    long = item.originalname in LONG_TESTS or group is not None
    return kind, 0 if long else 1


def pytest_collection_modifyitems(items):
    # The first test that reads the tiny pipeline goes first: its worker runs the pipeline
    # (about 90 s) while the other starts the scale-out tests (tests/test_scaleout.py), which
    # run a pipeline of their own against the team's stack.
    first = next((i for i in items if _order(i)[0] == 3), None)
    items.sort(key=lambda i: (0, 0) if i is first else _order(i))


@pytest.fixture(scope="session")
def empty_mlflow_store(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its tables and nothing in them, made once per worker: a new
    store runs MLflow's migrations (2-5 s of CPU), so the tests that need an empty store of
    their own copy this one (`copy_empty_store`). The tiny pipeline makes its own."""
    import mlflow

    db = tmp_path_factory.mktemp("mlflow-empty") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def copy_empty_store(empty_mlflow_store):
    """copy_empty_store(folder): an empty MLflow store at folder/mlflow.db; returns its URI."""

    def copy(folder: Path) -> str:
        shutil.copyfile(empty_mlflow_store, folder / "mlflow.db")
        return f"sqlite:///{folder / 'mlflow.db'}"

    return copy


@pytest.fixture
def tiny_mirror(tmp_path: Path) -> Path:
    """A mirror folder holding a tiny aclImdb archive and a tiny Gutenberg text."""
    mirror = tmp_path / "mirror"
    tinydata.write_imdb_archive(mirror / "aclImdb_v1.tar.gz")
    tinydata.write_gutenberg(mirror / "mysterious_island_1268-0.txt")
    return mirror


def pipeline_env(mirror: Path) -> dict[str, str]:
    env = without_coverage(os.environ)
    env["RNNPIPE_DATA_MIRROR"] = str(mirror)
    env["PATH"] = os.pathsep.join(dict.fromkeys([str(SHIM), str(BIN), env.get("PATH", "")]))
    env.pop("MLFLOW_TRACKING_URI", None)
    env["KERAS_BACKEND"] = env.get("KERAS_BACKEND", "tensorflow")
    return warm(env)


def warm(env: dict[str, str]) -> dict[str, str]:
    """`env` naming this worker's warm runner (when there is one) to the `rnnpipe` commands
    and `warm_stages.python_module` commands it starts."""
    socket = warm_socket()
    if socket:
        env = env | {
            warm_stages.SOCKET_ENV: socket,
            warm_stages.BACKEND_ENV: os.environ.get("KERAS_BACKEND", "tensorflow"),
        }
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
    run([str(DVC), "init", "-q"], repo, env)
    run([str(DVC), "config", "core.analytics", "false"], repo, env)
    return repo, env


def _run_folder(tmp_path_factory) -> Path:
    """The base temporary folder of this test run, seen by every pytest-xdist worker."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> Pipeline:
    """The whole pipeline of both projects, through register, run once per test run by
    `dvc repro` on tiny data. Read it; to change anything, work on `copy_pipeline(...)`.

    Each pytest-xdist worker has a session of its own: the first to need the pipeline runs it,
    holding a file lock; the others wait for the lock and read the same folder."""
    tmp = _run_folder(tmp_path_factory) / "tiny_pipeline"
    trace, log, status = tmp / "params_trace.jsonl", tmp / "repro.log", tmp / "repro.status"
    with FileLock(f"{tmp}.lock"):
        if not tmp.exists():
            tmp.mkdir()
            repo, env = tiny_repo(tmp, {"RNNPIPE_PARAMS_TRACE": str(trace)})
            proc = run([str(DVC), "repro"], repo, env, check=False)
            log.write_text(proc.stdout + proc.stderr)
            status.write_text(str(proc.returncode))
            if os.environ.get("RNNPIPE_TEST_ARTIFACTS"):  # CI uploads the folder (ci.yml)
                folder = Path(os.environ["RNNPIPE_TEST_ARTIFACTS"])
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(log, folder / "tiny_pipeline_repro.log")
    if not status.exists():
        pytest.fail(
            f"setting up the tiny pipeline in {tmp} failed (see the first test that needed it)"
        )
    if status.read_text() != "0":
        pytest.fail(
            f"dvc repro of the tiny pipeline exited {status.read_text()}:\n"
            f"{log.read_text()[-5000:]}"
        )
    return Pipeline(tmp / "repo", pipeline_env(tmp / "mirror"), log.read_text(), trace)


def copy_pipeline(pipeline: Pipeline, dest: Path) -> tuple[Path, dict]:
    """A copy of the pipeline's repo (workspace, DVC cache, git, MLflow store) to change."""
    shutil.copytree(pipeline.repo, dest, symlinks=True)
    return dest, dict(pipeline.env)


def run(
    cmd: list[str], cwd: Path, env: dict[str, str], check: bool = True, timeout: float = 1200
) -> subprocess.CompletedProcess:
    """Run a command, capturing output; on an unexpected exit code, fail showing the output."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout}"
            f"\n--- stderr\n{proc.stderr}"
        )
    return proc
