"""`rag doctor` past one machine: every Ollama host checked (the one that embeds differently is named),
and a Chroma server checked (answers, transport) with the index read from it."""

from __future__ import annotations

import dataclasses
import json
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chroma_server import ChromaServer
from click.testing import CliRunner, Result

from rag import RAG
from rag.cli import cli
from rag.cli.doctor import check_chroma_security, check_host_security
from rag.server import HashEngine, OllamaServer
from rag.server.catalog import DEFAULT_CATALOG

Factory = Callable[..., OllamaServer]


def rag(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="rag")


def doctor_json(*args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    result = rag("doctor", *args, "--json")
    assert "Traceback" not in result.output, result.output
    data = json.loads(result.stdout)
    return result.exit_code, {c["name"]: c for c in data["checks"]}


def down_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def catalog_with(**nomic_changes: Any) -> tuple[Any, ...]:
    """The default catalog, with nomic-embed-text changed (or removed when ``remove=True``)."""
    remove = nomic_changes.pop("remove", False)
    out = []
    for spec in DEFAULT_CATALOG:
        if spec.name.startswith("nomic-embed-text"):
            if remove:
                continue
            spec = dataclasses.replace(spec, **nomic_changes)
        out.append(spec)
    return tuple(out)


class ReversedEngine(HashEngine):
    """Another model behind the same name: vectors of the same dimension, pointing elsewhere."""

    def embed(self, model: str, texts: list[str], *, truncate: bool = True) -> tuple[list[list[float]], int]:
        vectors, tokens = super().embed(model, texts, truncate=truncate)
        return [list(reversed(v)) for v in vectors], tokens


@pytest.fixture(autouse=True)
def _here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the doctor's default ./.rag is per test


# -- several Ollama hosts -----------------------------------------------------------------------


def test_each_host_is_checked_and_the_one_with_another_dimension_is_named(ollama_server_factory: Factory) -> None:
    good = ollama_server_factory()
    other = ollama_server_factory(HashEngine(catalog=catalog_with(embedding_length=384)))
    code, checks = doctor_json("--host", f"{good.url},{other.url}")
    assert code == 1
    assert checks["host 1"]["status"] == "pass" and good.url in checks["host 1"]["detail"]
    assert "768 dimensions" in checks["host 1"]["detail"]
    assert checks["host 2"]["status"] == "pass" and "384 dimensions" in checks["host 2"]["detail"]
    same = checks["same embeddings"]
    assert same["status"] == "fail"
    assert same["detail"] == f"{other.url} gives 384-dimensional vectors, {good.url} gives 768"
    assert other.url in same["fix"] and good.url not in same["fix"]
    # each host really embedded the test text (Chinese included) through /api/embed
    for server in (good, other):
        sent = [r.json for r in server.requests if r.path == "/api/embed"]
        assert any("每台主机" in str(body["input"]) for body in sent)


def test_a_host_with_other_vectors_of_the_same_dimension_is_named(ollama_server_factory: Factory) -> None:
    odd = ollama_server_factory(ReversedEngine())  # listed first: the majority, not the order, decides
    first, second = ollama_server_factory(), ollama_server_factory()
    code, checks = doctor_json("--host", f"{odd.url},{first.url},{second.url}")
    assert code == 1
    assert [checks[f"host {n}"]["status"] for n in (1, 2, 3)] == ["pass", "pass", "pass"]
    same = checks["same embeddings"]
    assert same["status"] == "fail" and same["detail"].startswith(f"{odd.url} gives other vectors than {first.url}")
    assert "another model or version behind the name nomic-embed-text" in same["detail"]
    assert first.url not in same["fix"] and second.url not in same["fix"] and odd.url in same["fix"]


def test_hosts_that_agree_pass(ollama_server_factory: Factory) -> None:
    a, b = ollama_server_factory(), ollama_server_factory()
    code, checks = doctor_json("--host", f"{a.url},{b.url}")
    assert code == 0, checks
    assert checks["same embeddings"] == {
        "name": "same embeddings", "status": "pass", "fix": "",
        "detail": "all 2 embedding hosts give the same 768-dimensional vectors with nomic-embed-text",
    }
    assert checks["transport 2"]["status"] == "pass"  # every host's transport, not only the first's


def test_a_host_that_is_down_or_lacks_the_model_fails_naming_it(ollama_server_factory: Factory) -> None:
    good = ollama_server_factory()
    bare = ollama_server_factory(HashEngine(catalog=catalog_with(remove=True)))
    dead = down_url()
    code, checks = doctor_json("--host", f"{good.url},{bare.url},{dead}")
    assert code == 1
    assert checks["host 1"]["status"] == "pass"
    lacking = checks["host 2"]
    assert lacking["status"] == "fail" and bare.url in lacking["detail"] and "nomic-embed-text" in lacking["detail"]
    assert "rag models pull nomic-embed-text" in lacking["fix"]
    down = checks["host 3"]
    assert down["status"] == "fail" and f"not reachable at {dead}" in down["detail"]
    # only one host could embed: nothing to compare, and the doctor says why instead of passing
    assert checks["same embeddings"]["status"] == "warn" and "1 of 3" in checks["same embeddings"]["detail"]


def test_split_roles_check_each_model_on_its_own_hosts(
    ollama_server_factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpu1, gpu2 = ollama_server_factory(), ollama_server_factory()
    chat = ollama_server_factory(HashEngine(catalog=catalog_with(remove=True)))  # no embedding model there
    monkeypatch.setenv("OLLAMA_HOST", chat.url)
    monkeypatch.setenv("RAG_EMBED_HOSTS", f"{gpu1.url},{gpu2.url}")
    monkeypatch.setenv("RAG_CHAT_HOSTS", chat.url)
    code, checks = doctor_json()
    assert code == 0, checks
    assert "(embedding)" in checks["host 1"]["detail"] and "(embedding)" in checks["host 2"]["detail"]
    assert checks["host 3"]["detail"].startswith(f"{chat.url} (chat)")
    assert checks["embedding model"]["status"] == "pass"  # asked of gpu1, not of the chat host
    assert not any(r.path == "/api/embed" for r in chat.requests)


# -- a Chroma server ----------------------------------------------------------------------------


def test_doctor_reads_the_index_from_the_chroma_server(
    chroma_server: ChromaServer, ollama_server: OllamaServer, tmp_path: Path
) -> None:
    collection = f"doctor-{uuid.uuid4().hex[:8]}"
    store = ("--chroma", chroma_server.url, "--collection", collection, "--host", ollama_server.url)
    code, before = doctor_json(*store, "--db", str(tmp_path / "empty"))
    assert before["chroma"]["status"] == "pass" and f"no collection {collection} yet" in before["chroma"]["detail"]
    assert before["chroma transport"]["status"] == "pass" and "loopback" in before["chroma transport"]["detail"]
    assert before["index"]["status"] == "warn" and chroma_server.url in before["index"]["detail"]

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "说明.md").write_text("# 安装\n\n检索增强生成先检索文档，再让模型回答。\n", encoding="utf-8")
    with RAG(db=tmp_path / "writer", collection=collection, host=ollama_server.url, chroma=chroma_server.url) as kb:
        assert kb.index(docs).added == ["说明.md"]

    # another machine: an empty local folder, everything read from the server
    code, after = doctor_json(*store, "--db", str(tmp_path / "laptop"))
    assert code == 0, after
    assert after["chroma"]["detail"].endswith(f"collection {collection}")
    assert after["index"]["status"] == "pass" and "nomic-embed-text" in after["index"]["detail"]
    assert after["dimension"]["status"] == "pass"
    # the chunks themselves were read from the server: a Chinese index with an English-centred model
    assert after["language"]["status"] == "warn" and "of the indexed text is Chinese" in after["language"]["detail"]
    assert "bge-m3" in after["language"]["fix"]


def test_a_chroma_server_that_is_down_fails_once(ollama_server: OllamaServer, tmp_path: Path) -> None:
    url = down_url()
    code, checks = doctor_json("--chroma", url, "--host", ollama_server.url, "--db", str(tmp_path / "db"))
    assert code == 1
    assert checks["chroma"]["status"] == "fail" and url in checks["chroma"]["detail"]
    assert "chroma run" in checks["chroma"]["detail"] + checks["chroma"]["fix"]  # the fix is named
    assert "index" not in checks  # one line says the server is down, not two


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("http://127.0.0.1:8000", "pass"),
        ("http://localhost:8000", "pass"),
        ("https://chroma.example.com", "pass"),
        ("http://10.0.0.5:8000", "warn"),
        ("http://index-box:8000", "warn"),
    ],
)
def test_a_plain_http_chroma_url_gets_the_ollama_warning(url: str, status: str) -> None:
    check = check_chroma_security(url, None)
    ollama = check_host_security(url)
    assert check.status == ollama.status == status
    if status == "warn":  # the same rule and the same opening words as for a plain-http Ollama
        assert check.detail.startswith(f"{url} is neither loopback nor https: ")
        assert ollama.detail.startswith(f"{url} is neither loopback nor https: ")
        assert "travels in clear" in check.detail and "https" in check.fix and "RAG_CHROMA_TOKEN" in check.fix
        with_token = check_chroma_security(url, "s3cret")
        assert "token (RAG_CHROMA_TOKEN)" in with_token.detail and "s3cret" not in with_token.detail


def test_chroma_credentials_in_the_url_are_never_shown() -> None:
    check = check_chroma_security("http://me:s3cret@10.0.0.5:8000", None)
    assert check.status == "warn" and "s3cret" not in check.detail and "10.0.0.5:8000" in check.detail
