"""predict: score reviews offline with the served model, as the server would: with the model's
own code, in a fresh interpreter (rnnpipe.core.local_model)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from rnnpipe.core import local_model
from rnnpipe.core.commands import arg, command
from rnnpipe.core.errors import UsageError
from rnnpipe.core.params import Params


def read_reviews(file: Path) -> list[str]:
    """The reviews of a CSV's `text` column, or of a text file's non-blank lines. Checked
    here, before the model loads: a bad file is a usage error (exit 2)."""
    try:
        with open(file, encoding="utf-8-sig", newline="") as f:
            if file.suffix != ".csv":
                return [line for line in f.read().splitlines() if line.strip()]
            reader = csv.DictReader(f, strict=True)
            if "text" not in (reader.fieldnames or []):
                found = ", ".join(map(repr, reader.fieldnames or [])) or "none"
                raise UsageError(f"{file} has no `text` column (columns: {found})")
            # the line each record ends on (the header is line 1; blank lines are skipped)
            rows = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        # line_num counts the lines of the records read whole: the bad one starts after them
        where = f" (line {reader.line_num + 1})" if isinstance(e, csv.Error) else ""
        raise UsageError(f"cannot read {file}{where}: {e}") from None
    # a row with more cells than the header has them under the key None
    if bad := [line for line, row in rows if None in row]:
        raise UsageError(f"{file}: more cells than columns on lines {_listed(bad)}")
    if empty := [line for line, row in rows if not (row["text"] or "").strip()]:
        raise UsageError(f"{file}: empty `text` on lines {_listed(empty)} (the header is line 1)")
    return [row["text"] for _, row in rows]


def _listed(lines: list[int], most: int = 10) -> str:
    return ", ".join(map(str, lines[:most])) + (
        f" and {len(lines) - most} more" if len(lines) > most else ""
    )


@command(
    "imdb",
    "predict",
    arg("texts", nargs="*", metavar="TEXT", help="reviews to score"),
    arg(
        "--file",
        type=Path,
        default=None,
        help="a CSV with a `text` column, or a text file of one review per line",
    ),
    arg(
        "--model-uri",
        default=None,
        help="an MLflow model URI or model directory (default: the champion, "
        "models:/<imdb.promote.model_name>@champion, else models/imdb/pyfunc)",
    ),
    help="positive probability and label of each review (JSON lines), as the server gives",
)
def predict(params: Params, texts: list[str], file: Path | None, model_uri: str | None) -> None:
    texts = list(texts) + (read_reviews(file) if file is not None else [])
    if not texts:
        raise UsageError("no reviews: give them as arguments or with --file")
    # one column "text", as the server builds from {"inputs": [...]}
    records = [{"text": t} for t in texts]
    for a in local_model.answers("imdb", params.imdb.promote.model_name, model_uri, records):
        print(json.dumps(a, ensure_ascii=False))
