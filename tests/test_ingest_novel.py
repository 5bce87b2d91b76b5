"""charlm ingest: the novel alone, cut from its title line to the footer."""

import pytest

from rnnpipe import cli
from rnnpipe.data import novel
from rnnpipe.errors import PipelineError
from rnnpipe.params import CharlmIngestParams
from tests import tinydata
from tests.test_params import write_params

START = CharlmIngestParams().start_marker
END = CharlmIngestParams().end_marker


def test_decode_drops_bom_and_crlf():
    text = novel.decode_text(b"\xef\xbb\xbfone\r\ntwo\rthree\n", "x.txt")
    assert text == "one\ntwo\nthree\n"


def test_decode_non_utf8_names_file_and_offset():
    with pytest.raises(PipelineError, match=r"x\.txt is not UTF-8: bad byte at offset 4"):
        novel.decode_text(b"abc \xff def", "x.txt")


def test_cut_starts_at_title_line_not_at_start_of_licence_line():
    body = tinydata.novel_body(2_000)
    text = novel.decode_text(tinydata.gutenberg_text(body).encode("utf-8"), "t")
    assert text.index("*** START OF THIS PROJECT GUTENBERG EBOOK THE MYSTERIOUS ISLAND") < (
        text.index("\nTHE MYSTERIOUS ISLAND\n"))
    corpus = novel.cut_novel(text, START, END)
    assert corpus.startswith("THE MYSTERIOUS ISLAND\n\nby Jules Verne\n\n1874")
    assert corpus.endswith(body.strip())
    assert "***" not in corpus and "Produced by" not in corpus
    assert "Project Gutenberg" not in corpus and "End of the" not in corpus
    assert corpus == corpus.strip() and "\r" not in corpus


def test_cli_ingest_writes_the_novel(tmp_path):
    source = tinydata.write_gutenberg(tmp_path / "raw" / "novel.txt")
    assert source.read_bytes().startswith(b"\xef\xbb\xbf")
    out = tmp_path / "interim" / "corpus.txt"
    params = write_params(tmp_path / "params.yaml")
    assert cli.main(["--params", str(params), "charlm", "ingest", str(source), str(out)]) == 0
    raw = out.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw
    corpus = raw.decode("utf-8")
    assert corpus.startswith("THE MYSTERIOUS ISLAND\n")
    assert corpus == novel.cut_novel(
        novel.decode_text(source.read_bytes(), "s"), START, END)


def test_markers_come_from_params(tmp_path):
    text = "header\nMY TITLE\nbody line\nTHE END, said the footer\nlicence\n"
    source = tmp_path / "novel.txt"
    source.write_text(text)
    out = tmp_path / "corpus.txt"

    def edit(raw):
        raw["charlm"]["ingest"] = {"start_marker": "MY TITLE", "end_marker": "THE END"}
    params = write_params(tmp_path / "params.yaml", edit)
    assert cli.main(["--params", str(params), "charlm", "ingest", str(source), str(out)]) == 0
    assert out.read_text() == "MY TITLE\nbody line"


@pytest.mark.parametrize("case, make, message", [
    ("no title line", lambda: tinydata.gutenberg_text().replace(
        "\r\nTHE MYSTERIOUS ISLAND\r\n", "\r\nTHE MYSTERIOUS ISLE\r\n"),
     "start marker not found: no line equal to 'THE MYSTERIOUS ISLAND'"),
    ("no footer", lambda: tinydata.gutenberg_text(footer=False),
     "end marker not found: no line after the start begins with 'End of the Project"),
    ("footer before title", lambda: tinydata.gutenberg_text(header=False).replace(
        "THE MYSTERIOUS ISLAND\r\n\r\nby", END + "\r\nTHE MYSTERIOUS ISLAND\r\n\r\nby", 1
    ).replace("\r\n" + END + "\r\n\r\n***", "\r\n***"),
     "end marker not found"),
    ("not UTF-8", lambda: tinydata.gutenberg_text().encode("utf-8") + b"\xc3(",
     "is not UTF-8: bad byte at offset"),
])
def test_bad_novel_clear_error_exit_1_no_output(tmp_path, capsys, case, make, message):
    data = make()
    source = tmp_path / "raw" / "novel.txt"
    if isinstance(data, str):
        tinydata.write_gutenberg(source, data)
    else:
        source.parent.mkdir()
        source.write_bytes(data)
    out = tmp_path / "interim" / "corpus.txt"
    params = write_params(tmp_path / "params.yaml")
    rc = cli.main(["--params", str(params), "charlm", "ingest", str(source), str(out)])
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("rnnpipe charlm ingest: error: ") and message in err
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_missing_source_file(tmp_path, capsys):
    params = write_params(tmp_path / "params.yaml")
    out = tmp_path / "corpus.txt"
    rc = cli.main(["--params", str(params), "charlm", "ingest", str(tmp_path / "nope.txt"),
                   str(out)])
    assert rc == 1
    assert "nope.txt" in capsys.readouterr().err
    assert not out.exists()
