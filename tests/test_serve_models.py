"""Every knowledge base as a model: the official `ollama` and `openai` SDKs talking to `rag serve`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import ollama
import openai
import pytest
from readpath import requests_to
from serve_support import served

from rag.serve import RunningServer
from rag.server import OllamaServer

WARRANTY = "How long is the dishwasher warranty?"
FINE_TUNING_ZH = "微调需要什么计算资源？"


@pytest.fixture(scope="module")
def bundled() -> Iterator[OllamaServer]:
    with OllamaServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def server(bundled: OllamaServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with served(bundled, tmp_path_factory.mktemp("models")) as srv:
        yield srv


@pytest.fixture
def client(server: RunningServer) -> Iterator[ollama.Client]:
    with ollama.Client(host=server.url.rstrip("/")) as c:
        yield c


@pytest.fixture
def oai(server: RunningServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url + "v1", api_key="unused") as c:
        yield c


# -- the Ollama API ------------------------------------------------------------------------------------


def test_tags_list_each_collection_as_a_model(client: ollama.Client) -> None:
    assert [m.model for m in client.list().models] == ["rag/docs"]
    assert client.show("rag/docs").capabilities == ["completion"]


def test_ollama_chat_streams_the_answer_with_markers_and_a_sources_footer(
    client: ollama.Client, bundled: OllamaServer
) -> None:
    bundled.clear_requests()
    parts = list(client.chat(model="rag/docs", messages=[{"role": "user", "content": WARRANTY}], stream=True))
    text = "".join(p.message.content or "" for p in parts)
    assert len(parts) > 3 and parts[-1].done and parts[-1].done_reason == "stop"
    answer, footer = text.split("\n\nSources:\n")
    assert "two years" in answer and "[1]" in answer
    assert footer.splitlines()[0] == "[1] manual.pdf, page 2"
    # The configured chat model on the configured Ollama answered it.
    assert requests_to(bundled, "/api/chat")[-1]["model"] == "qwen2.5:7b"


def test_ollama_chat_in_chinese_not_streamed(client: ollama.Client) -> None:
    reply = client.chat(model="rag/docs", messages=[{"role": "user", "content": FINE_TUNING_ZH}], stream=False)
    assert "显卡" in (reply.message.content or "") and "[1] zh/微调.md — 微调" in (reply.message.content or "")


def test_ollama_chat_history_makes_a_follow_up(client: ollama.Client, bundled: OllamaServer) -> None:
    bundled.clear_requests()
    messages = [{"role": "system", "content": "ignored: rag has its own instructions"},
                {"role": "user", "content": WARRANTY},
                {"role": "assistant", "content": "Two years from the date of purchase."},
                {"role": "user", "content": "What proof of purchase should I keep?"}]
    reply = client.chat(model="rag/docs", messages=messages, stream=False)
    assert "Sources:\n[1] manual.pdf, page 2" in (reply.message.content or "")
    chats = requests_to(bundled, "/api/chat")
    assert "standalone" in chats[0]["messages"][0]["content"]
    assert chats[-1]["messages"][1]["content"] == WARRANTY


def test_ollama_generate_streams_in_ollamas_wire_format(client: ollama.Client) -> None:
    parts = list(client.generate(model="rag/docs", prompt=WARRANTY, stream=True))
    text = "".join(p.response for p in parts)
    assert parts[-1].done and "two years" in text and "Sources:\n[1] manual.pdf, page 2" in text


def test_the_final_ndjson_line_has_citations(server: RunningServer) -> None:
    body = {"model": "rag/docs", "messages": [{"role": "user", "content": WARRANTY}]}
    with httpx.stream("POST", server.url + "api/chat", json=body, timeout=60) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert all(not line["done"] for line in lines[:-1]) and lines[-1]["done"] is True
    citations = lines[-1]["citations"]
    assert (citations[0]["n"], citations[0]["source"], citations[0]["page"]) == (1, "manual.pdf", 2)


def test_an_unknown_model_is_404_naming_the_served_ones(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="qwen2.5:7b", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 404 and "rag/docs" in str(err.value.error)


def test_an_ollama_failure_mid_answer_is_an_error_line(client: ollama.Client, bundled: OllamaServer) -> None:
    bundled.stream_error_after = 2
    try:
        with pytest.raises(ollama.ResponseError) as err:
            list(client.chat(model="rag/docs", messages=[{"role": "user", "content": WARRANTY}], stream=True))
    finally:
        bundled.stream_error_after = None
    assert "mid-stream" in str(err.value.error)


# -- the OpenAI API ------------------------------------------------------------------------------------


def test_openai_models_list_the_collections(oai: openai.OpenAI) -> None:
    assert [m.id for m in oai.models.list()] == ["rag/docs"]
    assert oai.models.retrieve("rag/docs").owned_by == "rag"


def test_openai_chat_completion_with_citations(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="rag/docs", messages=[{"role": "user", "content": WARRANTY}])
    content = reply.choices[0].message.content or ""
    assert "two years" in content and "[1]" in content and content.endswith("[1] manual.pdf, page 2")
    assert reply.choices[0].finish_reason == "stop"
    citations = (reply.model_extra or {})["citations"]
    assert citations[0]["source"] == "manual.pdf" and citations[0]["page"] == 2


def test_openai_streaming_in_chinese(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(
        model="rag/docs", messages=[{"role": "user", "content": FINE_TUNING_ZH}], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "显卡" in text and "Sources:\n[1] zh/微调.md" in text
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert (chunks[-1].model_extra or {})["citations"][0]["source"] == "zh/微调.md"


def test_openai_unknown_model_is_not_found(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_async_sdk_clients_work_too(server: RunningServer) -> None:
    import asyncio

    async def ask() -> str:
        async with ollama.AsyncClient(host=server.url.rstrip("/")) as client:
            pieces = [p.message.content or "" async for p in await client.chat(
                model="rag/docs", messages=[{"role": "user", "content": WARRANTY}], stream=True)]
        return "".join(pieces)

    assert "two years" in asyncio.run(ask())


def test_a_second_collection_is_a_second_model(server: RunningServer, bundled: OllamaServer, tmp_path: Path,
                                               client: ollama.Client) -> None:
    from ingest.indexer import index_folder
    from rag.config import Settings

    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "bread.md").write_text("# Bread\n\nBake the sourdough bread at 230 degrees for forty minutes.\n",
                                     encoding="utf-8")
    db = server.config.db
    assert db is not None
    index_folder(folder, Settings.resolve(host=bundled.url, db=db, collection="recipes").index)
    assert [m.model for m in client.list().models] == ["rag/docs", "rag/recipes"]
    reply = client.chat(model="rag/recipes", messages=[{"role": "user", "content": "How hot is the sourdough baked?"}])
    assert "230 degrees" in (reply.message.content or "") and "[1] bread.md — Bread" in (reply.message.content or "")


def test_version_is_rags_own(server: RunningServer) -> None:
    from importlib.metadata import version

    assert httpx.get(server.url + "api/version", timeout=60).json() == {"version": version("folder-rag")}
