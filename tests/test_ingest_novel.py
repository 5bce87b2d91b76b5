"""charlm ingest: the novel alone, cut from its title line to the footer, in both layouts."""

import hashlib
from pathlib import Path

import pytest

from rnnpipe import cli
from rnnpipe.charlm import ingest as novel
from rnnpipe.charlm.params import CharlmIngestParams
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import load_params
from tests import tinydata
from tests.test_params import write_params

P = CharlmIngestParams()
LAYOUTS = list(tinydata.GUTENBERG_LAYOUTS)
REAL = Path(__file__).resolve().parents[2] / "shared/data/mysterious_island_1268-0.txt"


def cut(text: str) -> str:
    return novel.cut_novel(text, P.start_marker, P.end_markers, P.header_markers)


def decoded(**kwargs) -> str:
    return novel.decode_text(tinydata.gutenberg_text(**kwargs).encode("utf-8"), "t")


def run_ingest(tmp_path, source, edit=None):
    out = tmp_path / "interim" / "corpus.txt"
    params = write_params(tmp_path / "params.yaml", edit)
    rc = cli.main(["--params", str(params), "charlm", "ingest", str(source), str(out)])
    return rc, out


def set_ingest(**values):
    def edit(raw):
        raw["charlm"]["ingest"].update(values)

    return edit


def test_decode_drops_bom_and_crlf():
    text = novel.decode_text(b"\xef\xbb\xbfone\r\ntwo\rthree\n", "x.txt")
    assert text == "one\ntwo\nthree\n"


def test_decode_non_utf8_names_file_and_offset():
    with pytest.raises(PipelineError, match=r"x\.txt is not UTF-8: bad byte at offset 4"):
        novel.decode_text(b"abc \xff def", "x.txt")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cut_keeps_the_novel_alone(layout):
    body = tinydata.novel_body(2_000)
    text = decoded(body=body, layout=layout)
    corpus = cut(text)
    assert corpus.startswith("THE MYSTERIOUS ISLAND\n\nby Jules Verne\n\n1874")
    assert corpus.endswith(body.strip())
    assert "***" not in corpus and "Produced by" not in corpus and "Credits" not in corpus
    assert "Gutenberg" not in corpus and "End of the" not in corpus
    assert corpus == corpus.strip() and "\r" not in corpus


def test_both_layouts_give_the_same_text_and_checksum():
    body = tinydata.novel_body(2_000)
    old, new = (cut(decoded(body=body, layout=layout)) for layout in ("2016", "current"))
    assert old == new
    assert novel.check_sha256(old, []) == hashlib.sha256(new.encode()).hexdigest()


def test_title_inside_the_2016_header_line_is_not_the_start():
    text = decoded(layout="2016")
    assert text.index("*** START OF THIS PROJECT GUTENBERG EBOOK THE MYSTERIOUS ISLAND") < (
        text.index("\nTHE MYSTERIOUS ISLAND\n")
    )
    assert cut(text).startswith("THE MYSTERIOUS ISLAND\n\nby")


def test_title_line_before_the_header_line_is_skipped():
    text = decoded(layout="current").replace(
        "Title: The Mysterious Island", "THE MYSTERIOUS ISLAND\n\nFAKE START"
    )
    corpus = cut(text)
    assert corpus.startswith("THE MYSTERIOUS ISLAND\n\nby Jules Verne")
    assert "FAKE START" not in corpus


@pytest.mark.parametrize("layout", LAYOUTS)
def test_no_header_line_searches_from_the_top(layout):
    assert cut(decoded(layout=layout, header=False)) == cut(decoded(layout=layout))


def test_end_at_the_first_footer_marker_any_case():
    text = (
        "*** Start of the Project Gutenberg eBook X ***\nTHE MYSTERIOUS ISLAND\nbody\n"
        "*** end of the project gutenberg ebook x ***\nEnd of the Project Gutenberg EBook of X\n"
    )
    assert cut(text) == "THE MYSTERIOUS ISLAND\nbody"


def test_one_marker_as_a_plain_string():
    text = "TITLE\nevery line\nEND\n"
    assert novel.cut_novel(text, "TITLE", "END") == "TITLE\nevery line"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cli_ingest_writes_the_novel(tmp_path, layout):
    source = tinydata.write_gutenberg(tmp_path / "raw" / "novel.txt", layout=layout)
    assert source.read_bytes().startswith(b"\xef\xbb\xbf")
    rc, out = run_ingest(tmp_path, source)
    assert rc == 0
    raw = out.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw
    assert raw.decode("utf-8") == cut(novel.decode_text(source.read_bytes(), "s"))


def test_checksum_of_the_text_accepted(tmp_path):
    source = tinydata.write_gutenberg(tmp_path / "raw" / "novel.txt", layout="current")
    digest = hashlib.sha256(cut(decoded(layout="2016")).encode()).hexdigest()
    rc, out = run_ingest(tmp_path, source, set_ingest(text_sha256=["0" * 64, digest]))
    assert rc == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest


def test_checksum_mismatch_names_both_hashes_and_the_key(tmp_path, capsys):
    source = tinydata.write_gutenberg(tmp_path / "raw" / "novel.txt")
    digest = hashlib.sha256(cut(decoded()).encode()).hexdigest()
    rc, out = run_ingest(tmp_path, source, set_ingest(text_sha256=["a" * 64]))
    assert rc == 1
    err = capsys.readouterr().err
    assert f"novel text checksum mismatch: sha256 {digest}" in err
    assert "a" * 64 in err and "charlm.ingest.text_sha256" in err
    assert not out.exists()


def test_markers_come_from_params(tmp_path):
    source = tmp_path / "novel.txt"
    source.write_text("== BEGIN ==\nMY TITLE\nbody line\nTHE END, said the footer\nlicence\n")
    rc, out = run_ingest(
        tmp_path,
        source,
        set_ingest(header_markers=["== begin"], start_marker="MY TITLE", end_markers=["THE END"]),
    )
    assert rc == 0
    assert out.read_text() == "MY TITLE\nbody line"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"end_marker": "x"}, "charlm.ingest.end_marker: unknown key"),
        ({"end_markers": []}, "charlm.ingest.end_markers"),
        ({"header_markers": [""]}, "an empty marker would match every line"),
        ({"text_sha256": ["ABC"]}, "text_sha256 entries must be 64 lowercase hex digits"),
    ],
)
def test_bad_ingest_params(tmp_path, values, message):
    params = write_params(tmp_path / "params.yaml", set_ingest(**values))
    with pytest.raises(PipelineError, match=message):
        load_params(params)


def _truncated():
    text = tinydata.gutenberg_text(layout="current")
    return text[: len(text) // 2]


@pytest.mark.parametrize(
    "case, make, message",
    [
        (
            "foreign text",
            lambda: "Call me Ishmael.\r\nSome years ago\r\n",
            "start marker not found: no line equal to 'THE MYSTERIOUS ISLAND'",
        ),
        (
            "foreign Gutenberg book",
            lambda: tinydata.gutenberg_text(layout="current").replace(
                "\r\nTHE MYSTERIOUS ISLAND\r\n", "\r\nMOBY-DICK\r\n"
            ),
            "start marker not found: no line after the licence header (line 14) equal to "
            "'THE MYSTERIOUS ISLAND'",
        ),
        (
            "truncated",
            _truncated,
            "end marker not found: no line after the start (line 18) begins with any of "
            "['End of the Project Gutenberg EBook of', '*** END OF THIS PROJECT GUTENBERG EBOOK'",
        ),
        ("no footer", lambda: tinydata.gutenberg_text(footer=False), "end marker not found"),
        (
            "footer before title",
            lambda: tinydata.gutenberg_text(header=False, footer=False).replace(
                "THE MYSTERIOUS ISLAND\r\n\r\nby",
                "*** END OF THE PROJECT GUTENBERG EBOOK X ***\r\nTHE MYSTERIOUS ISLAND\r\n\r\nby",
                1,
            ),
            "end marker not found",
        ),
        (
            "not UTF-8",
            lambda: tinydata.gutenberg_text().encode("utf-8") + b"\xc3(",
            "is not UTF-8: bad byte at offset",
        ),
    ],
)
def test_bad_novel_clear_error_exit_1_no_output(tmp_path, capsys, case, make, message):
    data = make()
    source = tmp_path / "raw" / "novel.txt"
    if isinstance(data, str):
        tinydata.write_gutenberg(source, data)
    else:
        source.parent.mkdir()
        source.write_bytes(data)
    rc, out = run_ingest(tmp_path, source)
    assert rc == 1
    err = capsys.readouterr().err
    assert err.startswith("rnnpipe charlm ingest: error: ") and message in err
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_missing_source_file(tmp_path, capsys):
    rc, out = run_ingest(tmp_path, tmp_path / "nope.txt")
    assert rc == 1
    assert "nope.txt" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.skipif(not REAL.is_file(), reason="no offline mirror of the real novel")
def test_real_2016_file_gives_the_pinned_text():
    corpus = cut(novel.decode_text(REAL.read_bytes(), str(REAL)))
    assert (len(corpus), len(set(corpus))) == (1_112_261, 79)
    assert novel.check_sha256(corpus, P.text_sha256) == P.text_sha256[0]
