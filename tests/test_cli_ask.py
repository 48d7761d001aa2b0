"""`rag ask`, `rag search` and `rag chat` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from readpath import indexed_settings, requests_to

from rag.answer import NO_ANSWER_EN
from rag.cli import cli
from rag.cli.output import EXIT_INDEX


@pytest.fixture
def where(ollama_server, tmp_path) -> list[str]:
    settings = indexed_settings(ollama_server, tmp_path)
    return ["--db", str(settings.db), "--host", ollama_server.url]


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_ask_json_has_the_documented_keys(where: list[str]) -> None:
    result = run("ask", "How long is the dishwasher warranty?", *where, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert {"answer", "citations", "contexts", "model", "timings"} <= set(out)
    assert set(out["citations"][0]) == {"n", "source", "page", "heading", "snippet"}
    assert {"source", "page", "score", "text"} <= set(out["contexts"][0])
    assert set(out["timings"]) == {"retrieval", "first_token", "total"}
    assert (out["citations"][0]["source"], out["citations"][0]["page"]) == ("manual.pdf", 2)
    assert out["model"] == "qwen2.5:7b"


def test_ask_prints_the_answer_then_its_sources(where: list[str]) -> None:
    result = run("ask", "How long is the dishwasher warranty?", *where)
    assert result.exit_code == 0, result.output
    assert "two years" in result.stdout
    assert "Sources:\n  [1] manual.pdf, page 2" in result.stdout


def test_ask_options_model_k_no_stream_show_context(ollama_server, where: list[str]) -> None:
    result = run("ask", "微调需要什么计算资源？", *where, "--model", "llama3.2:1b", "--k", "2", "--no-stream",
                 "--show-context")
    assert result.exit_code == 0, result.output
    assert "zh/微调.md" in result.stdout and "Context:\n1. " in result.stdout
    body = requests_to(ollama_server, "/api/chat")[-1]
    assert body["model"] == "llama3.2:1b"
    assert body["messages"][-1]["content"].count("\n<passage n=") == 2  # --k 2: two passages


def test_ask_filters(where: list[str]) -> None:
    result = run("ask", "How long is the dishwasher warranty?", *where, "--type", "md", "--json")
    assert all(c["source"].endswith(".md") for c in json.loads(result.stdout)["contexts"])
    result = run("ask", "How long is the dishwasher warranty?", *where, "--path", "*.pdf", "--json")
    assert {c["source"] for c in json.loads(result.stdout)["contexts"]} == {"manual.pdf"}


def test_ask_without_an_answer(ollama_server, where: list[str]) -> None:
    result = run("ask", "What is the capital of France?", *where)
    assert result.exit_code == 0
    assert result.stdout.strip() == NO_ANSWER_EN
    assert requests_to(ollama_server, "/api/chat") == []


def test_search_json_and_text(where: list[str]) -> None:
    result = run("search", "dishwasher warranty", *where, "--k", "3", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["query"] == "dishwasher warranty" and len(out["hits"]) == 3
    assert {"source", "page", "heading", "score", "text"} <= set(out["hits"][0])
    assert out["hits"][0]["page"] == 2
    text = run("search", "dishwasher warranty", *where, "--mode", "bm25").stdout
    assert text.startswith("1. ") and "manual.pdf, page 2" in text.splitlines()[0]


def test_search_with_no_match_explains_on_stderr(where: list[str]) -> None:
    result = run("search", "What is the capital of France?", *where)
    assert result.exit_code == 0 and result.stdout == ""
    assert "no passages matched" in result.stderr


def test_chat_sources_reset_and_eof(ollama_server, where: list[str]) -> None:
    script = "How long is the dishwasher warranty?\n/sources\nwhat about the filter?\n/reset\n/sources\n"
    result = run("chat", *where, input=script)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "two years" in out
    assert out.count("Sources:\n  [1] manual.pdf, page 2") >= 2  # after the answer, and for /sources
    assert "(no sources yet)" in out  # /sources after /reset
    assert "history cleared" in result.stderr
    rewrites = [b for b in requests_to(ollama_server, "/api/chat") if "standalone" in b["messages"][0]["content"]]
    assert len(rewrites) == 1


def test_chat_exit_command(where: list[str]) -> None:
    result = run("chat", *where, input="/exit\nHow long is the dishwasher warranty?\n")
    assert result.exit_code == 0 and result.stdout == ""


def test_missing_index_is_an_index_error(ollama_server, tmp_path: Path) -> None:
    result = run("ask", "anything?", "--db", str(tmp_path / "none"), "--host", ollama_server.url)
    assert result.exit_code == EXIT_INDEX
    assert "rag index" in result.stderr


def test_ask_with_a_missing_chat_model_fails_fast(ollama_server, where: list[str]) -> None:
    ollama_server.clear_requests()
    result = run("ask", "How long is the dishwasher warranty?", *where, "--model", "nonexistent:1b")
    assert result.exit_code == 4
    assert result.stderr.strip() == (
        f"error: model nonexistent:1b is not available on {ollama_server.url} — run "
        "`rag models pull nonexistent:1b` (or add --pull)"
    )
    assert requests_to(ollama_server, "/api/chat") == [] and requests_to(ollama_server, "/api/embed") == []


def test_ask_with_an_embedding_model_as_chat_model_is_refused(ollama_server, where: list[str]) -> None:
    result = run("ask", "How long is the dishwasher warranty?", *where, "--model", "all-minilm")
    assert result.exit_code == 4
    assert "embedding model and cannot chat" in result.stderr and "Traceback" not in result.output
    assert requests_to(ollama_server, "/api/chat") == []


def test_ask_pull_fetches_a_missing_chat_model(ollama_server, where: list[str]) -> None:
    result = run("ask", "How long is the dishwasher warranty?", *where, "--model", "qwen2.5:0.5b", "--pull",
                 "--json")
    assert result.exit_code == 0, result.stderr
    assert requests_to(ollama_server, "/api/pull")[0]["model"] == "qwen2.5:0.5b"
    assert json.loads(result.stdout)["model"] == "qwen2.5:0.5b"
