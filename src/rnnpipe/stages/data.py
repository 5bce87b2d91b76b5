"""download and ingest, for both projects."""

from __future__ import annotations

import logging
from pathlib import Path

from rnnpipe.atomic import atomic_path, write_text
from rnnpipe.data import download as dl
from rnnpipe.data import imdb, novel
from rnnpipe.params import Params
from rnnpipe.stages import arg, command

log = logging.getLogger(__name__)


@command(("imdb", "charlm"), "download",
         arg("out", type=Path, help="where the data file lands"),
         arg("record", type=Path, help="JSON record of source, size and SHA-256"),
         help="fetch the data set from the mirror folder, else its official URL")
def download(params: Params, out: Path, record: Path, *, project: str) -> None:
    dl.download(getattr(params, project).download, out, record)


@command("imdb", "ingest",
         arg("archive", type=Path, help="aclImdb_v1.tar.gz"),
         arg("out", type=Path, help="Parquet table: split, id, rating, label, text"),
         help="read the reviews out of the archive into one table, with a validation split")
def ingest_imdb(params: Params, archive: Path, out: Path) -> None:
    p = params.imdb.ingest
    df = imdb.read_reviews(archive, include_unsup=p.include_unsup)
    df = imdb.split_valid(df, p.valid_fraction, params.seed)
    with atomic_path(out) as tmp:
        df.to_parquet(tmp, index=False)
    log.info("wrote %s: %s", out, df["split"].value_counts().to_dict())


@command("charlm", "ingest",
         arg("source", type=Path, help="the Project Gutenberg text file"),
         arg("out", type=Path, help="the novel alone, UTF-8"),
         help="cut the novel between its licence header and footer")
def ingest_charlm(params: Params, source: Path, out: Path) -> None:
    p = params.charlm.ingest
    text = novel.decode_text(source.read_bytes(), str(source))
    corpus = novel.cut_novel(text, p.start_marker, p.end_marker)
    write_text(out, corpus)
    log.info("wrote %s: %d characters, %d distinct", out, len(corpus), len(set(corpus)))
