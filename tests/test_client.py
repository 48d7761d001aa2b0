"""`rag.client.OllamaClient` against the bundled Ollama-protocol server."""

from __future__ import annotations

import math
import socket
from collections.abc import Callable, Iterator

import pytest

from ingest import ollama_calls
from ingest.errors import (
    ConfigError,
    ModelCapabilityError,
    ModelNotFound,
    OllamaError,
    OllamaTimeout,
    OllamaUnreachable,
    ServerBusy,
    StreamError,
)
from ingest.ollama_calls import Timeouts
from rag.client import OllamaClient
from rag.models_types import PullProgress, to_json
from rag.server import OllamaServer

USER = [{"role": "user", "content": "Why is the sky blue?"}]


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OLLAMA_HOST", "RAG_CONNECT_TIMEOUT", "RAG_READ_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(ollama_calls, "RETRY_BASE_DELAY", 0.01)  # retries without the real backoff


@pytest.fixture
def client(ollama_server: OllamaServer) -> Iterator[OllamaClient]:
    with OllamaClient(ollama_server.url) as c:
        yield c


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _paths(srv: OllamaServer) -> list[str]:
    return [r.path for r in srv.requests]


# -- host and health ---------------------------------------------------------------------------


def test_host_follows_the_sdk_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    assert OllamaClient().host == "http://127.0.0.1:11434"
    assert OllamaClient("0.0.0.0:1234").host == "http://127.0.0.1:1234"
    assert OllamaClient("example.com:8080").host == "http://example.com:8080"
    monkeypatch.setenv("OLLAMA_HOST", ":5555")
    assert OllamaClient().host == "http://127.0.0.1:5555"
    assert OllamaClient("10.0.0.2").host == "http://10.0.0.2:11434"  # the argument wins


def test_unknown_api_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="native"):
        OllamaClient(api="grpc")  # type: ignore[arg-type]


def test_timeouts_are_finite() -> None:
    c = OllamaClient(timeouts=Timeouts(connect=1.5, read=9.0))
    timeout = c._sdk._client.timeout
    assert (timeout.connect, timeout.read) == (1.5, 9.0)


def test_health(client: OllamaClient, ollama_server: OllamaServer) -> None:
    health = client.health()
    assert health.host == ollama_server.url
    assert health.version
    assert 0 <= health.latency_ms < 5000
    assert _paths(ollama_server) == ["/", "/api/version"]


# -- models ------------------------------------------------------------------------------------


def test_models_lists_the_catalog(client: OllamaClient) -> None:
    by_name = {m.name: m for m in client.models()}
    assert {"nomic-embed-text:latest", "all-minilm:latest", "qwen2.5:7b", "llama3.2:1b"} <= set(by_name)
    qwen = by_name["qwen2.5:7b"]
    assert (qwen.family, qwen.parameter_size, qwen.quantization) == ("qwen2", "7.6B", "Q4_K_M")
    assert qwen.size > 0 and qwen.modified is not None
    assert to_json([qwen])[0]["modified"].startswith(str(qwen.modified.year))


def test_show_embedder(client: OllamaClient, ollama_server: OllamaServer) -> None:
    details = client.show("nomic-embed-text")
    assert details.capabilities == ("embedding",)
    assert details.is_embedder and not details.can_chat
    assert (details.embedding_length, details.context_length, details.family) == (768, 2048, "nomic-bert")
    assert ollama_server.requests[-1].json == {"model": "nomic-embed-text"}


def test_show_chat_model(client: OllamaClient) -> None:
    details = client.show("qwen2.5:7b")
    assert details.can_chat and "tools" in details.capabilities
    assert details.context_length == 32768
    assert "<|im_start|>" in details.template and "stop" in details.parameters


def test_show_unknown_model(client: OllamaClient) -> None:
    with pytest.raises(ModelNotFound) as info:
        client.show("nope:1b")
    assert (
        str(info.value) == f"model nope:1b is not available on {client.host} — run `rag models pull nope:1b`"
    )
    assert info.value.model == "nope:1b"


def test_empty_model_name_is_refused_before_any_request(
    client: OllamaClient, ollama_server: OllamaServer
) -> None:
    with pytest.raises(ConfigError, match="no model name"):
        client.show("")
    with pytest.raises(ConfigError):
        client.embed(" ", ["x"])
    assert ollama_server.requests == []


def test_running_models(client: OllamaClient) -> None:
    assert client.running() == []
    client.embed("nomic-embed-text", ["warm up"])
    (loaded,) = client.running()
    assert loaded.name.startswith("nomic-embed-text")
    assert loaded.size > 0 and loaded.size_vram == 0  # the default server reports CPU
    assert loaded.context_length and loaded.expires_at is not None


def test_running_on_gpu(ollama_server_factory: Callable[..., OllamaServer]) -> None:
    srv = ollama_server_factory(gpu=True)
    with OllamaClient(srv.url) as c:
        c.embed("all-minilm", ["x"])
        (loaded,) = c.running()
    assert loaded.size_vram == loaded.size


def test_pull_streams_progress(client: OllamaClient, ollama_server: OllamaServer) -> None:
    parts = client.pull("qwen2.5:0.5b")
    first = next(parts)  # progress arrives while the pull runs, not at the end
    assert first == PullProgress(status="pulling manifest")
    rest = list(parts)
    assert rest[-1].status == "success"
    layers = [p for p in rest if p.digest]
    assert layers and all(p.digest.startswith("sha256:") and p.total for p in layers)
    completed = [p.completed or 0 for p in layers if p.digest == layers[0].digest]
    assert completed == sorted(completed) and completed[-1] == layers[0].total
    assert ollama_server.requests[0].json == {"model": "qwen2.5:0.5b", "insecure": False, "stream": True}
    assert "qwen2.5:0.5b" in {m.name for m in client.models()}


def test_pull_unknown_model(client: OllamaClient) -> None:
    with pytest.raises(ModelNotFound, match="could not be pulled.*ollama.com/library"):
        list(client.pull("no-such-model:9b"))


def test_copy_then_delete(client: OllamaClient) -> None:
    client.copy("qwen2.5:7b", "my-qwen:latest")
    assert "my-qwen:latest" in {m.name for m in client.models()}
    assert client.show("my-qwen").can_chat
    client.delete("my-qwen")
    assert "my-qwen:latest" not in {m.name for m in client.models()}
    with pytest.raises(ModelNotFound, match="rag models pull my-qwen"):
        client.delete("my-qwen")
    with pytest.raises(ModelNotFound):
        client.copy("absent-model", "other")


# -- generation --------------------------------------------------------------------------------


def test_generate_plain_and_streamed(client: OllamaClient, ollama_server: OllamaServer) -> None:
    whole = client.generate("qwen2.5:7b", "hello there", options={"temperature": 0})
    assert whole.done and whole.response
    pieces = list(client.generate("qwen2.5:7b", "hello there", stream=True))
    assert len(pieces) > 1 and pieces[-1].done
    assert "".join(p.response for p in pieces) == whole.response
    sent = ollama_server.requests[0].json
    assert sent["model"] == "qwen2.5:7b" and sent["options"] == {"temperature": 0} and sent["stream"] is False


def test_chat_plain_and_streamed(client: OllamaClient, ollama_server: OllamaServer) -> None:
    whole = client.chat("qwen2.5:7b", USER, options={"num_ctx": 4096}, think=False)
    assert whole.message.role == "assistant" and whole.message.content
    pieces = list(client.chat("qwen2.5:7b", USER, stream=True))
    assert len(pieces) > 1 and pieces[-1].done and pieces[-1].eval_count
    assert "".join(p.message.content or "" for p in pieces) == whole.message.content
    sent = ollama_server.requests[0].json
    assert sent["messages"] == USER and sent["options"] == {"num_ctx": 4096} and sent["think"] is False


def test_chat_with_an_embedding_model(client: OllamaClient) -> None:
    with pytest.raises(ModelCapabilityError, match="nomic-embed-text does not support chat"):
        client.chat("nomic-embed-text", USER)


def test_embed(client: OllamaClient, ollama_server: OllamaServer) -> None:
    vectors = client.embed("nomic-embed-text", ["search_document: hello", "search_document: world"])
    assert len(vectors) == 2 and all(len(v) == 768 for v in vectors)
    assert math.isclose(sum(x * x for x in vectors[0]), 1.0, rel_tol=1e-4)
    assert ollama_server.requests[-1].json == {
        "model": "nomic-embed-text",
        "input": ["search_document: hello", "search_document: world"],
        "truncate": True,
    }
    assert len(client.embed("all-minilm", "one text")) == 1  # a single text is a batch of one


def test_embed_unknown_model(client: OllamaClient) -> None:
    with pytest.raises(ModelNotFound, match="run `rag models pull nope`"):
        client.embed("nope", ["x"])


@pytest.mark.parametrize("kind", ["chat", "generate"])
def test_error_line_mid_stream(ollama_server_factory: Callable[..., OllamaServer], kind: str) -> None:
    srv = ollama_server_factory(stream_error_after=2)
    seen: list[object] = []
    with OllamaClient(srv.url) as c:
        parts = (
            c.chat("qwen2.5:7b", USER, stream=True)
            if kind == "chat"
            else c.generate("qwen2.5:7b", "why is the sky blue", stream=True)
        )
        with pytest.raises(StreamError, match="mid-stream"):
            for part in parts:
                seen.append(part)
    assert len(seen) == 2


# -- faults ------------------------------------------------------------------------------------


def test_503_is_retried(ollama_server_factory: Callable[..., OllamaServer]) -> None:
    srv = ollama_server_factory(busy_every=2)
    with OllamaClient(srv.url) as c:
        c.models()
        assert c.show("qwen2.5:7b").can_chat  # request 2 is busy, its retry (3) answers
    assert [r.status for r in srv.requests] == [200, 503, 200]


def test_503_surfaces_after_the_retries(ollama_server_factory: Callable[..., OllamaServer]) -> None:
    srv = ollama_server_factory(busy_every=1)
    with OllamaClient(srv.url, retries=2) as c, pytest.raises(ServerBusy, match="busy") as info:
        c.models()
    assert "\n" not in str(info.value)
    assert len(srv.requests) == 3


def test_503_before_a_stream_is_retried(ollama_server_factory: Callable[..., OllamaServer]) -> None:
    srv = ollama_server_factory(busy_every=2)
    with OllamaClient(srv.url) as c:
        c.models()
        pieces = list(c.chat("qwen2.5:7b", USER, stream=True))
    assert pieces[-1].done
    assert [r.status for r in srv.requests] == [200, 503, 200]


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.models(),
        lambda c: c.health(),
        lambda c: list(c.pull("qwen2.5:0.5b")),
        lambda c: list(c.chat("qwen2.5:7b", USER, stream=True)),
        lambda c: c.embed("nomic-embed-text", ["x"]),
    ],
    ids=["plain", "health", "pull-stream", "chat-stream", "embed"],
)
def test_server_down(call: Callable[[OllamaClient], object]) -> None:
    host = f"http://127.0.0.1:{_free_port()}"
    with OllamaClient(host, retries=1) as client, pytest.raises(OllamaUnreachable) as info:
        call(client)
    assert str(info.value) == (
        f"Ollama is not reachable at {host} — start it (`ollama serve`) or set OLLAMA_HOST"
    )


def test_read_timeout(ollama_server_factory: Callable[..., OllamaServer]) -> None:
    srv = ollama_server_factory(latency=1.0)
    with OllamaClient(srv.url, timeouts=Timeouts(connect=2, read=0.2), retries=0) as c:
        with pytest.raises(OllamaTimeout, match="RAG_READ_TIMEOUT"):
            c.models()


def test_health_of_something_that_is_not_ollama(ollama_server: OllamaServer) -> None:
    with OllamaClient(ollama_server.url + "/v1/models") as c, pytest.raises(OllamaError):
        c.health()


# -- the OpenAI-compatible path ----------------------------------------------------------------


@pytest.fixture
def v1(ollama_server: OllamaServer) -> Iterator[OllamaClient]:
    with OllamaClient(ollama_server.url, api="openai") as c:
        yield c


def test_v1_chat(v1: OllamaClient, ollama_server: OllamaServer) -> None:
    reply = v1.chat("qwen2.5:7b", USER, options={"temperature": 0.2, "num_ctx": 8192, "num_predict": 50})
    assert reply.done and reply.message.content and reply.eval_count
    request = ollama_server.requests[-1]
    assert request.path == "/v1/chat/completions"
    assert request.json == {
        "model": "qwen2.5:7b",
        "messages": USER,
        "stream": False,
        "temperature": 0.2,
        "max_tokens": 50,
    }  # num_ctx cannot travel through /v1


def test_v1_chat_streamed(v1: OllamaClient, ollama_server: OllamaServer) -> None:
    pieces = list(v1.chat("qwen2.5:7b", USER, stream=True))
    assert len(pieces) > 2 and not any(p.done for p in pieces[:-1])
    last = pieces[-1]
    assert last.done and last.done_reason == "stop" and last.eval_count
    with OllamaClient(ollama_server.url) as native_client:
        native = native_client.chat("qwen2.5:7b", USER)
    assert "".join(p.message.content or "" for p in pieces) == native.message.content


def test_v1_embed(v1: OllamaClient, ollama_server: OllamaServer) -> None:
    vectors = v1.embed("nomic-embed-text", ["a", "b", "c"])
    assert len(vectors) == 3 and len(vectors[0]) == 768
    with OllamaClient(ollama_server.url) as native:
        assert vectors == native.embed("nomic-embed-text", ["a", "b", "c"])
    assert ollama_server.requests[0].path == "/v1/embeddings"
    with pytest.raises(ConfigError, match="truncate=False"):
        v1.embed("nomic-embed-text", ["a"], truncate=False)


def test_v1_errors_map_like_native_ones(v1: OllamaClient) -> None:
    with pytest.raises(ModelNotFound, match="rag models pull nope"):
        v1.chat("nope", USER)
    with pytest.raises(ModelNotFound, match="rag models pull nope"):
        v1.embed("nope", ["x"])
    with pytest.raises(ModelNotFound):
        list(v1.chat("nope", USER, stream=True))
    with pytest.raises(ModelCapabilityError, match="does not support chat"):
        v1.chat("nomic-embed-text", USER)


def test_v1_generate_goes_through_v1_completions(v1: OllamaClient, ollama_server: OllamaServer) -> None:
    reply = v1.generate("qwen2.5:7b", "Why is the sky blue?", options={"temperature": 0.2, "num_ctx": 8192,
                                                                      "num_predict": 50, "stop": ["\n\n"]})
    request = ollama_server.requests[-1]
    assert request.path == "/v1/completions"
    assert request.json == {"model": "qwen2.5:7b", "prompt": "Why is the sky blue?", "stream": False,
                            "temperature": 0.2, "max_tokens": 50, "stop": ["\n\n"]}  # no num_ctx through /v1
    with OllamaClient(ollama_server.url) as native_client:
        native = native_client.generate("qwen2.5:7b", "Why is the sky blue?")
    assert reply.done and reply.response == native.response and reply.response
    assert reply.done_reason == "stop" and reply.eval_count and reply.prompt_eval_count
    cut = v1.generate("qwen2.5:7b", "Why is the sky blue?", options={"num_predict": 2})
    assert cut.done_reason == "length" and cut.eval_count == 2


def test_v1_generate_streamed(v1: OllamaClient, ollama_server: OllamaServer) -> None:
    pieces = list(v1.generate("qwen2.5:7b", "二加二等于几？", stream=True))
    assert len(pieces) > 1 and not any(p.done for p in pieces[:-1])
    assert pieces[-1].done and pieces[-1].done_reason == "stop" and pieces[-1].response == ""
    request = ollama_server.requests[-1]
    assert request.path == "/v1/completions" and request.json["stream"] is True
    with OllamaClient(ollama_server.url) as native_client:
        native = native_client.generate("qwen2.5:7b", "二加二等于几？")
    assert "".join(p.response for p in pieces) == native.response


def test_v1_generate_refuses_what_v1_cannot_carry(v1: OllamaClient, ollama_server: OllamaServer) -> None:
    with pytest.raises(ConfigError, match="system prompt cannot be sent through /v1/completions.*api='native'"):
        v1.generate("qwen2.5:7b", "hi", system="be brief")
    with pytest.raises(ConfigError, match="think cannot be sent through /v1/completions"):
        v1.generate("qwen2.5:7b", "hi", think=True)
    assert ollama_server.requests == []


def test_v1_models_lists_through_v1_models(v1: OllamaClient, ollama_server: OllamaServer) -> None:
    listed = v1.models()
    assert ollama_server.requests[-1].path == "/v1/models"
    with OllamaClient(ollama_server.url) as native_client:
        native = native_client.models()
    assert sorted(m.name for m in listed) == sorted(m.name for m in native)
    assert all(m.modified is not None and m.size == 0 for m in listed)  # /v1 tells names and dates only


def test_v1_generate_and_models_errors_map_like_native_ones(
    v1: OllamaClient, ollama_server_factory: Callable[..., OllamaServer]
) -> None:
    with pytest.raises(ModelNotFound, match="rag models pull nope"):
        v1.generate("nope", "hi")
    with pytest.raises(ModelNotFound, match="rag models pull nope"):
        list(v1.generate("nope", "hi", stream=True))
    with pytest.raises(ModelCapabilityError, match="does not support generate"):
        v1.generate("nomic-embed-text", "hi")
    failing = ollama_server_factory(stream_error_after=1)
    with OllamaClient(failing.url, api="openai") as c, pytest.raises(StreamError):
        list(c.generate("qwen2.5:7b", "Why is the sky blue?", stream=True))
    busy = ollama_server_factory(busy_every=1)
    with OllamaClient(busy.url, api="openai", retries=0) as c:
        with pytest.raises(ServerBusy, match="is busy"):
            c.models()
        with pytest.raises(ServerBusy, match="is busy"):
            c.generate("qwen2.5:7b", "hi")


def test_v1_error_mid_stream(ollama_server_factory: Callable[..., OllamaServer]) -> None:
    srv = ollama_server_factory(stream_error_after=2)
    with OllamaClient(srv.url, api="openai") as c, pytest.raises(StreamError):
        list(c.chat("qwen2.5:7b", USER, stream=True))


# -- ensure_models -----------------------------------------------------------------------------


def test_ensure_models_is_one_show_per_model(client: OllamaClient, ollama_server: OllamaServer) -> None:
    ready = client.ensure_models("nomic-embed-text", "qwen2.5:7b")
    assert ready.embed is not None and ready.embed.embedding_length == 768
    assert ready.chat is not None and ready.chat.context_length == 32768
    assert _paths(ollama_server) == ["/api/show", "/api/show"]
    assert client.ensure_models(None, None).embed is None
    assert client.ensure_models("all-minilm", None).chat is None


def test_ensure_models_missing_without_pull(client: OllamaClient) -> None:
    with pytest.raises(ModelNotFound, match=r"run `rag models pull qwen2.5:0.5b` \(or add --pull\)"):
        client.ensure_models("nomic-embed-text", "qwen2.5:0.5b")


def test_ensure_models_pulls_with_progress(client: OllamaClient, ollama_server: OllamaServer) -> None:
    seen: list[PullProgress] = []
    ready = client.ensure_models("bge-m3", "qwen2.5:0.5b", pull=True, progress=seen.append)
    assert ready.embed is not None and ready.embed.embedding_length == 1024
    assert ready.chat is not None and ready.chat.can_chat
    assert [p.status for p in seen].count("success") == 2
    assert _paths(ollama_server).count("/api/pull") == 2


def test_ensure_models_wrong_capability(client: OllamaClient) -> None:
    with pytest.raises(ModelCapabilityError) as info:
        client.ensure_models(None, "nomic-embed-text")
    assert (
        str(info.value)
        == "model nomic-embed-text is an embedding model and cannot chat — use e.g. --model qwen2.5:7b"
    )
    with pytest.raises(ModelCapabilityError, match="qwen2.5:7b is not an embedding model.*--embed-model"):
        client.ensure_models("qwen2.5:7b", None)


def test_ensure_models_unknown_even_after_pull(client: OllamaClient) -> None:
    with pytest.raises(ModelNotFound, match="could not be pulled"):
        client.ensure_models("no-such-embedder", None, pull=True)
