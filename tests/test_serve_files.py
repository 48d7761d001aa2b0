"""`GET /api/files/{path}`: cited sources are served, nothing else is (each trick gets its own test)."""

from __future__ import annotations

import http.client
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from serve_support import served

from rag.serve import RunningServer
from rag.serve.files import raw_path_is_clean, safe_source
from rag.server import OllamaServer


@pytest.fixture(scope="module")
def tmp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="module")
def server(tmp_path: Path) -> Iterator[RunningServer]:
    """One server for the module: the tests only read (and the ones that add files add their own)."""
    (tmp_path / "secret.txt").write_text("the password is hunter2", encoding="utf-8")
    with OllamaServer() as ollama, served(ollama, tmp_path) as srv:
        yield srv


def raw_get(server: RunningServer, raw_path: str) -> tuple[int, bytes, dict[str, str]]:
    """GET a path exactly as written: no client-side normalisation of `..` or percent-escapes."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.putrequest("GET", raw_path, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def test_a_cited_markdown_file_is_served_as_utf8_text(server: RunningServer) -> None:
    status, body, headers = raw_get(server, "/api/files/guide.md")
    assert status == 200 and body.decode().startswith("# Garden guide")
    assert headers["content-type"] == "text/markdown; charset=utf-8"
    assert "sandbox" in headers["content-security-policy"] and headers["x-content-type-options"] == "nosniff"


def test_a_chinese_path_is_served(server: RunningServer) -> None:
    status, body, _ = raw_get(server, "/api/files/zh/" + quote("微调.md"))
    assert status == 200 and "微调需要准备标注数据" in body.decode()


def test_a_pdf_is_served_as_a_pdf_for_the_browser_viewer(server: RunningServer) -> None:
    status, body, headers = raw_get(server, "/api/files/manual.pdf")
    assert status == 200 and body.startswith(b"%PDF")
    assert headers["content-type"] == "application/pdf"
    assert "content-security-policy" not in headers  # the PDF viewer does not run under a sandbox policy


def assert_refused(server: RunningServer, raw_path: str) -> None:
    status, body, _ = raw_get(server, raw_path)
    assert status == 404, (raw_path, status)
    assert b"hunter2" not in body and b"root:" not in body


def test_dot_dot_is_refused(server: RunningServer) -> None:
    assert_refused(server, "/api/files/../secret.txt")
    assert_refused(server, "/api/files/zh/../../secret.txt")


def test_an_absolute_path_is_refused(server: RunningServer, tmp_path: Path) -> None:
    assert_refused(server, "/api/files//etc/passwd")
    assert_refused(server, "/api/files/" + str(tmp_path / "secret.txt"))


def test_encoded_dots_and_slashes_are_refused(server: RunningServer) -> None:
    assert_refused(server, "/api/files/%2e%2e/secret.txt")
    assert_refused(server, "/api/files/%2E%2E%2Fsecret.txt")
    assert_refused(server, "/api/files/..%2fsecret.txt")
    assert_refused(server, "/api/files/zh%2f" + quote("微调.md"))  # even an indexed file, when the slash is hidden
    assert_refused(server, "/api/files/%252e%252e/secret.txt")  # double-encoded


def test_backslashes_are_refused(server: RunningServer) -> None:
    assert_refused(server, "/api/files/..%5csecret.txt")
    assert_refused(server, "/api/files/zh\\..\\..\\secret.txt")


def test_nul_is_refused(server: RunningServer) -> None:
    assert_refused(server, "/api/files/guide.md%00.txt")


def test_a_symlink_leaving_the_folder_is_refused(server: RunningServer, tmp_path: Path) -> None:
    # notes.txt is indexed; it is replaced afterwards by a link to a file outside the folder.
    notes = tmp_path / "docs" / "notes.txt"
    notes.unlink()
    os.symlink(tmp_path / "secret.txt", notes)
    assert_refused(server, "/api/files/notes.txt")


def test_a_file_in_the_folder_that_is_not_indexed_is_refused(server: RunningServer, tmp_path: Path) -> None:
    (tmp_path / "docs" / ".env").write_text("TOKEN=hunter2", encoding="utf-8")  # hidden: never indexed
    (tmp_path / "docs" / "later.md").write_text("hunter2", encoding="utf-8")  # not indexed yet
    assert_refused(server, "/api/files/.env")
    assert_refused(server, "/api/files/later.md")
    assert_refused(server, "/api/files/")
    assert_refused(server, "/api/files/zh")


def test_the_path_rules_themselves() -> None:
    assert safe_source("zh/微调.md") and safe_source("a b/c.pdf")
    for bad in ("", "/etc/passwd", "../x", "a/../x", "a//b", "./a", "a\\b", "a\x00b", "C:/x", "a/"):
        assert not safe_source(bad), bad
    assert raw_path_is_clean(b"/api/files/zh/%E5%BE%AE.md")
    assert not raw_path_is_clean(b"/api/files/a%2Fb")
