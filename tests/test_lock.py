"""requirements.lock: the dependency set `make setup` installs (the main dependencies and the dev
and team extras, for CPython 3.11 on Linux x86_64, every file hash-checked), how the Makefile
and the workflows use it, and the MLflow tag that records it.

`python -m tests.test_lock` compares the running venv with the lock: it prints each package
that is missing, extra or at another version, and exits 1 when there is any (after a fresh
`make setup` there is none; the drift workflow prints what moved past the lock).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
WORKFLOWS = ROOT / ".github" / "workflows"
PIN = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)(?:\s+--hash=sha256:[0-9a-f]{64})*"
    r"\s*\\?$"
)
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")
# pip's own version is the installer's (`make setup` upgrades it), not part of the lock
INSTALLER = {"pip"}
# the lock's target: what pyproject.toml's markers are evaluated against
TARGET = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


def lock_entries(text: str) -> dict[str, tuple[str, list[str]]]:
    """name (canonical) -> (version, sha256 hashes) of each requirement in a hashed
    requirements file such as `uv pip compile --generate-hashes` writes. Anything else that is
    not a comment (an unpinned requirement, a URL, an option, a marker) is an error."""
    entries: dict[str, tuple[str, list[str]]] = {}
    name = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0].isspace():  # a continuation: the hashes of the requirement above
            if name is None or not HASH.search(stripped):
                raise ValueError(f"line {number}: not a hash of a requirement: {stripped}")
            entries[name][1].extend(HASH.findall(stripped))
            continue
        match = PIN.match(stripped)
        if not match:
            raise ValueError(f"line {number}: not a pin name==version: {stripped}")
        name = canonicalize_name(match[1])
        if name in entries:
            raise ValueError(f"line {number}: {name} is pinned twice")
        entries[name] = (match[2], HASH.findall(stripped))
    return entries


def lock_pins(text: str) -> dict[str, str]:
    return {name: version for name, (version, _) in lock_entries(text).items()}


def freeze_pins(text: str) -> dict[str, str]:
    """name (canonical) -> version of `pip freeze --all --exclude-editable` output, without pip
    itself (--all: on Python < 3.12 plain `pip freeze` hides setuptools and wheel, which the
    lock holds)."""
    pins = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-e ")):
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise ValueError(f"not installed from a pinned release: {line}")
        if canonicalize_name(name) not in INSTALLER:
            pins[canonicalize_name(name)] = version
    return pins


def differences(
    locked: dict[str, str], installed: dict[str, str], extras: bool = True
) -> list[str]:
    """What differs between the lock and a venv, one line per package (`extras`: count
    packages the lock lacks too)."""
    out = []
    for name in sorted(locked.keys() | installed.keys()):
        want, have = locked.get(name), installed.get(name)
        if want == have or (want is None and not extras):
            continue
        if have is None:
            out.append(f"{name}: locked {want}, not installed")
        elif want is None:
            out.append(f"{name}: installed {have}, not in the lock")
        else:
            out.append(f"{name}: locked {want}, installed {have}")
    return out


def installed_pins(python: str = sys.executable) -> dict[str, str]:
    proc = subprocess.run(
        [python, "-m", "pip", "freeze", "--all", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return freeze_pins(proc.stdout)


def direct_requirements() -> list[Requirement]:
    """pyproject.toml's dependencies, its dev and team extras (not gpu: left unlocked) and its
    build requirements (`make setup` builds the project without isolation, with the locked
    setuptools), for the lock's target; not the extras' reference to rnnpipe itself."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    reqs = [
        Requirement(r)
        for r in (
            *project["project"]["dependencies"],
            *extras["dev"],
            *extras["team"],
            *project["build-system"]["requires"],
        )
    ]
    return [
        r
        for r in reqs
        if canonicalize_name(r.name) != "rnnpipe"
        and (r.marker is None or r.marker.evaluate({**TARGET, "extra": ""}))
    ]


def makefile_rule(target: str) -> tuple[str, list[str]]:
    """The prerequisites and the recipe lines of `target` in the Makefile."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"{target}:"):
            recipe = []
            for cont in lines[i + 1 :]:
                if not cont.startswith("\t"):
                    break
                recipe.append(cont.strip())
            return line.split(":", 1)[1], recipe
    raise AssertionError(f"no rule for {target} in the Makefile")


def workflow_runs(name: str) -> str:
    wf = yaml.safe_load((WORKFLOWS / name).read_text())
    return "\n".join(s.get("run", "") for job in wf["jobs"].values() for s in job.get("steps", []))


# ---- the parsing and comparison logic, on small texts ----

SAMPLE_LOCK = """\
# This file was autogenerated by uv via the following command:
#    make lock
numpy==2.3.4 \\
    --hash=sha256:{a} \\
    --hash=sha256:{b}
    # via rnnpipe (pyproject.toml)
ruamel-yaml==0.19.1 \\
    --hash=sha256:{a}
    # via dvc
setuptools==84.2.1 --hash=sha256:{b}
""".format(a="a" * 64, b="b" * 64)


def test_lock_entries_reads_pins_and_their_hashes():
    entries = lock_entries(SAMPLE_LOCK)
    assert entries == {
        "numpy": ("2.3.4", ["a" * 64, "b" * 64]),
        "ruamel-yaml": ("0.19.1", ["a" * 64]),
        "setuptools": ("84.2.1", ["b" * 64]),
    }


@pytest.mark.parametrize(
    "bad",
    [
        "numpy>=2 \\\n    --hash=sha256:" + "a" * 64,
        "-e .",
        "rnnpipe @ file:///work",
        "numpy==2.3.4\nnumpy==2.3.5",
        "    --hash=sha256:" + "a" * 64,
    ],
)
def test_lock_entries_refuses_what_is_not_a_pin(bad):
    with pytest.raises(ValueError):
        lock_entries(bad)


def test_freeze_equals_the_lock_whatever_the_spelling():
    freeze = """\
numpy==2.3.4
pip==26.3
ruamel.yaml==0.19.1
setuptools==84.2.1
# Editable Git install with no remote (rnnpipe==0.1.0)
-e /work/main
"""
    assert freeze_pins(freeze) == lock_pins(SAMPLE_LOCK)
    assert differences(lock_pins(SAMPLE_LOCK), freeze_pins(freeze)) == []


def test_differences_names_what_is_missing_extra_or_moved():
    locked = lock_pins(SAMPLE_LOCK)
    installed = {"numpy": "2.4.0", "ruamel-yaml": "0.19.1", "uv": "0.13.9"}
    assert differences(locked, installed) == [
        "numpy: locked 2.3.4, installed 2.4.0",
        "setuptools: locked 84.2.1, not installed",
        "uv: installed 0.13.9, not in the lock",
    ]
    assert differences(locked, installed, extras=False) == [
        "numpy: locked 2.3.4, installed 2.4.0",
        "setuptools: locked 84.2.1, not installed",
    ]


def test_freeze_refuses_a_package_not_from_a_release():
    with pytest.raises(ValueError, match="pinned release"):
        freeze_pins("numpy @ file:///tmp/numpy-2.3.4-cp311-linux_x86_64.whl\n")


# ---- the lock itself ----


def test_every_pin_has_hashes():
    entries = lock_entries(LOCK.read_text())
    assert len(entries) > 100
    assert not [name for name, (_, hashes) in entries.items() if not hashes]


def test_the_lock_holds_no_self_reference_nor_the_gpu_extra():
    names = lock_pins(LOCK.read_text())
    assert "rnnpipe" not in names  # `rnnpipe[team]` in the dev extra is the team extra
    assert not [n for n in names if n.startswith("nvidia-")]  # tensorflow[and-cuda]: gpu only


def test_pyproject_admits_every_locked_direct_dependency():
    locked = lock_pins(LOCK.read_text())
    for req in direct_requirements():
        name = canonicalize_name(req.name)
        assert name in locked, f"{req} (pyproject.toml) is not in requirements.lock: make lock"
        assert req.specifier.contains(Version(locked[name]), prereleases=True), (
            f"requirements.lock pins {name}=={locked[name]}, outside {req} (pyproject.toml): "
            "make lock"
        )
        for extra in req.extras:  # e.g. moto[s3]: the extra's packages are locked too
            deps = (Requirement(r) for r in _metadata_requires(name, locked[name]))
            for dep in deps:
                if (
                    dep.marker
                    and dep.marker.evaluate({**TARGET, "extra": extra})
                    and not dep.marker.evaluate({**TARGET, "extra": ""})
                ):
                    assert canonicalize_name(dep.name) in locked, f"{req}: {dep} not locked"


def _metadata_requires(name: str, version: str) -> list[str]:
    """Requires-Dist of the installed distribution `name`, when it is installed at `version`
    (else nothing to check against: the live test below reports the venv)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return []
    return dist.requires or [] if dist.version == version else []


def test_the_lock_is_for_cpython_311_on_linux_x86_64():
    header = LOCK.read_text().split("\n", 3)[:2]
    assert header[1].strip("# ") == "make lock", "write the lock with `make lock`"
    _, recipe = makefile_rule("lock")
    compile_line = " ".join(recipe)
    for flag in (
        "uv pip compile",
        "pyproject.toml",
        "--extra dev",
        "--extra team",
        "--generate-hashes",
        "--python-version 3.11",
        "--python-platform",
        '--custom-compile-command "make lock"',
        "-o $(LOCK)",
    ):
        assert flag in compile_line, flag
    assert "--extra gpu" not in compile_line
    assert "pip install --quiet uv" in compile_line  # uv into the venv when missing


# ---- who installs from it ----


def test_make_setup_installs_the_lock_and_the_project_without_its_dependencies():
    prerequisites, recipe = makefile_rule("$(VENV)/.installed")
    assert set(prerequisites.split()) >= {"$(LOCK)", "pyproject.toml"}  # rebuilt on a change
    assert "LOCK := requirements.lock" in (ROOT / "Makefile").read_text()
    installs = [
        line
        for line in recipe
        if line.startswith("$(BIN)/python -m pip install") and "--upgrade pip" not in line
    ]
    assert installs == [
        "$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)",
        "$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .",
    ]
    assert recipe[-1] == "touch $@"
    for target in ("setup", "run", "test", "test-fast"):
        assert "$(VENV)/.installed" in makefile_rule(target)[0]


def test_ci_runs_make_test_which_installs_the_lock():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    runs = workflow_runs("ci.yml")
    assert "make test" in runs and "make setup" in runs
    # the lint job's ruff: the locked release, hash-checked
    assert "requirements.lock" in runs and "--require-hashes" in runs
    ci = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    # unlocked only where the lock cannot serve: the other Pythons' job
    for name, job in ci["jobs"].items():
        job_runs = "\n".join(s.get("run", "") for s in job.get("steps", []))
        assert ("pip install -e" in job_runs) == (name == "python"), name
    for job in ("test", "scaleout"):
        (setup,) = [s for s in ci["jobs"][job]["steps"] if "setup-python" in s.get("uses", "")]
        assert setup["with"]["cache-dependency-path"] == "requirements.lock"


def test_gpu_workflow_adds_the_gpu_extra_on_top_of_the_lock():
    runs = workflow_runs("gpu.yml")
    assert runs.index("make setup") < runs.index('-e ".[dev,gpu]"')


def test_drift_workflow_installs_the_newest_versions_weekly():
    wf = yaml.safe_load((WORKFLOWS / "drift.yml").read_text())
    on = wf.pop(True, wf.get("on"))
    assert set(on) == {"schedule", "workflow_dispatch"}
    assert len(on["schedule"]) == 1 and len(on["schedule"][0]["cron"].split()) == 5
    assert on["schedule"][0]["cron"].split()[4] != "*"  # once a week
    runs = workflow_runs("drift.yml")
    assert 'pip install --upgrade -e ".[dev]"' in runs
    assert "--require-hashes" not in runs and "make " not in runs  # not the lock
    assert 'python -m pytest -m "not slow" -n 2' in runs


# ---- the venv this runs in ----


def test_this_venv_holds_the_locked_versions():
    """After `make setup` (its stamp newer than the lock): every locked package at its locked
    version. Other packages a developer added (uv by `make lock`, say) are allowed here;
    `python -m tests.test_lock` also reports them."""
    stamp = Path(sys.prefix) / ".installed"
    if not stamp.exists():
        pytest.skip("this venv was not set up by `make setup`")
    if stamp.stat().st_mtime < LOCK.stat().st_mtime:
        pytest.skip("requirements.lock changed since this venv was set up: make setup")
    diff = differences(lock_pins(LOCK.read_text()), installed_pins(), extras=False)
    assert not diff, "this venv differs from requirements.lock (make setup):\n" + "\n".join(diff)


# ---- the MLflow tag ----


def test_lock_sha256_is_the_lock_files_hash_or_none(tmp_path, monkeypatch):
    from rnnpipe.core import tracking

    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking.lock_sha256() == "none"
    (tmp_path / "requirements.lock").write_bytes(b"numpy==2.3.4\n")
    assert tracking.lock_sha256() == hashlib.sha256(b"numpy==2.3.4\n").hexdigest()


def test_the_train_run_is_tagged_with_the_lock(tmp_path, monkeypatch, copy_empty_store):
    import mlflow

    from rnnpipe.core import tracking

    copy_empty_store(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    (tmp_path / "requirements.lock").write_text(SAMPLE_LOCK)
    try:
        with tracking.train_run("imdb", "imdb_train", "imdb-train") as run:
            pass
        client = mlflow.MlflowClient()
        tags = client.get_run(run.info.run_id).data.tags
        assert tags[tracking.LOCK_TAG] == hashlib.sha256(SAMPLE_LOCK.encode()).hexdigest()
        # a resumed training: the lock it resumed with
        (tmp_path / "requirements.lock").unlink()
        with tracking.train_run("imdb", "imdb_train", "x", resume_id=run.info.run_id):
            pass
        assert client.get_run(run.info.run_id).data.tags[tracking.LOCK_TAG] == "none"
    finally:
        mlflow.end_run()


def main() -> int:
    diff = differences(lock_pins(LOCK.read_text()), installed_pins())
    print("\n".join(diff) if diff else f"this venv ({sys.prefix}) holds exactly {LOCK.name}")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main())
