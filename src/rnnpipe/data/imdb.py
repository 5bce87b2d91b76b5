"""Read the Large Movie Review Dataset straight from its tar.gz into one table.

Members are read from the archive stream, never extracted to disk, and every member is checked
first: an absolute path, a `..` component, a link or a device stops the stage.
"""

from __future__ import annotations

import gzip
import re
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import pandas as pd

from rnnpipe.errors import PipelineError

# The one place that says which folder is which label.
LABELS = {"neg": 0, "pos": 1}
UNLABELLED = -1  # label of train/unsup reviews (their rating is 0)
COLUMNS = ["split", "id", "rating", "label", "text"]
FILE_NAME = re.compile(r"^(\d+)_(\d+)\.txt$")


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


def read_reviews(archive: Path, include_unsup: bool = False) -> pd.DataFrame:
    """All reviews of the archive as rows of split, id, rating, label, text.

    `split` is "train", "test" or "unsup" here; `split_valid` carves "valid" out of train.
    """
    wanted = set(_wanted_folders(include_unsup))
    seen: dict[tuple[str, str], int] = {folder: 0 for folder in wanted}
    rows = []
    try:
        # gzip.open, not tarfile's "r|gz": it checks the end-of-stream marker and the CRC,
        # so a truncated download is an error, not an archive that silently ends early
        with gzip.open(archive, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            for member in tar:
                check_member(member)
                parts = PurePosixPath(member.name).parts
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
                    bad = raw[e.start:e.start + 1]
                    raise PipelineError(
                        f"{member.name}: not valid UTF-8 (byte {e.start}: {bad!r})"
                    ) from None
                seen[(split, folder)] += 1
                rows.append((
                    "unsup" if folder == "unsup" else split,
                    int(m.group(1)),
                    int(m.group(2)),
                    LABELS.get(folder, UNLABELLED),
                    text,
                ))
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
    df = pd.DataFrame(rows, columns=COLUMNS)
    df = df.astype({"split": "string", "id": "int64", "rating": "int8", "label": "int8",
                    "text": "string"})
    return df.sort_values(["split", "label", "id"], kind="stable").reset_index(drop=True)


def split_valid(df: pd.DataFrame, valid_fraction: float, seed: int) -> pd.DataFrame:
    """Move a stratified, seeded `valid_fraction` of train into a "valid" split."""
    from sklearn.model_selection import train_test_split  # slow to import: only here
    train = df.index[df["split"] == "train"]
    _, valid = train_test_split(train, test_size=valid_fraction, random_state=seed,
                                stratify=df.loc[train, "label"])
    df = df.copy()
    df.loc[valid, "split"] = "valid"
    order = pd.Categorical(df["split"], ["train", "valid", "test", "unsup"], ordered=True)
    return (df.assign(_order=order).sort_values(["_order", "label", "id"], kind="stable")
            .drop(columns="_order").reset_index(drop=True))
