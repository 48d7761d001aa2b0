"""`rag index` and `rag status` from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from rag.cli import cli

REPORT_KEYS = {"added", "updated", "unchanged", "removed", "skipped", "chunks", "embed_requests", "seconds"}


def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Alpha\n\nThe alpha service listens on port 8080.\n")
    (docs / "b.txt").write_text("向量数据库保存文本的嵌入向量。\n")
    (docs / "junk.bin").write_bytes(bytes(range(256)) * 8)
    return docs


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_index_json_report_has_the_documented_keys(ollama_server, tmp_path):
    docs = folder(tmp_path)
    result = run("index", str(docs), "--db", str(tmp_path / "db"), "--host", ollama_server.url, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert REPORT_KEYS <= set(report)
    assert sorted(report["added"]) == ["a.md", "b.txt"]
    assert report["skipped"] == [{"path": "junk.bin", "reason": report["skipped"][0]["reason"]}]
    assert report["skipped"][0]["reason"]
    assert report["chunks"] == 2 and report["embed_requests"] >= 1


def test_index_text_report_and_status(ollama_server, tmp_path):
    docs = folder(tmp_path)
    db = str(tmp_path / "db")
    result = run("index", str(docs), "--db", db, "--host", ollama_server.url, "--embed-model", "all-minilm")
    assert result.exit_code == 0
    assert "added 2, updated 0, unchanged 0, removed 0, skipped 1" in result.stdout
    assert "junk.bin: binary file" in result.stdout
    status = run("status", "--db", db, "--json")
    data = json.loads(status.stdout)
    assert data["files"] == 2 and data["chunks"] == 2
    assert data["fingerprint"]["embed_model"] == "all-minilm" and data["fingerprint"]["dimension"] == 384
    text = run("status", "--db", db).stdout
    assert "chunks     2" in text


def test_second_cli_run_reports_everything_unchanged(ollama_server, tmp_path):
    docs = folder(tmp_path)
    args = ("index", str(docs), "--db", str(tmp_path / "db"), "--host", ollama_server.url, "--json")
    run(*args)
    again = json.loads(run(*args).stdout)
    assert again["embed_requests"] == 0 and sorted(again["unchanged"]) == ["a.md", "b.txt"]


def test_host_comes_from_ollama_host(ollama_server, tmp_path):
    docs = folder(tmp_path)
    result = run("index", str(docs), "--db", str(tmp_path / "db"), "--json", env={"OLLAMA_HOST": ollama_server.url})
    assert result.exit_code == 0
    assert any(r.path == "/api/embed" for r in ollama_server.requests)


def test_unknown_embedding_model_fails_fast_with_the_fix(ollama_server, tmp_path):
    docs = folder(tmp_path)
    result = run("index", str(docs), "--db", str(tmp_path / "db"), "--host", ollama_server.url,
                 "--embed-model", "no-such-embedder")
    assert result.exit_code == 4
    assert "rag models pull no-such-embedder" in result.stderr
    assert not any(r.path == "/api/embed" for r in ollama_server.requests)


def test_pull_flag_pulls_a_missing_embedder(ollama_server, tmp_path):
    docs = folder(tmp_path)
    result = run("index", str(docs), "--db", str(tmp_path / "db"), "--host", ollama_server.url,
                 "--embed-model", "bge-m3", "--pull", "--json")
    assert result.exit_code == 0, result.stderr
    assert any(r.path == "/api/pull" for r in ollama_server.requests)


def test_chat_model_as_embedder_is_refused(ollama_server, tmp_path):
    result = run("index", str(folder(tmp_path)), "--db", str(tmp_path / "db"), "--host", ollama_server.url,
                 "--embed-model", "qwen2.5:7b")
    assert result.exit_code == 4 and "qwen2.5:7b" in result.stderr


def test_model_mismatch_exits_5_with_rebuild_hint(ollama_server, tmp_path):
    docs = folder(tmp_path)
    db = str(tmp_path / "db")
    run("index", str(docs), "--db", db, "--host", ollama_server.url)
    result = run("index", str(docs), "--db", db, "--host", ollama_server.url, "--embed-model", "all-minilm")
    assert result.exit_code == 5
    assert "--rebuild" in result.stderr and "nomic-embed-text" in result.stderr
    rebuilt = run("index", str(docs), "--db", db, "--host", ollama_server.url, "--embed-model", "all-minilm",
                  "--rebuild", "--json")
    assert rebuilt.exit_code == 0 and len(json.loads(rebuilt.stdout)["added"]) == 2


def test_status_without_an_index_says_how_to_make_one(tmp_path):
    result = run("status", "--db", str(tmp_path / "nothing"))
    assert result.exit_code == 5 and "rag index" in result.stderr


def test_server_down_is_one_line_without_traceback(tmp_path):
    """A real subprocess: the exit status and stderr a user's script would see."""
    env = {**os.environ, "RAG_READ_TIMEOUT": "5", "OLLAMA_HOST": "http://127.0.0.1:9"}
    proc = subprocess.run(
        [sys.executable, "-m", "rag", "index", str(folder(tmp_path)), "--db", str(tmp_path / "db")],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [
        "error: Ollama is not reachable at http://127.0.0.1:9 — start it (`ollama serve`) or set OLLAMA_HOST"
    ]
