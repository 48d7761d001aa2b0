"""`rag models ...` and `rag doctor` against the bundled server: output, exit codes, one-line errors."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ingest import ollama_calls
from ingest.store import Store
from rag.cli import cli
from rag.cli.doctor import (
    check_context,
    check_gpu,
    check_host_security,
    check_index_dimension,
    check_prefixes,
)
from rag.cli.progress import PullReporter
from rag.models_types import ModelDetails, PullProgress, RunningModel
from rag.server import OllamaServer

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("OLLAMA_HOST", "RAG_DB", "RAG_COLLECTION", "RAG_EMBED_MODEL", "RAG_CHAT_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # the doctor's default ./.rag is per test
    monkeypatch.setattr(ollama_calls, "RETRY_BASE_DELAY", 0.01)


def rag(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, prog_name="rag")


def _down_host() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def assert_one_line_error(result: Result, code: int, text: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], result.stderr
    assert "Traceback" not in result.output and result.stdout == ""


# -- rag models --------------------------------------------------------------------------------


def test_models_list(ollama_server: OllamaServer) -> None:
    result = rag("models", "list", "--host", ollama_server.url)
    assert result.exit_code == 0
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["NAME", "SIZE", "FAMILY", "PARAMS", "QUANT", "MODIFIED"]
    assert any(r.startswith("qwen2.5:7b") and "4.7 GB" in r and "Q4_K_M" in r for r in rows)


def test_models_list_json(ollama_server: OllamaServer) -> None:
    result = rag("models", "list", "--json", "--host", ollama_server.url)
    data = json.loads(result.stdout)
    assert data["host"] == ollama_server.url
    nomic = next(m for m in data["models"] if m["name"] == "nomic-embed-text:latest")
    assert nomic["family"] == "nomic-bert" and nomic["size"] == 274_302_450 and "T" in nomic["modified"]


def test_host_from_the_environment(ollama_server: OllamaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", ollama_server.url)
    assert rag("models", "list", "--json").exit_code == 0
    assert ollama_server.requests[-1].path == "/api/tags"


def test_models_show(ollama_server: OllamaServer) -> None:
    text = rag("models", "show", "nomic-embed-text", "--host", ollama_server.url).stdout
    assert "capabilities      embedding" in text and "embedding length  768" in text
    data = json.loads(rag("models", "show", "qwen2.5:7b", "--json", "--host", ollama_server.url).stdout)
    assert data["capabilities"] == ["completion", "tools"] and data["context_length"] == 32768


def test_models_pull_plain_progress(ollama_server: OllamaServer) -> None:
    result = rag("models", "pull", "qwen2.5:0.5b", "--host", ollama_server.url)
    assert result.exit_code == 0, result.output
    assert result.stdout == "pulled qwen2.5:0.5b\n"
    lines = result.stderr.splitlines()
    assert lines[0] == "pulling manifest" and lines[-1] == "success"
    assert any("/ 397.8 MB (100%" in line for line in lines)  # bytes on each layer line
    assert "qwen2.5:0.5b" in rag("models", "list", "--host", ollama_server.url).stdout


def test_models_pull_json(ollama_server: OllamaServer) -> None:
    result = rag("models", "pull", "gemma3:270m", "--json", "--host", ollama_server.url)
    assert json.loads(result.stdout) == {
        "host": ollama_server.url,
        "model": "gemma3:270m",
        "status": "success",
    }


def test_pull_reporter_draws_bars_with_bytes_and_speed() -> None:
    out = io.StringIO()
    reporter = PullReporter(out, tty=True)
    for done in (0, 10_000_000, 25_000_000):
        reporter(PullProgress("pulling abc", "sha256:abc", done, 25_000_000))
    reporter(PullProgress("success"))
    reporter.close()
    text = out.getvalue()
    assert "pulling abc" in text and "25.0M/25.0M" in text and "B/s" in text and "success" in text


def test_models_copy_then_delete(ollama_server: OllamaServer) -> None:
    host = ["--host", ollama_server.url]
    assert rag("models", "copy", "qwen2.5:7b", "mine", *host).stdout == "copied qwen2.5:7b to mine\n"
    refused = rag("models", "delete", "mine", *host, input="n\n")
    assert refused.exit_code == 1 and "delete mine from" in refused.stderr
    assert "mine:latest" in rag("models", "list", *host).stdout
    confirmed = rag("models", "delete", "mine", *host, input="y\n")
    assert confirmed.exit_code == 0 and confirmed.stdout == "deleted mine\n"
    assert "mine:latest" not in rag("models", "list", *host).stdout
    rag("models", "copy", "llama3.2:1b", "other", *host)
    result = rag("models", "delete", "other", "--yes", "--json", *host)
    assert json.loads(result.stdout)["status"] == "deleted" and result.stderr == ""


def test_models_ps(ollama_server_factory: Callable[..., OllamaServer]) -> None:
    srv = ollama_server_factory()
    assert rag("models", "ps", "--host", srv.url).stderr == "no model is loaded right now\n"
    with ollama_calls.open_client(srv.url) as sdk:
        sdk.embed(model="all-minilm", input=["x"])
    row = rag("models", "ps", "--host", srv.url).stdout.splitlines()[1]
    assert row.startswith("all-minilm:latest") and "100% CPU" in row and "in 5 minutes" in row
    data = json.loads(rag("models", "ps", "--json", "--host", srv.url).stdout)
    assert data["models"][0]["size_vram"] == 0 and data["models"][0]["context_length"]


def test_help_is_there() -> None:
    for command in (["models"], ["models", "pull"], ["models", "delete"], ["doctor"]):
        result = rag(*command, "--help")
        assert result.exit_code == 0 and "Usage: rag" in result.stdout
    assert "--yes" in rag("models", "delete", "--help").stdout


# -- error paths: one line on stderr, a meaningful exit status, no traceback -------------------


@pytest.mark.parametrize("command", [["list"], ["show", "x"], ["pull", "x"], ["copy", "a", "b"], ["ps"]])
def test_server_down(command: list[str]) -> None:
    host = _down_host()
    result = rag("models", *command, "--host", host)
    assert_one_line_error(result, 3, f"Ollama is not reachable at {host} — start it (`ollama serve`)")


def test_unknown_model(ollama_server: OllamaServer) -> None:
    host = ollama_server.url
    result = rag("models", "show", "nope:1b", "--host", host)
    assert_one_line_error(
        result, 4, f"model nope:1b is not available on {host} — run `rag models pull nope:1b`"
    )
    assert_one_line_error(rag("models", "delete", "nope", "--yes", "--host", host), 4, "rag models pull nope")
    result = rag("models", "pull", "nope:1b", "--host", host)
    assert result.exit_code == 4 and result.stderr.splitlines()[-1].startswith(
        "error: model nope:1b could not"
    )


class _BrokenPull(BaseHTTPRequestHandler):
    """Answers /api/pull like Ollama when a download dies: progress lines, then an error line."""

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        for line in (
            {"status": "pulling manifest"},
            {"status": "pulling abc", "digest": "sha256:abc", "total": 100, "completed": 40},
            {"error": "max retries exceeded: unexpected EOF"},
        ):
            self.wfile.write(json.dumps(line).encode() + b"\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def broken_pull_host() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BrokenPull)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_error_line_mid_stream(broken_pull_host: str) -> None:
    result = rag("models", "pull", "qwen2.5:0.5b", "--host", broken_pull_host)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"error: Ollama at {broken_pull_host} reported an error mid-stream: max retries exceeded: "
        "unexpected EOF — retry, or check the server log"
    )
    assert "Traceback" not in result.output and result.stdout == ""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("OLLAMA_HOST", None)
    return subprocess.run(
        [sys.executable, "-m", "rag", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
    )


def test_subprocess_models_list_json(ollama_server: OllamaServer) -> None:
    done = _run("models", "list", "--json", "--host", ollama_server.url)
    assert done.returncode == 0, done.stderr
    assert "qwen2.5:7b" in {m["name"] for m in json.loads(done.stdout)["models"]}


def test_subprocess_errors_are_one_line(ollama_server: OllamaServer) -> None:
    done = _run("models", "show", "nope", "--host", ollama_server.url)
    assert done.returncode == 4
    assert (
        done.stderr
        == f"error: model nope is not available on {ollama_server.url} — run `rag models pull nope`\n"
    )
    down = _run("models", "list", "--host", _down_host())
    assert down.returncode == 3 and len(down.stderr.splitlines()) == 1 and "Traceback" not in down.stderr


# -- rag doctor --------------------------------------------------------------------------------


def _fingerprint(tmp_path: Path, model: str, dimension: int, prefixes: tuple[str, str]) -> Path:
    db = tmp_path / "index"
    store = Store.open(db, "docs", create=True)
    store.set_fingerprint(
        {
            "embed_model": model,
            "dimension": dimension,
            "document_prefix": prefixes[0],
            "query_prefix": prefixes[1],
        }
    )
    return db


def test_doctor_healthy_without_an_index(ollama_server: OllamaServer) -> None:
    result = rag("doctor", "--host", ollama_server.url)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("PASS  server") and "Ollama 0.33" in lines[0]
    assert any(line.startswith("WARN  index") and "no index yet" in line for line in lines)
    assert "fix: run `rag index PATH`" in result.stdout
    assert "PASS  embedding model  nomic-embed-text: embedding; 768 dimensions" in result.stdout
    assert "PASS  chat model" in result.stdout and "PASS  prefixes" in result.stdout
    assert lines[-1].endswith("0 failed")


def test_doctor_healthy_with_an_index(
    ollama_server_factory: Callable[..., OllamaServer], tmp_path: Path
) -> None:
    srv = ollama_server_factory(gpu=True)
    db = _fingerprint(tmp_path, "nomic-embed-text:latest", 768, ("search_document: ", "search_query: "))
    with ollama_calls.open_client(srv.url) as sdk:
        sdk.chat(model="qwen2.5:7b", messages=[{"role": "user", "content": "hi"}])
    result = rag("doctor", "--host", srv.url, "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    statuses = {c["name"]: c["status"] for c in data["checks"]}
    assert data["ok"] is True and set(statuses.values()) == {"pass"}, data
    assert set(statuses) == {
        "server",
        "transport",
        "embedding model",
        "chat model",
        "index",
        "dimension",
        "context",
        "gpu",
        "prefixes",
    }
    context = next(c for c in data["checks"] if c["name"] == "context")
    assert context["detail"] == "qwen2.5:7b: trained context 32768, loaded with 4096"


def test_doctor_missing_chat_model_fails(ollama_server: OllamaServer) -> None:
    result = rag("doctor", "--host", ollama_server.url, "--model", "absent:1b")
    assert result.exit_code == 1
    assert f"FAIL  chat model       model absent:1b is not available on {ollama_server.url}" in result.stdout
    assert "fix: run `rag models pull absent:1b`" in result.stdout
    assert "Traceback" not in result.output


def test_doctor_embedding_model_as_chat_model(
    ollama_server: OllamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_CHAT_MODEL", "nomic-embed-text")
    result = rag("doctor", "--host", ollama_server.url, "--json")
    assert result.exit_code == 1
    chat = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "chat model")
    assert chat == {
        "name": "chat model",
        "status": "fail",
        "detail": "model nomic-embed-text is an embedding model and cannot chat",
        "fix": "use e.g. --model qwen2.5:7b",
    }


def test_doctor_index_built_with_another_model(ollama_server: OllamaServer, tmp_path: Path) -> None:
    db = _fingerprint(tmp_path, "all-minilm:latest", 384, ("", ""))
    result = rag("doctor", "--host", ollama_server.url, "--db", str(db), "--json")
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["index"]["status"] == "fail" and "--embed-model all-minilm:latest" in checks["index"]["fix"]
    assert checks["dimension"]["status"] == "fail" and "384" in checks["dimension"]["detail"]
    assert checks["prefixes"]["status"] == "warn"
    ok = rag("doctor", "--host", ollama_server.url, "--db", str(db), "--embed-model", "all-minilm")
    assert (
        ok.exit_code == 0
        and "WARN  prefixes" in ok.stdout
        and "no known prefixes for all-minilm" in ok.stdout
    )


def test_doctor_server_down() -> None:
    host = _down_host()
    result = rag("doctor", "--host", host)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == f"FAIL  server     Ollama is not reachable at {host}"
    assert "fix: start it (`ollama serve`) or set OLLAMA_HOST" in result.stdout
    assert "chat model" not in result.stdout  # nothing more to learn without a server


# -- doctor checks as plain functions ----------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("http://127.0.0.1:11434", "pass"),
        ("http://localhost:11434", "pass"),
        ("http://[::1]:11434", "pass"),
        ("https://ollama.example.com:443", "pass"),
        ("http://192.168.1.20:11434", "warn"),
        ("http://gpu-box:11434", "warn"),
    ],
)
def test_transport_check(host: str, status: str) -> None:
    check = check_host_security(host)
    assert check.status == status
    if status == "warn":
        assert (
            "no authentication" in check.detail and "travel in clear" in check.detail and "https" in check.fix
        )


def _loaded(size_vram: int, context: int = 4096) -> RunningModel:
    return RunningModel("qwen2.5:7b", 1000, size_vram, None, context)


def test_gpu_check() -> None:
    assert check_gpu([]).status == "pass"
    assert check_gpu([_loaded(1000)]).status == "pass"
    cpu = check_gpu([_loaded(0)])
    assert cpu.status == "warn" and "CPU" in cpu.detail and "CUDA" in cpu.fix and "ROCm" in cpu.fix
    split = check_gpu([_loaded(600)])
    assert split.status == "warn" and "60% on the GPU" in split.detail


def _details(name: str, caps: tuple[str, ...], emb: int | None, ctx: int | None) -> ModelDetails:
    return ModelDetails(name, "", "", "", caps, emb, ctx, "x")


def test_context_check() -> None:
    chat = _details("qwen2.5:7b", ("completion",), None, 32768)
    assert check_context(chat, []).status == "pass"
    small = check_context(chat, [_loaded(1000, context=2048)])
    assert small.status == "warn" and "OLLAMA_CONTEXT_LENGTH" in small.fix


def test_dimension_and_prefix_checks() -> None:
    embed = _details("nomic-embed-text", ("embedding",), 768, 2048)
    assert check_index_dimension({"dimension": 768}, embed).status == "pass"
    assert check_index_dimension({"dimension": 384}, embed).status == "fail"
    assert check_prefixes("nomic-embed-text", None).status == "pass"
    assert "Represent this sentence" in check_prefixes("mxbai-embed-large", None).detail
    assert check_prefixes("all-minilm", None).detail == "no known prefixes for all-minilm"
    plain = {"document_prefix": "", "query_prefix": ""}
    assert check_prefixes("nomic-embed-text", plain).status == "warn"
