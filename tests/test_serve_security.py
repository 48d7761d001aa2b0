"""Who may call `rag serve`: loopback by default, a token otherwise, never a cross-site page."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import ollama
import openai
import pytest
from click.testing import CliRunner
from readpath import requests_to
from serve_support import served

from ingest.errors import ConfigError
from rag.cli import cli
from rag.cli.output import EXIT_USAGE
from rag.serve import RunningServer, check_bind
from rag.server import OllamaServer

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def bundled() -> Iterator[OllamaServer]:
    with OllamaServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def server(bundled: OllamaServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with served(bundled, tmp_path_factory.mktemp("open")) as srv:
        yield srv


@pytest.fixture(scope="module")
def with_token(bundled: OllamaServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with served(bundled, tmp_path_factory.mktemp("token"), token=TOKEN) as srv:
        yield srv


# -- binding ---------------------------------------------------------------------------------------------


def test_binding_beyond_loopback_without_a_token_refuses_to_start() -> None:
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert result.exit_code == EXIT_USAGE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--token" in lines[0] and "RAG_SERVE_TOKEN" in lines[0]
    assert "http://" not in result.stdout  # no URL printed: nothing listens


def test_the_bind_rule() -> None:
    for loopback in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_bind(loopback, None)
    for wide in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        with pytest.raises(ConfigError, match="--token"):
            check_bind(wide, None)
        check_bind(wide, TOKEN)


def test_the_token_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_SERVE_TOKEN", TOKEN)
    with socket.socket() as taken:  # the port is taken, so a start past the token check fails right after it
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", str(port)])
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.strip() == f"error: cannot listen on 0.0.0.0:{port}: Address already in use — pick another --port"


# -- the token -------------------------------------------------------------------------------------------


def test_with_a_token_every_api_call_needs_it(with_token: RunningServer) -> None:
    url = with_token.url
    calls = [("GET", "api/status", None), ("GET", "api/search?q=warranty", None),
             ("POST", "api/ask", {"question": "warranty?"}), ("POST", "api/index", {}),
             ("GET", "api/files/guide.md", None), ("GET", "api/tags", None), ("GET", "v1/models", None),
             ("POST", "api/chat", {"model": "rag/docs", "messages": []})]
    for method, path, body in calls:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            reply = httpx.request(method, url + path, json=body, headers=headers, timeout=60)
            assert reply.status_code == 401, (path, headers)
            assert reply.headers["www-authenticate"] == "Bearer"
    assert httpx.get(url + "api/status", headers=AUTH, timeout=60).json()["files"] == 6
    assert httpx.get(url + "api/files/guide.md", headers=AUTH, timeout=60).status_code == 200


def test_the_page_itself_needs_no_token(with_token: RunningServer) -> None:
    page = httpx.get(with_token.url, timeout=60)
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_sdk_clients_send_the_token(with_token: RunningServer) -> None:
    host = with_token.url.rstrip("/")
    with ollama.Client(host=host, headers=AUTH) as client:
        assert [m.model for m in client.list().models] == ["rag/docs"]
    with ollama.Client(host=host) as client, pytest.raises(ollama.ResponseError) as refused:
        client.list()
    assert refused.value.status_code == 401
    with openai.OpenAI(base_url=with_token.url + "v1", api_key=TOKEN) as oai:
        assert [m.id for m in oai.models.list()] == ["rag/docs"]
    with openai.OpenAI(base_url=with_token.url + "v1", api_key="wrong") as oai, \
            pytest.raises(openai.AuthenticationError):
        oai.models.list()


# -- cross-site --------------------------------------------------------------------------------------------


def test_no_cors_headers_and_other_origins_are_refused(server: RunningServer) -> None:
    evil = {"Origin": "https://evil.example"}
    reply = httpx.get(server.url + "api/status", headers=evil, timeout=60)
    assert reply.status_code == 403 and "access-control-allow-origin" not in reply.headers
    preflight = httpx.options(server.url + "api/ask", timeout=60, headers={
        **evil, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert not any(h.startswith("access-control-") for h in preflight.headers)
    same = httpx.get(server.url + "api/status", headers={"Origin": server.url.rstrip("/")}, timeout=60)
    assert same.status_code == 200 and "access-control-allow-origin" not in same.headers


@pytest.mark.parametrize("content_type", [
    "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"])
def test_a_plain_form_post_cannot_start_a_sync(server: RunningServer, bundled: OllamaServer,
                                               content_type: str) -> None:
    # What a cross-site <form method=post> can send without a preflight (no Origin: an old browser).
    bundled.clear_requests()
    reply = httpx.post(server.url + "api/index", content=b"rebuild=true", headers={"Content-Type": content_type},
                       timeout=60)
    assert reply.status_code == 415 and "application/json" in reply.json()["error"]
    assert httpx.get(server.url + "api/status", timeout=60).json()["syncing"] is False
    assert requests_to(bundled, "/api/embed") == []  # nothing was indexed


def test_a_cross_site_request_is_refused_even_as_json(server: RunningServer) -> None:
    for site in ("cross-site", "same-site"):
        reply = httpx.post(server.url + "api/index", json={}, headers={"Sec-Fetch-Site": site}, timeout=60)
        assert reply.status_code == 403
    assert httpx.get(server.url + "api/status", headers={"Sec-Fetch-Site": "same-origin"},
                     timeout=60).status_code == 200


def test_a_rebound_dns_name_is_refused(server: RunningServer) -> None:
    # A page on evil.example whose name now resolves to 127.0.0.1 is "same-origin" with itself.
    reply = httpx.get(server.url + "api/status", headers={"Host": "evil.example:8765"}, timeout=60)
    assert reply.status_code == 403
    assert httpx.get(server.url + "api/status", headers={"Host": "localhost"}, timeout=60).status_code == 200
