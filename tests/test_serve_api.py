"""`rag serve`'s page API: /api/ask (JSON and SSE), /api/search, /api/status, /api/index."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from readpath import requests_to
from serve_support import ObservedServer, served, wait_until

from ingest.indexer import open_store
from ingest.lock import WriterLock
from rag.answer import NO_ANSWER_EN
from rag.cli import cli
from rag.config import Settings
from rag.serve import RunningServer, ServeConfig, running

WARRANTY = "How long is the dishwasher warranty?"
FINE_TUNING_ZH = "微调需要什么计算资源？"


@pytest.fixture
def server(ollama_server, tmp_path: Path) -> Iterator[RunningServer]:
    with served(ollama_server, tmp_path) as srv:
        yield srv


def events(response: httpx.Response) -> list[tuple[str, Any]]:
    """The (event, data) pairs of an SSE response."""
    out: list[tuple[str, Any]] = []
    name = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            out.append((name, json.loads(line[len("data: "):])))
    return out


def sse_post(url: str, body: dict[str, Any]) -> list[tuple[str, Any]]:
    with httpx.stream("POST", url, json=body, headers={"Accept": "text/event-stream"}, timeout=60) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return events(response)


# -- ask -----------------------------------------------------------------------------------------------


def test_ask_json_has_the_keys_of_rag_ask_json(server: RunningServer, ollama_server, tmp_path: Path) -> None:
    reply = httpx.post(server.url + "api/ask", json={"question": WARRANTY}, timeout=60)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    cli_out = CliRunner().invoke(cli, ["ask", WARRANTY, "--db", str(tmp_path / "db"), "--host", ollama_server.url,
                                       "--json"])
    assert cli_out.exit_code == 0, cli_out.output
    assert set(answer) == set(json.loads(cli_out.stdout))
    assert "two years" in answer["answer"]
    assert (answer["citations"][0]["source"], answer["citations"][0]["page"]) == ("manual.pdf", 2)
    assert set(answer["citations"][0]) == {"n", "source", "page", "heading", "snippet"}


def test_ask_streams_contexts_then_pieces_then_the_answer_in_chinese(server: RunningServer) -> None:
    got = sse_post(server.url + "api/ask", {"question": FINE_TUNING_ZH})
    names = [name for name, _ in got]
    assert names[0] == "contexts" and names[-1] == "answer"
    assert names.count("piece") >= 2 and set(names[1:-1]) == {"piece"}
    contexts = got[0][1]["contexts"]
    assert contexts[0]["n"] == 1 and contexts[0]["source"] == "zh/微调.md"
    answer = got[-1][1]
    assert "".join(data["text"] for name, data in got if name == "piece").strip() == answer["answer"]
    assert "显卡" in answer["answer"] and "[1]" in answer["answer"]
    assert answer["citations"][0]["source"] == "zh/微调.md"


def test_ask_filters_k_and_type_and_path(server: RunningServer, ollama_server) -> None:
    tomato = "How often should tomato plants be watered?"
    by_type = httpx.post(server.url + "api/ask", json={"question": tomato, "type": ["md"]}, timeout=60).json()
    assert by_type["contexts"] and all(c["source"].endswith(".md") for c in by_type["contexts"])
    as_text = httpx.post(server.url + "api/ask", json={"question": tomato, "type": "txt"}, timeout=60).json()
    assert all(c["source"] == "notes.txt" for c in as_text["contexts"])
    by_path = httpx.post(server.url + "api/ask", json={"question": WARRANTY, "path": "*.pdf", "k": 2},
                         timeout=60).json()
    assert {c["source"] for c in by_path["contexts"]} == {"manual.pdf"}
    assert len(by_path["contexts"]) <= 2


def test_ask_with_history_is_a_follow_up(server: RunningServer, ollama_server) -> None:
    history = [{"role": "user", "content": "How long is the dishwasher warranty?"},
               {"role": "assistant", "content": "Two years from the date of purchase."}]
    reply = httpx.post(server.url + "api/ask", json={"question": "What proof do I need to keep?",
                                                    "history": history}, timeout=60)
    assert reply.status_code == 200, reply.text
    chats = requests_to(ollama_server, "/api/chat")
    assert "standalone" in chats[0]["messages"][0]["content"]  # the rewrite call
    answer_messages = chats[-1]["messages"]
    assert [m["content"] for m in answer_messages[1:3]] == [h["content"] for h in history]
    assert "receipt" in reply.json()["answer"]


def test_ask_without_an_answer_in_the_documents(server: RunningServer, ollama_server) -> None:
    reply = httpx.post(server.url + "api/ask", json={"question": "What is the capital of France?"}, timeout=60)
    assert reply.json()["answer"] == NO_ANSWER_EN and reply.json()["citations"] == []
    assert requests_to(ollama_server, "/api/chat") == []


@pytest.mark.parametrize(
    ("body", "named"),
    [({}, "question"), ({"question": "  "}, "question"), ({"question": "x", "k": 0}, "'k'"),
     ({"question": "x", "k": "many"}, "'k'"), ({"question": "x", "history": [{"role": "system"}]}, "history"),
     ({"question": "x", "type": "exe"}, "exe")],
)
def test_ask_bad_bodies_are_400_naming_the_field(server: RunningServer, body: dict[str, Any], named: str) -> None:
    reply = httpx.post(server.url + "api/ask", json=body, timeout=60)
    assert reply.status_code == 400
    assert named in reply.json()["error"]


def test_ask_when_ollama_is_down_is_a_502_naming_the_host(ollama_server, tmp_path: Path) -> None:
    with served(ollama_server, tmp_path) as srv:
        ollama_server.stop()
        reply = httpx.post(srv.url + "api/ask", json={"question": WARRANTY}, timeout=60)
    assert reply.status_code == 502
    assert reply.json()["type"] == "OllamaUnreachable" and ollama_server.url in reply.json()["error"]


# -- search and status -----------------------------------------------------------------------------------


def test_search_is_the_object_of_rag_search_json(server: RunningServer) -> None:
    reply = httpx.get(server.url + "api/search", params={"q": "dishwasher warranty", "k": 3}, timeout=60)
    assert reply.status_code == 200
    out = reply.json()
    assert out["query"] == "dishwasher warranty" and len(out["hits"]) == 3
    assert {"source", "page", "heading", "score", "text", "id"} == set(out["hits"][0])
    assert out["hits"][0]["page"] == 2
    zh = httpx.get(server.url + "api/search", params={"q": "检索增强生成", "type": "md"}, timeout=60).json()
    assert zh["hits"][0]["source"] == "zh/rag.md"
    assert httpx.get(server.url + "api/search", timeout=60).status_code == 400


def test_status_reports_the_index_and_the_model(server: RunningServer, tmp_path: Path) -> None:
    status = httpx.get(server.url + "api/status", timeout=60).json()
    assert status["indexed"] is True and status["files"] == 6 and status["chunks"] > 6
    assert status["root"] == str((tmp_path / "docs").resolve())
    assert status["model"] == "qwen2.5:7b" and status["fingerprint"]["embed_model"] == "nomic-embed-text"
    assert status["collections"] == ["docs"] and status["syncing"] is False
    assert status["skipped"] == []


def test_status_of_an_empty_folder_says_it_is_not_indexed(tmp_path: Path) -> None:
    with running(ServeConfig(db=str(tmp_path / "none"))) as srv:
        status = httpx.get(srv.url + "api/status", timeout=60).json()
    assert status["indexed"] is False and status["files"] == 0 and "rag index" in status["error"]


def test_status_lists_skipped_files_with_reasons(ollama_server, tmp_path: Path, server: RunningServer) -> None:
    (tmp_path / "docs" / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    done = sse_post(server.url + "api/index", {})[-1]
    assert done[0] == "done"
    skipped = httpx.get(server.url + "api/status", timeout=60).json()["skipped"]
    assert [s["path"] for s in skipped] == ["broken.pdf"] and skipped[0]["reason"]


# -- index ---------------------------------------------------------------------------------------------


def test_index_streams_progress_to_100_percent_then_the_report(server: RunningServer, tmp_path: Path) -> None:
    (tmp_path / "docs" / "guide.md").write_text("# Garden guide\n\nMulch keeps the soil moist.\n", encoding="utf-8")
    (tmp_path / "docs" / "新.md").write_text("# 新文件\n\n堆肥需要翻动。\n", encoding="utf-8")
    got = sse_post(server.url + "api/index", {})
    progress = [data for name, data in got if name == "progress"]
    assert progress and progress[-1]["percent"] == 100.0 and progress[-1]["eta"] == 0.0
    assert {"files_done", "files_total", "chunks", "current", "elapsed", "eta"} <= set(progress[0])
    name, report = got[-1]
    assert name == "done"
    assert report["updated"] == ["guide.md"] and report["added"] == ["新.md"]
    found = httpx.get(server.url + "api/search", params={"q": "mulch soil"}, timeout=60).json()["hits"]
    assert found[0]["source"] == "guide.md"  # reads after the sync see it


def test_index_without_sse_returns_the_report(server: RunningServer) -> None:
    reply = httpx.post(server.url + "api/index", json={}, timeout=60)
    assert reply.status_code == 200 and len(reply.json()["unchanged"]) == 6


def test_a_second_sync_while_one_runs_is_409(tmp_path: Path) -> None:
    with ObservedServer() as ollama, served(ollama, tmp_path) as srv:
        (tmp_path / "docs" / "extra.md").write_text("# Extra\n\nOne more file.\n", encoding="utf-8")
        ollama.gated_paths = {"/api/embed"}
        ollama.gate.clear()  # the first sync waits for its embeddings until the test lets it go on
        result: list[tuple[str, Any]] = []

        def first_sync() -> None:
            with httpx.stream("POST", srv.url + "api/index", json={}, headers={"Accept": "text/event-stream"},
                              timeout=120) as response:
                if response.status_code != 200:
                    result.append(("http", (response.status_code, response.read())))
                result.extend(events(response))

        thread = threading.Thread(target=first_sync)
        thread.start()
        wait_until(lambda: httpx.get(srv.url + "api/status", timeout=60).json()["syncing"] or not thread.is_alive(),
                   "the sync started")
        assert thread.is_alive(), result
        second = httpx.post(srv.url + "api/index", json={}, timeout=60)
        ollama.gate.set()
        thread.join(120)
        after = httpx.get(srv.url + "api/status", timeout=60).json()
    assert second.status_code == 409 and "already running" in second.json()["error"]
    assert result[-1][0] == "done" and result[-1][1]["added"] == ["extra.md"]
    assert after["syncing"] is False and after["files"] == 7


def test_index_while_another_process_holds_the_writer_lock_is_409(ollama_server, tmp_path: Path) -> None:
    with served(ollama_server, tmp_path) as srv:
        settings = Settings.resolve(host=ollama_server.url, db=tmp_path / "db").index
        with WriterLock(open_store(settings), wait=0):
            reply = httpx.post(srv.url + "api/index", json={}, timeout=60)
    assert reply.status_code == 409
    assert reply.json()["type"] == "IndexLocked" and "being indexed by process" in reply.json()["error"]


def test_index_before_any_index_is_409_naming_rag_index(tmp_path: Path) -> None:
    with running(ServeConfig(db=str(tmp_path / "none"))) as srv:
        reply = httpx.post(srv.url + "api/index", json={}, timeout=60)
    assert reply.status_code == 409 and "rag index PATH" in reply.json()["error"]


def test_openapi_schema_lists_the_api(server: RunningServer) -> None:
    schema = httpx.get(server.url + "openapi.json", timeout=60).json()
    assert {"/api/ask", "/api/search", "/api/status", "/api/index", "/api/files/{path}"} <= set(schema["paths"])
    assert "/api/ask" in httpx.get(server.url + "docs", timeout=60).text


def test_an_unknown_collection_is_refused_naming_the_indexed_ones(server: RunningServer) -> None:
    asked = httpx.post(server.url + "api/ask", json={"question": WARRANTY, "collection": "nope"}, timeout=60)
    status = httpx.get(server.url + "api/status", params={"collection": "nope"}, timeout=60)
    for reply in (asked, status):
        assert reply.status_code == 409 and "no collection 'nope'" in reply.json()["error"]
        assert "docs" in reply.json()["error"]
    assert httpx.get(server.url + "api/files/guide.md", params={"collection": "nope"}, timeout=60).status_code == 404
