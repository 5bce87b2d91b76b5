"""Cut the novel out of a Project Gutenberg text file."""

from __future__ import annotations

from rnnpipe.errors import PipelineError


def decode_text(raw: bytes, name: str) -> str:
    """UTF-8 without a byte-order mark, with Unix line ends."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise PipelineError(f"{name} is not UTF-8: bad byte at offset {e.start}") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def cut_novel(text: str, start_marker: str, end_marker: str) -> str:
    """From the first line equal to `start_marker` up to the line starting with `end_marker`.

    The start must be a whole line: the licence header's `*** START OF THIS PROJECT GUTENBERG
    EBOOK THE MYSTERIOUS ISLAND ***` contains the title too, and is not the start.
    """
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.strip() == start_marker), None)
    if start is None:
        raise PipelineError(f"start marker not found: no line equal to {start_marker!r}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith(end_marker)), None)
    if end is None:
        raise PipelineError(
            f"end marker not found: no line after the start begins with {end_marker!r}"
        )
    return "\n".join(lines[start:end]).strip()
