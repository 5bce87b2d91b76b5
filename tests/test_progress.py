import json
import logging
import shutil
import subprocess

import pytest

from rnnpipe.core import progress


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def test_last_run_reads_minutes_and_the_work_done(tmp_path):
    report = _write(tmp_path / "train.json", {"epochs": 6, "minutes": 4.23})
    assert progress.last_run(report, count="epochs") == f"last run: 6 epochs in 4.2 min ({report})"
    assert progress.last_run(report) == f"last run: 4.2 min ({report})"


def test_last_run_takes_functions_of_the_report(tmp_path):
    report = _write(
        tmp_path / "compare.json", {"a": {"train_minutes": 4.0}, "b": {"train_minutes": 7.7}}
    )
    line = progress.last_run(
        report,
        key=lambda r: sum(x["train_minutes"] for x in r.values()),
        count=lambda r: f"{len(r)} models",
    )
    assert line == f"last run: 2 models in 11.7 min ({report})"


@pytest.mark.parametrize(
    "text", [None, "", "{not json", "[1, 2]", '{"epochs": 3}', '{"minutes": "soon"}']
)
def test_no_usable_report_is_no_earlier_run(tmp_path, text):
    report = tmp_path / "train.json"
    if text is not None:
        report.write_text(text)
    assert progress.last_run(report, count="epochs") == f"no earlier run recorded ({report})"


@pytest.mark.skipif(not shutil.which("git"), reason="needs git")
def test_a_report_dvc_removed_is_read_as_committed(tmp_path):
    def git(*args):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    report = _write(tmp_path / "reports" / "train.json", {"epochs": 2, "minutes": 1.04})
    git("add", ".")
    git("commit", "-qm", "report")
    report.unlink()  # as dvc repro does before it runs the stage
    assert progress.last_run(report, count="epochs") == (
        f"last run: 2 epochs in 1.0 min ({report}, as committed)"
    )
    report.write_text(json.dumps({"epochs": 3, "minutes": 2.0}))  # the workspace's comes first
    assert progress.last_run(report, count="epochs") == f"last run: 3 epochs in 2.0 min ({report})"


def test_announce_logs_one_line(tmp_path, caplog):
    report = _write(tmp_path / "tuning.json", {"trials": 6, "minutes": 13.85})
    with caplog.at_level(logging.INFO, logger="rnnpipe.core.progress"):
        line = progress.announce("imdb tune", "up to 6 trials", report, count="trials")
    assert line == f"imdb tune: up to 6 trials; last run: 6 trials in 13.8 min ({report})"
    assert [r.getMessage() for r in caplog.records] == [line]
    assert progress.announce("x", "y", tmp_path / "none.json").endswith(
        "no earlier run recorded (" + str(tmp_path / "none.json") + ")"
    )
