"""Faults from the server: what is retried (and for how long), basic auth through OLLAMA_HOST, 401/403,
and credentials that never show in any output."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import ollama
import pytest
from click.testing import CliRunner, Result
from readpath import indexed_settings

from ingest import ollama_calls
from ingest.errors import OllamaAuthError, OllamaTimeout, OllamaUnreachable, ServerBusy
from ingest.ollama_calls import Timeouts, call
from rag.cli import cli
from rag.client import OllamaClient
from rag.server import OllamaServer

SECRET = "s3cr3t-Pa55"
USER = "alice"


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(ollama_calls, "RETRY_BASE_DELAY", 0.01)
    yield
    ollama_calls._credentials.clear()  # credentials are remembered per process: none leak to the next test


def rag(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="rag")


def with_credentials(url: str, user: str = USER, password: str = SECRET) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:{password}@{rest}"


# -- retries -------------------------------------------------------------------------------------


def _requests_after(server: OllamaServer, settle: float) -> int:
    # Every attempt was sent before the call returned; each is recorded once the server answers it.
    time.sleep(settle)
    return len(server.requests)


def test_a_read_timeout_is_not_retried(ollama_server_factory) -> None:
    server = ollama_server_factory(latency=0.6)
    with OllamaClient(server.url, timeouts=Timeouts(connect=2, read=0.2), retries=3) as client:
        with pytest.raises(OllamaTimeout) as caught:
            client.models()
    assert caught.value.phase == "read"
    assert "RAG_READ_TIMEOUT" in str(caught.value)
    assert _requests_after(server, 1.5) == 1  # with 3 retries it would be 4


def test_a_read_timeout_is_retried_only_when_asked(ollama_server_factory) -> None:
    server = ollama_server_factory(latency=0.4)
    sdk = ollama_calls.make_client(server.url, Timeouts(connect=2, read=0.1))
    with pytest.raises(OllamaTimeout):
        call(sdk.list, host=server.url, retries=2, retry_read_timeouts=True)
    assert _requests_after(server, 1.5) == 3
    ollama_calls.close_client(sdk)


def test_5xx_and_503_are_still_retried(ollama_server_factory) -> None:
    failing = ollama_server_factory(fail_every=2)  # request 2 gets a 500
    with OllamaClient(failing.url, retries=2) as client:
        client.models()
        client.models()  # 500, then retried
    assert [r.status for r in failing.requests] == [200, 500, 200]
    busy = ollama_server_factory(busy_every=1)  # always 503
    with OllamaClient(busy.url, retries=2) as client, pytest.raises(ServerBusy):
        client.models()
    assert len(busy.requests) == 3


def test_retries_stop_at_the_overall_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = []

    def refused() -> None:
        attempts.append(time.monotonic())
        raise ConnectionError("refused")

    monkeypatch.setattr(ollama_calls, "RETRY_BASE_DELAY", 0.1)
    with pytest.raises(OllamaUnreachable):
        call(refused, host="http://127.0.0.1:9", retries=1000, deadline=0.5)
    # backoff 0.05-0.1, 0.1-0.2, 0.2-0.4, ...: the deadline admits a handful of attempts, not 1001
    assert 2 <= len(attempts) <= 5


def test_backoff_has_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    monkeypatch.setattr(ollama_calls.time, "sleep", delays.append)

    def refused() -> None:
        raise ConnectionError("refused")

    for _ in range(2):
        with pytest.raises(OllamaUnreachable):
            call(refused, host="http://127.0.0.1:9", retries=3)
    first, second = delays[:3], delays[3:]
    assert len(first) == len(second) == 3
    assert first != second  # two clients failing together do not retry in step
    for attempt, delay in enumerate(first + second):
        full = 0.01 * 2 ** (attempt % 3)
        assert full / 2 <= delay <= full


# -- basic auth ----------------------------------------------------------------------------------


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_ollama_host_with_credentials_sends_basic_auth(
    ollama_server: OllamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", with_credentials(ollama_server.url, password="p@ss:wörd"))
    with OllamaClient() as client:
        assert client.host == ollama_server.url  # no credentials in the host anyone prints
        client.health()  # raw requests (GET /, /api/version)
        client.models()  # an SDK call (/api/tags)
        client.embed("nomic-embed-text", ["水"])
    seen = {r.path: r.headers.get("authorization") for r in ollama_server.requests}
    assert set(seen) == {"/", "/api/version", "/api/tags", "/api/embed"}
    assert set(seen.values()) == {_basic(USER, "p@ss:wörd")}


def test_a_fresh_process_finds_the_credentials_from_ollama_host(
    ollama_server: OllamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", with_credentials(ollama_server.url))
    ollama_calls._credentials.clear()  # as in a worker process that was handed the resolved URL only
    with OllamaClient(ollama_server.url) as client:
        client.models()
    assert ollama_server.requests[0].headers.get("authorization") == _basic(USER, SECRET)


def test_a_host_without_credentials_sends_none(ollama_server: OllamaServer) -> None:
    with OllamaClient(ollama_server.url) as client:
        client.models()
    assert "authorization" not in ollama_server.requests[0].headers


class _AuthProxy(BaseHTTPRequestHandler):
    """A reverse proxy's answer to a request without (or with wrong) credentials."""

    status = 401

    def do_GET(self) -> None:
        self._deny()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._deny()

    def _deny(self) -> None:
        body = b"<html><body>401 Authorization Required</body></html>"
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("WWW-Authenticate", 'Basic realm="ollama"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AuthProxy)
    server.status = 401  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_give_one_line_naming_the_fix(proxy: ThreadingHTTPServer, status: int) -> None:
    proxy.status = status  # type: ignore[attr-defined]
    with OllamaClient(with_credentials(_url(proxy)), retries=3) as client:
        for attempt in (client.models, client.health):
            with pytest.raises(OllamaAuthError) as caught:
                attempt()
            err = caught.value
            assert err.status == status and err.host == _url(proxy)
            assert "\n" not in str(err) and "OLLAMA_HOST=https://USER:PASSWORD@HOST" in str(err)
            assert SECRET not in str(err)


def test_401_without_credentials_says_how_to_give_them(proxy: ThreadingHTTPServer) -> None:
    with OllamaClient(_url(proxy)) as client, pytest.raises(OllamaAuthError, match="asks for credentials"):
        client.models()


def test_a_stream_answered_401_is_mapped_and_not_retried(proxy: ThreadingHTTPServer) -> None:
    with OllamaClient(with_credentials(_url(proxy)), retries=3) as client:
        with pytest.raises(OllamaAuthError, match="refused the credentials"):
            list(client.pull("nomic-embed-text"))


# -- credentials never appear in any output ------------------------------------------------------


def _no_secret(result: Result) -> None:
    assert SECRET not in result.output and SECRET not in result.stderr, result.output


def test_cli_errors_never_show_credentials(proxy: ThreadingHTTPServer, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log every request at DEBUG/INFO
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OLLAMA_HOST", with_credentials(_url(proxy)))
    for args in (["models", "list"], ["ask", "what is in the manual?"], ["search", "manual"],
                 ["index", str(tmp_path)], ["doctor"], ["doctor", "--json"], ["models", "list", "--json"]):
        result = rag(*args)
        assert result.exit_code != 0, (args, result.output)
        _no_secret(result)
        assert "Traceback" not in result.output
    assert "USER:PASSWORD" in rag("models", "list").stderr  # the error names the fix
    assert SECRET not in caplog.text


def test_successful_runs_never_show_credentials(ollama_server: OllamaServer, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    settings = indexed_settings(ollama_server, tmp_path)
    monkeypatch.setenv("OLLAMA_HOST", with_credentials(ollama_server.url))
    db = ["--db", str(settings.db)]
    outputs = [
        rag("doctor", *db, "--json"),
        rag("doctor", *db),
        rag("status", *db),
        rag("status", *db, "--json"),
        rag("search", "dishwasher warranty", *db, "--json"),
        rag("ask", "How long is the dishwasher warranty?", *db, "--json"),
        rag("index", str(tmp_path / "docs"), "--db", str(tmp_path / "db2"), "--json"),
        rag("models", "list", "--json"),
    ]
    for result in outputs:
        _no_secret(result)
    assert json.loads(outputs[0].stdout)["host"] == ollama_server.url
    assert outputs[4].exit_code == 0 and outputs[5].exit_code == 0, outputs[5].output
    assert SECRET not in caplog.text
    auth = {r.headers.get("authorization") for r in ollama_server.requests[-5:]}
    assert auth == {_basic(USER, SECRET)}


def test_resolve_host_keeps_credentials_out_of_the_url() -> None:
    url = ollama_calls.resolve_host(f"https://{USER}:{SECRET}@ollama.example.com:8443/ollama/")
    assert url == "https://ollama.example.com:8443/ollama"
    client = ollama_calls.make_http(url)
    try:
        assert SECRET not in repr(client.base_url) and isinstance(client.auth, httpx.BasicAuth)
    finally:
        client.close()
    assert isinstance(ollama.Client(host=url), ollama.Client)
