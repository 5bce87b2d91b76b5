"""`rnnpipe <project> <command>`: the one entry point."""

import json
import subprocess
import sys

import pytest

from rnnpipe import cli
from rnnpipe.core.commands import PROJECTS
from tests.conftest import BIN, ROOT, run


def test_help_lists_projects_and_their_commands(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps long lines
    for project in PROJECTS:
        # read from the source (tests/test_cli_edges.py: the same as importing them registers)
        listed = cli.listing(project)
        assert {"download", "ingest", "train", "serve"} <= set(listed)
        assert f"{project} commands: {', '.join(sorted(listed))}" in out
        # a command is the module of its name, and that module registers it
        for name in listed:
            assert (ROOT / "src" / "rnnpipe" / project / f"{name}.py").is_file()


@pytest.mark.parametrize("project", PROJECTS)
def test_project_help_lists_its_commands(capsys, project):
    with pytest.raises(SystemExit) as e:
        cli.main([project, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert len(cli.listing(project)) >= 13
    for name, text in cli.listing(project).items():
        assert name in out
        assert " ".join(text.split())[:30] in " ".join(out.split())


@pytest.mark.slow  # a process of its own
def test_installed_entry_point_help():
    # one command's help imports that command's module alone (the whole listing imports
    # TensorFlow: test_help_lists_projects_and_their_commands reads it in-process)
    proc = run([str(BIN / "rnnpipe"), "charlm", "download", "--help"], cwd=BIN, env=None)
    assert proc.stdout.startswith("usage: rnnpipe charlm download")
    assert "official URL" in proc.stdout


IMPORTED = """
import json, sys
from rnnpipe import cli
from rnnpipe.core.commands import COMMANDS
cli.build_parser(sys.argv[1:])
print(json.dumps({"modules": sorted(m for m in sys.modules if m.startswith("rnnpipe")),
                  "commands": {p: sorted(c) for p, c in COMMANDS.items()},
                  "heavy": sorted(m for m in ("tensorflow", "keras", "mlflow",
                                              "great_expectations") if m in sys.modules)}))
"""


def imported_by(*argv: str) -> dict:
    """What a fresh interpreter has imported after building the parser for `argv`."""
    proc = subprocess.run(
        [sys.executable, "-c", IMPORTED, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout.splitlines()[-1])


def test_a_command_imports_its_own_module_alone():
    got = imported_by("imdb", "ingest", "archive.tar.gz", "out.parquet")
    package = {m for m in got["modules"] if m.startswith(("rnnpipe.imdb.", "rnnpipe.charlm."))}
    assert package == {"rnnpipe.imdb.ingest"}
    assert got["commands"] == {"imdb": ["ingest"], "charlm": []}
    assert got["heavy"] == []  # no TensorFlow, MLflow or GX to read an archive

    got = imported_by("charlm", "download", "out.txt", "record.json")
    assert "rnnpipe.core.fetch" in got["modules"]
    package = {m for m in got["modules"] if m.startswith(("rnnpipe.imdb.", "rnnpipe.charlm."))}
    assert package == {"rnnpipe.charlm.download"}
    # download is one function registered for every project
    assert got["commands"] == {p: ["download"] for p in PROJECTS}


def test_a_listing_imports_no_command_module():
    # help and a bad name read the commands from the source (tests/test_cli_edges.py)
    for argv in (["--help"], ["imdb", "--help"], ["imdb", "nosuchcommand"], ["nosuchproject"]):
        got = imported_by(*argv)
        assert not {
            m for m in got["modules"] if m.startswith(("rnnpipe.imdb.", "rnnpipe.charlm."))
        }, argv
        assert got["commands"] == {p: [] for p in PROJECTS}
        assert got["heavy"] == []
    for project in PROJECTS:
        names = {f.stem for f in (ROOT / "src" / "rnnpipe" / project).glob("[!_]*.py")}
        assert set(cli.listing(project)) <= names
        assert {"download", "check_raw", "vocab", "hparams", "serve"} <= set(cli.listing(project))


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["imdb"],
        ["nosuchproject", "ingest"],
        ["imdb", "nosuchcommand"],
        ["imdb", "ingest"],
        ["charlm", "check_raw", "corpus.txt", "report.json"],
    ],
)
def test_bad_usage_exits_non_zero(capsys, argv):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert "usage: rnnpipe" in capsys.readouterr().err


def test_pipeline_error_is_one_line_and_exit_1(tmp_path, capsys):
    rc = cli.main(
        [
            "--params",
            str(tmp_path / "missing.yaml"),
            "charlm",
            "ingest",
            str(tmp_path / "in.txt"),
            str(tmp_path / "out.txt"),
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("rnnpipe charlm ingest: error: params file not found")
    assert "Traceback" not in err
