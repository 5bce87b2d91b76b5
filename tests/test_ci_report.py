"""The PR report (rnnpipe.ci_report) from two commits of a tiny git + DVC repo."""

import json

from rnnpipe import ci_report
from tests.conftest import BIN, run

DVC_YAML = """params:
  - params.yaml
metrics:
  - metrics.json
plots:
  - curve.csv:
      x: epoch
      y: loss
  - confusion.csv:
      template: confusion
      x: actual
      y: predicted
  - same.csv:
      x: epoch
      y: loss
"""


def commit(repo, env, params: str, metrics: dict, curve: str, confusion: str) -> None:
    (repo / "params.yaml").write_text(params)
    (repo / "metrics.json").write_text(json.dumps(metrics))
    (repo / "curve.csv").write_text(curve)
    (repo / "confusion.csv").write_text(confusion)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "a commit"], repo, env)


def test_report_of_two_commits(tmp_path):
    repo, env = (
        tmp_path / "repo",
        {
            "PATH": f"{BIN}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@localhost",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@localhost",
        },
    )
    repo.mkdir()
    run(["git", "init", "-q"], repo, env)
    run([str(BIN / "dvc"), "init", "-q"], repo, env)
    (repo / "dvc.yaml").write_text(DVC_YAML)
    (repo / "same.csv").write_text("epoch,loss\n0,1.0\n")
    commit(
        repo,
        env,
        "train:\n  units: 8\n  lr: 0.1\n",
        {"acc": 0.5, "loss": 1.0},
        "epoch,loss\n0,1.0\n1,0.8\n",
        "actual,predicted\n0,0\n1,1\n1,0\n",
    )
    commit(
        repo,
        env,
        "train:\n  units: 16\n  lr: 0.1\n",
        {"acc": 0.75, "loss": 1.0},
        "epoch,loss\n0,1.0\n1,0.6\n2,0.5\n",
        "actual,predicted\n0,0\n1,1\n1,1\n",
    )

    out, plots = tmp_path / "summary.md", tmp_path / "plots"
    assert (
        ci_report.main(
            ["--base", "HEAD~1", "--out", str(out), "--plots-dir", str(plots), "--repo", str(repo)]
        )
        == 0
    )
    md = out.read_text()
    assert md.startswith(ci_report.MARKER)  # the comment CI finds and updates
    # the changed metric and param, with both values; nothing unchanged
    assert "| metrics.json | acc " in md and "0.5" in md and "0.75" in md
    assert "| params.yaml | train.units " in md and "| 8 " in md and "| 16 " in md
    assert "train.lr" not in md and "| loss " not in md
    # the changed plots as PNG, the unchanged one left out
    assert "(`curve.csv`): `curve.csv.png`" in md and "`confusion.csv`" in md
    assert "same.csv" not in md
    assert {p.name for p in plots.iterdir()} == {"curve.csv.png", "confusion.csv.png"}
    assert (plots / "curve.csv.png").read_bytes()[:4] == b"\x89PNG"

    # against itself: nothing changed, and no folder of plots asked for
    ci_report.main(["--base", "HEAD", "--out", str(out), "--repo", str(repo)])
    md = out.read_text()
    assert "No metric changed." in md and "No param changed." in md
    assert "No plot changed." in md
