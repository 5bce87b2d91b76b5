"""ingest: cut the novel out of a Project Gutenberg text file."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

from rnnpipe.core.atomic import write_text
from rnnpipe.core.commands import arg, command
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import Params

log = logging.getLogger(__name__)


def decode_text(raw: bytes, name: str) -> str:
    """UTF-8 without a byte-order mark, with Unix line ends."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise PipelineError(f"{name} is not UTF-8: bad byte at offset {e.start}") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _starts_with_any(line: str, markers: Sequence[str]) -> bool:
    # case ignored: Gutenberg has spelt it EBook, eBook and ebook over the years
    if isinstance(markers, str):  # one marker, not its characters
        markers = [markers]
    return any(line.lower().startswith(m.lower()) for m in markers)


def cut_novel(
    text: str, start_marker: str, end_markers: Sequence[str], header_markers: Sequence[str] = ()
) -> str:
    """From the first line equal to `start_marker` up to the first line that starts with one of
    `end_markers`, stripped.

    The search starts after the licence header's last line (the first line starting with one of
    `header_markers`) when the file has one. The start must be a whole line all the same: the
    2016 header line `*** START OF THIS PROJECT GUTENBERG EBOOK THE MYSTERIOUS ISLAND ***`
    contains the title too.
    """
    lines = text.split("\n")
    header = next(
        (i for i, line in enumerate(lines) if _starts_with_any(line, header_markers)), None
    )
    first = 0 if header is None else header + 1
    start = next((i for i in range(first, len(lines)) if lines[i].strip() == start_marker), None)
    if start is None:
        where = "" if header is None else f" after the licence header (line {header + 1})"
        raise PipelineError(f"start marker not found: no line{where} equal to {start_marker!r}")
    end = next(
        (i for i in range(start + 1, len(lines)) if _starts_with_any(lines[i], end_markers)), None
    )
    if end is None:
        raise PipelineError(
            f"end marker not found: no line after the start (line {start + 1}) begins with any "
            f"of {end_markers!r} (a truncated file?)"
        )
    return "\n".join(lines[start:end]).strip()


def check_sha256(corpus: str, accepted: Sequence[str]) -> str:
    """The SHA-256 of the novel as written (UTF-8); an error when `accepted` lacks it."""
    digest = hashlib.sha256(corpus.encode("utf-8")).hexdigest()
    if accepted and digest not in accepted:
        raise PipelineError(
            f"novel text checksum mismatch: sha256 {digest} is not one of the accepted "
            f"{accepted} (add it to `charlm.ingest.text_sha256` in params.yaml if the text "
            "changed on purpose)"
        )
    return digest


@command(
    "charlm",
    "ingest",
    arg("source", type=Path, help="the Project Gutenberg text file"),
    arg("out", type=Path, help="the novel alone, UTF-8"),
    help="cut the novel between its licence header and footer",
)
def ingest(params: Params, source: Path, out: Path) -> None:
    p = params.charlm.ingest
    text = decode_text(source.read_bytes(), str(source))
    corpus = cut_novel(text, p.start_marker, p.end_markers, p.header_markers)
    digest = check_sha256(corpus, p.text_sha256)
    write_text(out, corpus)
    log.info(
        "wrote %s: %d characters, %d distinct, sha256 %s",
        out,
        len(corpus),
        len(set(corpus)),
        digest,
    )
