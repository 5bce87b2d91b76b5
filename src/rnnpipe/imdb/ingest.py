"""ingest: the Large Movie Review Dataset, read straight from its tar.gz into one table, with a
validation split carved out of train by movie.

Members are read from the archive stream, never extracted to disk, and every member is checked
first: an absolute path, a `..` component, a link or a device stops the stage.

Each review's movie comes from the archive's `urls_<folder>.txt` (line i is the IMDb page of
review i). IMDb has up to 30 reviews per movie, and the test set shares 1 of its 3,581 movies
with train, so the validation split takes whole movies too: a random split would score the
model on movies it trained on.
"""

from __future__ import annotations

import gzip
import logging
import re
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from rnnpipe.core.atomic import atomic_path
from rnnpipe.core.commands import arg, command
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import Params

log = logging.getLogger(__name__)

# The one place that says which folder is which label.
LABELS = {"neg": 0, "pos": 1}
UNLABELLED = -1  # label of train/unsup reviews (their rating is 0)
COLUMNS = ["split", "id", "rating", "label", "movie", "text"]
FILE_NAME = re.compile(r"^(\d+)_(\d+)\.txt$")
URLS_NAME = re.compile(r"^urls_(\w+)\.txt$")
MOVIE = re.compile(r"/title/(tt\d+)")


def check_member(member: tarfile.TarInfo) -> None:
    """Refuse anything that could escape an extraction folder or is not a plain file/folder."""
    path = PurePosixPath(member.name)
    if path.is_absolute() or member.name.startswith(("/", "\\")):
        raise PipelineError(f"unsafe archive member {member.name!r}: absolute path")
    if ".." in path.parts:
        raise PipelineError(f"unsafe archive member {member.name!r}: '..' in its path")
    if member.issym() or member.islnk():
        raise PipelineError(f"unsafe archive member {member.name!r}: links are not allowed")
    if not (member.isfile() or member.isdir()):
        raise PipelineError(f"unsafe archive member {member.name!r}: not a regular file or folder")


def _wanted_folders(include_unsup: bool) -> list[tuple[str, str]]:
    folders = [(split, name) for split in ("train", "test") for name in LABELS]
    if include_unsup:
        folders.append(("train", "unsup"))
    return folders


def movie_ids(urls: str) -> list[str]:
    """The IMDb title id (tt...) of each line of a urls_<folder>.txt; "" where none."""
    return [(m.group(1) if (m := MOVIE.search(line)) else "") for line in urls.splitlines()]


def read_reviews(archive: Path, include_unsup: bool = False, movies: bool = True) -> pd.DataFrame:
    """All reviews of the archive as rows of split, id, rating, label, movie, text.

    `split` is "train", "test" or "unsup" here; `split_valid` carves "valid" out of train.
    `movie` is the review's IMDb title id from urls_<folder>.txt; with movies=False it is
    left empty and those files are not needed.
    """
    wanted = set(_wanted_folders(include_unsup))
    seen: dict[tuple[str, str], int] = {folder: 0 for folder in wanted}
    urls: dict[tuple[str, str], list[str]] = {}
    rows = []
    try:
        # gzip.open, not tarfile's "r|gz": it checks the end-of-stream marker and the CRC,
        # so a truncated download is an error, not an archive that silently ends early
        with gzip.open(archive, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            for member in tar:
                check_member(member)
                parts = PurePosixPath(member.name).parts
                if len(parts) == 3 and member.isfile() and (m := URLS_NAME.match(parts[2])):
                    if (parts[1], m.group(1)) in wanted:
                        raw = tar.extractfile(member).read()
                        urls[(parts[1], m.group(1))] = movie_ids(raw.decode("utf-8", "replace"))
                    continue
                # aclImdb/<split>/<folder>/<file>
                if len(parts) != 4 or (parts[1], parts[2]) not in wanted or not member.isfile():
                    continue
                _, split, folder, name = parts
                m = FILE_NAME.match(name)
                if not m:
                    raise PipelineError(f"{member.name}: file name is not <id>_<rating>.txt")
                raw = tar.extractfile(member).read()
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    bad = raw[e.start : e.start + 1]
                    raise PipelineError(
                        f"{member.name}: not valid UTF-8 (byte {e.start}: {bad!r})"
                    ) from None
                seen[(split, folder)] += 1
                rows.append(
                    (
                        "unsup" if folder == "unsup" else split,
                        int(m.group(1)),
                        int(m.group(2)),
                        LABELS.get(folder, UNLABELLED),
                        (split, folder),
                        text,
                    )
                )
            while gz.read(1 << 20):  # read on to the gzip trailer: a cut-off end is an error
                pass
    except FileNotFoundError:
        raise PipelineError(f"{archive}: no such file") from None
    # gzip.BadGzipFile is an OSError
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise PipelineError(f"{archive}: truncated or corrupt archive ({e})") from None
    missing = [f"aclImdb/{s}/{f}" for (s, f), n in sorted(seen.items()) if n == 0]
    if missing:
        raise PipelineError(f"{archive}: missing or empty folder(s): {', '.join(missing)}")
    if movies:
        rows = [(*r[:4], _movie(urls, r[4], r[1], archive), r[5]) for r in rows]
    else:
        rows = [(*r[:4], "", r[5]) for r in rows]
    df = pd.DataFrame(rows, columns=COLUMNS)
    df = df.astype(
        {
            "split": "string",
            "id": "int64",
            "rating": "int8",
            "label": "int8",
            "movie": "string",
            "text": "string",
        }
    )
    return df.sort_values(["split", "label", "id"], kind="stable").reset_index(drop=True)


def _movie(urls: dict, folder: tuple[str, str], review_id: int, archive: Path) -> str:
    split, name = folder
    if folder not in urls:
        raise PipelineError(
            f"{archive}: no aclImdb/{split}/urls_{name}.txt, which gives each review's movie "
            "for the validation split grouped by movie; set imdb.ingest.group_by_movie: false "
            "to split reviews at random instead (worse: valid then shares movies with train)"
        )
    ids = urls[folder]
    if review_id >= len(ids) or not ids[review_id]:
        raise PipelineError(
            f"{archive}: aclImdb/{split}/urls_{name}.txt has no movie for "
            f"review {review_id} ({len(ids)} lines)"
        )
    return ids[review_id]


def split_valid(
    df: pd.DataFrame, valid_fraction: float, seed: int, group_by_movie: bool = True
) -> pd.DataFrame:
    """Move a seeded, label-stratified `valid_fraction` of train into a "valid" split: whole
    movies (one fold of round(1 / valid_fraction) grouped folds), or single reviews when
    group_by_movie is False."""
    from sklearn.model_selection import (  # slow to import: only here
        StratifiedGroupKFold,
        train_test_split,
    )

    train = df.index[df["split"] == "train"]
    labels = df.loc[train, "label"].to_numpy()
    if group_by_movie:
        folds = max(2, round(1 / valid_fraction))
        if df.loc[train, "movie"].nunique() < folds:
            raise PipelineError(
                f"{df.loc[train, 'movie'].nunique()} movies in train: too few "
                f"for a grouped validation split of {valid_fraction:g}"
            )
        kfold = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        _, fold = next(
            kfold.split(np.zeros(len(train)), labels, groups=df.loc[train, "movie"].to_numpy())
        )
        valid = train[fold]
    else:
        _, valid = train_test_split(
            train, test_size=valid_fraction, random_state=seed, stratify=labels
        )
    df = df.copy()
    df.loc[valid, "split"] = "valid"
    order = pd.Categorical(df["split"], ["train", "valid", "test", "unsup"], ordered=True)
    return (
        df.assign(_order=order)
        .sort_values(["_order", "label", "id"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )


@command(
    "imdb",
    "ingest",
    arg("archive", type=Path, help="aclImdb_v1.tar.gz"),
    arg("out", type=Path, help="Parquet table: split, id, rating, label, movie, text"),
    help="read the reviews out of the archive into one table, with a validation split "
    "grouped by movie",
)
def ingest(params: Params, archive: Path, out: Path) -> None:
    p = params.imdb.ingest
    df = read_reviews(archive, include_unsup=p.include_unsup, movies=p.group_by_movie)
    df = split_valid(df, p.valid_fraction, params.seed, p.group_by_movie)
    with atomic_path(out) as tmp:
        df.to_parquet(tmp, index=False)
    log.info("wrote %s: %s", out, df["split"].value_counts().to_dict())
