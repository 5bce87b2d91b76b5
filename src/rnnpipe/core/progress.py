"""The first line of a long stage: the work ahead, and how long its last run took.

    imdb train: up to 10 epochs of 313 batches (batch 64, 20,000 reviews); last run: 6 epochs
    in 4.2 min (reports/imdb/train.json)

The last run is read from the stage's own report before the stage writes a new one. `dvc
repro` deletes a stage's outputs before it runs the stage, so a report missing from the
workspace is read as committed (git HEAD) instead.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

NONE = "no earlier run recorded"


def _committed(path: Path) -> str | None:
    try:
        proc = subprocess.run(
            ["git", "show", f"HEAD:./{path.name}"],
            cwd=path.parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):  # no git, no such folder
        return None
    return proc.stdout if proc.returncode == 0 else None


def last_run(
    report: Path, key: str | Callable = "minutes", count: str | Callable | None = None
) -> str:
    """'last run: 6 epochs in 4.2 min (<report>)', or 'no earlier run recorded (<report>)'.

    `key` names the report's minutes; `count`, if given, the key of the work done, shown as
    '<value> <key>'. Either may instead be a function of the report (`count`'s returns the
    words, such as '2 models')."""
    path, where = Path(report), str(report)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        text, where = _committed(path), f"{report}, as committed"
    try:
        r = json.loads(text)
        minutes = float(key(r) if callable(key) else r[key])
        done = "" if count is None else (count(r) if callable(count) else f"{r[count]} {count}")
    except (TypeError, ValueError, KeyError, AttributeError):  # none, not JSON, not the keys
        return f"{NONE} ({report})"
    return f"last run: {done + ' in ' if done else ''}{minutes:.1f} min ({where})"


def announce(
    stage: str,
    work: str,
    report: Path,
    key: str | Callable = "minutes",
    count: str | Callable | None = None,
) -> str:
    """Log (and return) '<stage>: <work>; <last_run(report, key, count)>'."""
    line = f"{stage}: {work}; {last_run(report, key, count)}"
    log.info("%s", line)
    return line
