"""`rnnpipe <project> <command>`: the one entry point."""

import pytest

from rnnpipe import cli
from rnnpipe.stages import COMMANDS, PROJECTS
from tests.conftest import BIN, run


def test_help_lists_projects_and_their_commands(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps long lines
    for project in PROJECTS:
        assert {"download", "ingest"} <= set(COMMANDS[project])
        assert f"{project} commands: {', '.join(COMMANDS[project])}" in out


@pytest.mark.parametrize("project", PROJECTS)
def test_project_help_lists_download_and_ingest(capsys, project):
    with pytest.raises(SystemExit) as e:
        cli.main([project, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "download" in out and "ingest" in out


def test_installed_entry_point_help():
    proc = run([str(BIN / "rnnpipe"), "--help"], cwd=BIN, env=None)
    assert "imdb" in proc.stdout and "charlm" in proc.stdout
    assert "download" in proc.stdout and "ingest" in proc.stdout


@pytest.mark.parametrize("argv", [[], ["imdb"], ["nosuchproject", "ingest"],
                                  ["imdb", "nosuchcommand"], ["imdb", "ingest"]])
def test_bad_usage_exits_non_zero(capsys, argv):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert "usage: rnnpipe" in capsys.readouterr().err


def test_pipeline_error_is_one_line_and_exit_1(tmp_path, capsys):
    rc = cli.main(["--params", str(tmp_path / "missing.yaml"), "charlm", "ingest",
                   str(tmp_path / "in.txt"), str(tmp_path / "out.txt")])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("rnnpipe charlm ingest: error: params file not found")
    assert "Traceback" not in err
