"""download: mirror folder first, then the URL (a real local HTTP server here)."""

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from rnnpipe import cli
from rnnpipe.core import fetch as dl
from rnnpipe.core.errors import PipelineError
from rnnpipe.core.params import DownloadParams
from tests.conftest import ROOT
from tests.test_params import write_params

FILE = "data.bin"
MIRROR_BYTES = b"from the mirror\n" * 100
URL_BYTES = b"from the url\n" * 50_000  # ~650 kB: several chunks through the progress bar


class Handler(BaseHTTPRequestHandler):
    """GET /ok, /slow (answers after 2 s), /truncated (promises more bytes than it sends)."""

    def do_GET(self):
        if self.path not in ("/ok", "/slow", "/truncated"):
            self.send_error(404)
            return
        if self.path == "/slow":
            time.sleep(2)
        body = URL_BYTES
        self.send_response(200)
        extra = 1000 if self.path == "/truncated" else 0
        self.send_header("Content-Length", str(len(body) + extra))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address):
        pass  # the client of /slow hangs up before the answer: no traceback on stderr


@pytest.fixture(scope="module")
def server():
    """http://127.0.0.1:<free port>, served from a thread."""
    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def no_mirror_env(monkeypatch):
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)


@pytest.fixture
def mirror(tmp_path) -> Path:
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / FILE).write_bytes(MIRROR_BYTES)
    return folder


def params(url: str, mirror: Path | None, **kwargs) -> DownloadParams:
    return DownloadParams(
        url=url,
        filename=FILE,
        mirror=str(mirror) if mirror else None,
        timeout_s=kwargs.pop("timeout_s", 5),
        sha256=kwargs.pop("sha256", []),
        **kwargs,
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Temporary files atomic_path may have left beside the target."""
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def test_mirror_preferred_over_url(tmp_path, mirror, server):
    out, record = tmp_path / "raw" / FILE, tmp_path / "raw" / "download.json"
    info = dl.download(params(f"{server}/ok", mirror), out, record)
    assert out.read_bytes() == MIRROR_BYTES
    assert info == json.loads(record.read_text())
    assert info["source"] == "mirror"  # not its path: the record is the same on every machine
    assert info["url"] == f"{server}/ok"
    assert info["bytes"] == len(MIRROR_BYTES)
    assert info["sha256"] == sha(MIRROR_BYTES)
    assert leftovers(out.parent) == []


def test_url_fallback_with_progress_bar(tmp_path, server, capsys):
    out, record = tmp_path / "raw" / FILE, tmp_path / "raw" / "download.json"
    empty = tmp_path / "empty_mirror"
    empty.mkdir()
    info = dl.download(params(f"{server}/ok", empty, sha256=[sha(URL_BYTES)]), out, record)
    assert out.read_bytes() == URL_BYTES
    assert json.loads(record.read_text()) == info
    assert info["source"] == "url" and info["url"] == f"{server}/ok"
    assert info["bytes"] == len(URL_BYTES) and info["sha256"] == sha(URL_BYTES)
    err = capsys.readouterr().err
    assert "ok:" in err and "100%" in err  # tqdm's bar, named after the URL's last part
    assert leftovers(out.parent) == []


def test_env_var_overrides_mirror_param(tmp_path, mirror, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    (other / FILE).write_bytes(b"env mirror")
    monkeypatch.setenv(dl.MIRROR_ENV, str(other))
    out = tmp_path / FILE
    info = dl.download(params("http://127.0.0.1:9/x", mirror), out, tmp_path / "r.json")
    assert out.read_bytes() == b"env mirror"
    assert info["source"] == "mirror"


def test_default_mirror_is_shared_data_beside_the_project(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    root = tmp_path.resolve()
    assert dl.mirror_folder(params("http://x", None)) == root / "../shared/data"
    # a relative mirror is taken from the project's root, also when DVC runs the stage in an
    # experiment's copy of the project (DVC_ROOT: the project's own root)
    assert dl.mirror_folder(params("http://x", Path("mine"))) == root / "mine"
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "project"))
    assert dl.mirror_folder(params("http://x", None)) == root / "project" / "../shared/data"
    monkeypatch.setenv(dl.MIRROR_ENV, "/somewhere")
    assert dl.mirror_folder(params("http://x", Path("mine"))) == Path("/somewhere")


def test_checksum_mismatch_on_mirror_falls_back_to_url(tmp_path, mirror, server):
    out = tmp_path / FILE
    info = dl.download(
        params(f"{server}/ok", mirror, sha256=[sha(URL_BYTES)]), out, tmp_path / "r.json"
    )
    assert info["source"] == "url" and info["url"] == f"{server}/ok"
    assert out.read_bytes() == URL_BYTES


def test_checksum_mismatch_everywhere(tmp_path, mirror, server):
    out, record = tmp_path / "raw" / FILE, tmp_path / "raw" / "r.json"
    p = params(f"{server}/ok", mirror, sha256=["0" * 64])
    with pytest.raises(PipelineError) as e:
        dl.download(p, out, record)
    msg = str(e.value)
    assert msg.count("checksum mismatch") == 2
    assert sha(MIRROR_BYTES) in msg and sha(URL_BYTES) in msg
    assert not out.exists() and not record.exists()
    assert leftovers(out.parent) == []


@pytest.mark.parametrize(
    "path, reason",
    [
        ("/missing", "404"),
        ("/slow", "timed out"),
        ("/truncated", "IncompleteRead"),
    ],
)
def test_every_source_failing_lists_each_and_why(tmp_path, server, path, reason):
    out, record = tmp_path / "raw" / FILE, tmp_path / "raw" / "r.json"
    p = params(f"{server}{path}", tmp_path / "no_mirror", timeout_s=0.5)
    with pytest.raises(PipelineError) as e:
        dl.download(p, out, record)
    msg = str(e.value)
    assert f"could not get {FILE} from any source" in msg
    assert f"mirror {tmp_path / 'no_mirror' / FILE}: no file" in msg
    url_line = next(line for line in msg.splitlines() if line.strip().startswith("url "))
    assert f"{server}{path}" in url_line and reason in url_line
    assert not out.exists() and not record.exists()
    assert leftovers(out.parent) == []


def test_cli_download_all_sources_fail(tmp_path, capsys):
    """Through the CLI: exit 1, each source and why, no output file."""

    def edit(raw):
        raw["imdb"]["download"]["mirror"] = str(tmp_path / "no_mirror")

    p = write_params(tmp_path / "params.yaml", edit)
    out, record = tmp_path / "raw" / "a.tar.gz", tmp_path / "raw" / "download.json"
    rc = cli.main(["--params", str(p), "imdb", "download", str(out), str(record)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "rnnpipe imdb download: error: could not get aclImdb_v1.tar.gz from any source" in err
    assert "mirror " in err and "no file" in err
    assert "url http://127.0.0.1:9/aclImdb_v1.tar.gz" in err
    assert not out.exists() and not record.exists()


def test_cli_download_from_mirror(tmp_path, tiny_mirror):
    def edit(raw):
        raw["charlm"]["download"]["mirror"] = str(tiny_mirror)

    p = write_params(tmp_path / "params.yaml", edit)
    out, record = tmp_path / "raw" / "novel.txt", tmp_path / "raw" / "download.json"
    assert cli.main(["--params", str(p), "charlm", "download", str(out), str(record)]) == 0
    src = tiny_mirror / "mysterious_island_1268-0.txt"
    assert out.read_bytes() == src.read_bytes()
    info = json.loads(record.read_text())
    assert info["source"] == "mirror" and info["sha256"] == sha(src.read_bytes())


def test_cli_download_checksums_of_the_default_profile(tmp_path, tiny_mirror, capsys):
    """params.yaml pins the IMDb archive but not the Gutenberg file (Gutenberg rewrites its
    licence text; charlm ingest checks the novel instead): any copy of the novel downloads."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for project in ("imdb", "charlm"):
        raw[project]["download"].update(
            mirror=str(tiny_mirror), url="http://127.0.0.1:9/nothing", timeout_s=2
        )
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(raw))
    out, record = tmp_path / "raw" / "novel.txt", tmp_path / "raw" / "download.json"
    assert cli.main(["--params", str(p), "charlm", "download", str(out), str(record)]) == 0
    assert json.loads(record.read_text())["source"] == "mirror"
    assert out.read_bytes() == (tiny_mirror / raw["charlm"]["download"]["filename"]).read_bytes()

    out, record = tmp_path / "raw" / "a.tar.gz", tmp_path / "raw" / "imdb.json"
    assert cli.main(["--params", str(p), "imdb", "download", str(out), str(record)]) == 1
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and raw["imdb"]["download"]["sha256"][0] in err
    assert not out.exists() and not record.exists()
