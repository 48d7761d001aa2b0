"""The bundled Ollama-protocol server, through the official SDK and raw httpx."""

from __future__ import annotations

import base64
import json
import math
import struct
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import numpy as np
import ollama
import pytest

from rag.server import EngineUnavailable, HashEngine, ModelSpec, OllamaServer, make_engine, runs, serve
from rag.server.hash_text import NO_ANSWER_EN, NO_ANSWER_ZH

CHAT = "qwen2.5:7b"
EMBED = "nomic-embed-text"
PROMPT = (
    "Passages:\n"
    "[1] docs/guide.md — Setup > Install\n"
    "Install rag with pip install rag. It needs Python 3.10 or newer.\n\n"
    "[2] docs/faq.md — Colours\n"
    "The logo is blue. Nobody knows why.\n\n"
    "Question: How do I install rag?"
)


@pytest.fixture
def client(ollama_server: OllamaServer) -> Iterator[ollama.Client]:
    sdk = ollama.Client(host=ollama_server.url, timeout=10)
    yield sdk
    sdk.close()


@pytest.fixture
def http(ollama_server: OllamaServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ollama_server.url, timeout=10) as raw:
        yield raw


def ndjson(response: httpx.Response) -> list[dict]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# -- plain endpoints -------------------------------------------------------------------------------


def test_root_version_and_routing(http: httpx.Client) -> None:
    root = http.get("/")
    assert root.status_code == 200 and root.text == "Ollama is running"
    head = http.head("/")
    assert head.status_code == 200 and head.content == b""
    assert http.get("/api/version").json()["version"].startswith("0.33")
    missing = http.get("/api/nope")
    assert (missing.status_code, missing.text) == (404, "404 page not found")
    assert http.get("/api/chat").status_code == 405
    assert http.post("/api/tags").status_code == 405


def test_body_errors(http: httpx.Client) -> None:
    empty = http.post("/api/chat", content=b"")
    assert (empty.status_code, empty.json()) == (400, {"error": "missing request body"})
    bad = http.post("/api/chat", content=b"xyz")
    assert bad.status_code == 400 and bad.json()["error"].startswith("invalid character 'x'")
    wrong_type = http.post("/api/chat", json={"model": 5})
    assert wrong_type.status_code == 400 and "cannot unmarshal number" in wrong_type.json()["error"]


def test_tags_lists_the_default_catalog(client: ollama.Client) -> None:
    names = {m.model for m in client.list().models}
    assert {"nomic-embed-text:latest", "all-minilm:latest", "mxbai-embed-large:latest", CHAT, "llama3.2:1b"} <= names
    assert "qwen2.5:0.5b" not in names


def test_show_reports_dimensions_context_and_capabilities(client: ollama.Client) -> None:
    nomic = client.show(EMBED)
    assert nomic.modelinfo["general.architecture"] == "nomic-bert"
    assert nomic.modelinfo["nomic-bert.embedding_length"] == 768
    assert nomic.modelinfo["nomic-bert.context_length"] == 2048
    assert nomic.capabilities == ["embedding"]
    minilm = client.show("All-MiniLM")  # case-insensitive, tag defaults to latest
    assert minilm.modelinfo["bert.embedding_length"] == 384 and minilm.modelinfo["bert.context_length"] == 256
    qwen = client.show(CHAT)
    assert "tools" in qwen.capabilities and qwen.template and qwen.details.family == "qwen2"


def test_ps_lists_models_used_recently(client: ollama.Client, ollama_server_factory) -> None:
    assert client.ps().models == []
    client.embed(model=EMBED, input="hello")
    client.chat(model=CHAT, messages=[{"role": "user", "content": "hi"}], options={"num_ctx": 8192})
    running = {m.model: m for m in client.ps().models}
    assert running["nomic-embed-text:latest"].size_vram == 0
    assert running["nomic-embed-text:latest"].context_length == 2048  # clamped to the trained context
    assert running[CHAT].context_length == 8192 and running[CHAT].expires_at is not None
    client.chat(model=CHAT, messages=[], keep_alive=0)  # unload
    assert CHAT not in {m.model for m in client.ps().models}

    gpu = ollama_server_factory(gpu=True)
    with httpx.Client(base_url=gpu.url) as raw:
        raw.post("/api/embed", json={"model": EMBED, "input": []})
        (model,) = raw.get("/api/ps").json()["models"]
    assert model["size_vram"] == model["size"] > 0


# -- embeddings ------------------------------------------------------------------------------------


def test_embed_returns_float32_unit_vectors_with_metrics(client: ollama.Client) -> None:
    reply = client.embed(model=EMBED, input=["The cat sat on the mat", "Dogs bark"])
    assert len(reply.embeddings) == 2 and all(len(v) == 768 for v in reply.embeddings)
    for vector in reply.embeddings:
        assert math.isclose(float(np.linalg.norm(vector)), 1.0, rel_tol=1e-5)
        assert all(float(np.float32(x)) == x for x in vector[:50])
    assert reply.prompt_eval_count == 8 and reply.total_duration > 0 and reply.load_duration > 0


def test_legacy_embeddings_are_raw_but_point_the_same_way(client: ollama.Client) -> None:
    raw = client.embeddings(model=EMBED, prompt="The cat sat on the mat").embedding
    unit = client.embed(model=EMBED, input="The cat sat on the mat").embeddings[0]
    assert float(np.linalg.norm(raw)) > 2.0
    assert cosine(raw, unit) == pytest.approx(1.0, abs=1e-6)


def test_empty_input_loads_the_model(client: ollama.Client) -> None:
    assert client.embed(model=EMBED, input=[]).embeddings == []
    assert client.embeddings(model=EMBED, prompt="").embedding == []
    assert [m.model for m in client.ps().models] == ["nomic-embed-text:latest"]


def test_texts_sharing_words_are_closer(client: ollama.Client) -> None:
    a, b, c = client.embed(model=EMBED, input=[
        "Install the package with pip", "pip can install the package", "Bananas are yellow fruit"]).embeddings
    assert cosine(a, b) > cosine(a, c) + 0.3


def test_chinese_texts_sharing_terms_are_closer(client: ollama.Client) -> None:
    a, b, c = client.embed(model=EMBED, input=[
        "如何安装向量数据库", "向量数据库的安装步骤", "今天天气很好，适合散步"]).embeddings
    assert cosine(a, b) > cosine(a, c) + 0.2


def test_task_prefixes_are_understood_and_recorded(client: ollama.Client, ollama_server: OllamaServer) -> None:
    prefixed = client.embed(model=EMBED, input="search_query: where is the manual").embeddings[0]
    plain = client.embed(model=EMBED, input="where is the manual").embeddings[0]
    assert prefixed == plain
    assert ollama_server.requests[0].json["input"] == "search_query: where is the manual"


def test_truncation_follows_the_truncate_flag(client: ollama.Client) -> None:
    long_text = " ".join(["word"] * 300)  # all-minilm takes 256 tokens
    assert client.embed(model="all-minilm", input=long_text).prompt_eval_count == 256
    with pytest.raises(ollama.ResponseError) as err:
        client.embed(model="all-minilm", input=long_text, truncate=False)
    assert (err.value.status_code, err.value.error) == (400, "the input length exceeds the context length")


def test_dimensions_cuts_and_renormalises(client: ollama.Client) -> None:
    (vector,) = client.embed(model=EMBED, input="hello there", dimensions=64).embeddings
    assert len(vector) == 64 and math.isclose(float(np.linalg.norm(vector)), 1.0, rel_tol=1e-5)


# -- error table -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/api/generate", {"model": "nope", "prompt": "x"}, 404, "model 'nope' not found"),
        ("/api/chat", {"model": "nope", "messages": []}, 404, "model 'nope' not found"),
        ("/api/show", {"model": "nope"}, 404, "model 'nope:latest' not found"),  # normalised, unlike generate
        ("/api/embed", {"model": "nope", "input": "x"}, 404, 'model "nope" not found, try pulling it first'),
        ("/api/embeddings", {"model": "nope", "prompt": "x"}, 404, 'model "nope" not found, try pulling it first'),
        ("/api/chat", {"messages": []}, 400, "model is required"),
        ("/api/embeddings", {"prompt": "x"}, 400, "model is required"),
        ("/api/show", {"model": ""}, 400, "model is required"),
        ("/api/generate", {"prompt": "x"}, 404, "model '' not found"),
        ("/api/embed", {"input": "x"}, 404, "model '' not found"),
        ("/api/generate", {"model": EMBED, "prompt": "x"}, 400, f'"{EMBED}" does not support generate'),
        ("/api/chat", {"model": EMBED, "messages": []}, 400, f'"{EMBED}" does not support chat'),
        ("/api/chat", {"model": CHAT, "messages": [], "think": True}, 400, f'"{CHAT}" does not support thinking'),
        ("/api/embed", {"model": EMBED, "input": 5}, 400, "invalid input type"),
        ("/api/delete", {"model": "nope"}, 404, "model 'nope' not found"),
        ("/api/copy", {"source": "nope", "destination": "x"}, 404, 'model "nope" not found'),
    ],
)
def test_error_statuses_and_strings(http: httpx.Client, path: str, body: dict, status: int, error: str) -> None:
    method = "DELETE" if path == "/api/delete" else "POST"
    reply = http.request(method, path, json=body)
    assert (reply.status_code, reply.json()) == (status, {"error": error})


def test_think_false_is_fine(client: ollama.Client) -> None:
    reply = client.chat(model=CHAT, messages=[{"role": "user", "content": "hi"}], think=False)
    assert reply.done


# -- generate and chat -----------------------------------------------------------------------------


def test_chat_streams_by_default_with_metrics(http: httpx.Client) -> None:
    reply = http.post("/api/chat", json={"model": CHAT, "messages": [{"role": "user", "content": PROMPT}]})
    assert reply.headers["content-type"].startswith("application/x-ndjson")
    lines = ndjson(reply)
    assert len(lines) > 3 and not any(line["done"] for line in lines[:-1])
    final = lines[-1]
    assert final["done"] and final["done_reason"] == "stop" and final["message"]["content"] == ""
    for key in ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration",
                "eval_count", "eval_duration"):
        assert final[key] > 0, key
    text = "".join(line["message"]["content"] for line in lines)
    assert text == "Install rag with pip install rag. [1]"


def test_chat_answers_with_citations_or_says_not_found(client: ollama.Client) -> None:
    def ask(content: str) -> str:
        return client.chat(model=CHAT, messages=[{"role": "user", "content": content}]).message.content

    assert ask(PROMPT) == "Install rag with pip install rag. [1]"
    assert ask(PROMPT.replace("How do I install rag?", "What colour is the logo?")) == "The logo is blue. [2]"
    assert ask(PROMPT.replace("How do I install rag?", "Who won the match?")) == NO_ANSWER_EN
    chinese = "Passages:\n[1] a.md — 安装\n使用 pip 安装。需要 Python 3.10。\n\nQuestion: 天气怎么样？"
    assert ask(chinese) == NO_ANSWER_ZH
    assert ask(chinese.replace("天气怎么样？", "怎么安装？")) == "使用 pip 安装。[1]"


def test_rewrite_requests_use_the_previous_question(client: ollama.Client) -> None:
    messages = [
        {"role": "system", "content": "Rewrite the follow-up as a standalone question."},
        {"role": "user", "content": "Conversation:\nuser: How do I install rag?\nassistant: With pip [1].\n\n"
                                    "Follow-up question: and on Windows?"},
    ]
    assert client.chat(model=CHAT, messages=messages).message.content == "install rag and on Windows?"


def test_plain_chat_echoes(client: ollama.Client) -> None:
    reply = client.chat(model="LLAMA3.2:1B", messages=[{"role": "user", "content": "good morning"}])
    assert reply.message.content == "You said: good morning" and reply.model == "LLAMA3.2:1B"


def test_num_ctx_drops_old_messages_and_reports_what_was_evaluated(client: ollama.Client) -> None:
    history = [{"role": "user", "content": "old " * 50}, {"role": "assistant", "content": "ok " * 50}]
    messages = [{"role": "system", "content": "be brief"}, *history, {"role": "user", "content": PROMPT}]
    full = client.chat(model=CHAT, messages=messages)
    cut = client.chat(model=CHAT, messages=messages, options={"num_ctx": 60})
    assert full.prompt_eval_count > 100 and cut.prompt_eval_count <= 60
    assert cut.message.content == "Install rag with pip install rag. [1]"  # the question survives
    tiny = client.chat(model=CHAT, messages=messages, options={"num_ctx": 20})
    assert tiny.message.content == NO_ANSWER_EN  # passages were cut from the front


def test_generate_stream_and_non_stream(client: ollama.Client) -> None:
    parts = list(client.generate(model=CHAT, prompt=PROMPT, stream=True))
    assert len(parts) > 3 and parts[-1].done and parts[-1].eval_count > 0
    assert "".join(p.response for p in parts) == "Install rag with pip install rag. [1]"
    whole = client.generate(model=CHAT, prompt=PROMPT)
    assert whole.response == "Install rag with pip install rag. [1]" and whole.context
    assert client.generate(model=CHAT, prompt="").done_reason == "load"
    limited = client.generate(model=CHAT, prompt=PROMPT, options={"num_predict": 2})
    assert limited.done_reason == "length" and limited.response == "Install rag "


# -- OpenAI compatibility --------------------------------------------------------------------------


def test_v1_chat_completions(http: httpx.Client) -> None:
    body = {"model": CHAT, "messages": [{"role": "user", "content": PROMPT}]}
    reply = http.post("/v1/chat/completions", json=body).json()
    assert reply["object"] == "chat.completion" and reply["choices"][0]["finish_reason"] == "stop"
    assert reply["choices"][0]["message"]["content"] == "Install rag with pip install rag. [1]"
    assert reply["usage"]["total_tokens"] == reply["usage"]["prompt_tokens"] + reply["usage"]["completion_tokens"]


def test_v1_chat_completions_stream_sse(http: httpx.Client) -> None:
    body = {"model": CHAT, "stream": True, "messages": [{"role": "user", "content": PROMPT}],
            "stream_options": {"include_usage": True}}
    reply = http.post("/v1/chat/completions", json=body)
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = [e for e in reply.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert len(chunks) > 3 and chunks[0]["object"] == "chat.completion.chunk"
    text = "".join(c["choices"][0]["delta"]["content"] for c in chunks if c["choices"])
    assert text == "Install rag with pip install rag. [1]"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_v1_completions_embeddings_models_and_errors(http: httpx.Client) -> None:
    completion = http.post("/v1/completions", json={"model": CHAT, "prompt": "hello"}).json()
    assert completion["object"] == "text_completion" and completion["choices"][0]["text"] == "You said: hello"
    floats = http.post("/v1/embeddings", json={"model": EMBED, "input": ["a b", "c"]}).json()
    assert [d["index"] for d in floats["data"]] == [0, 1] and len(floats["data"][0]["embedding"]) == 768
    packed = http.post("/v1/embeddings", json={"model": EMBED, "input": "a b", "encoding_format": "base64"}).json()
    decoded = struct.unpack("<768f", base64.b64decode(packed["data"][0]["embedding"]))
    assert list(decoded) == floats["data"][0]["embedding"]
    ids = {m["id"] for m in http.get("/v1/models").json()["data"]}
    assert CHAT in ids and http.get(f"/v1/models/{CHAT}").json()["owned_by"] == "library"
    missing = http.post("/v1/chat/completions", json={"model": "nope", "messages": []})
    assert missing.status_code == 404
    assert missing.json() == {"error": {"message": "model 'nope' not found", "type": "not_found_error",
                                        "param": None, "code": None}}


# -- model management ------------------------------------------------------------------------------


def test_pull_streams_progress_and_installs(client: ollama.Client) -> None:
    lines = list(client.pull("qwen2.5:0.5b", stream=True))
    statuses = [line.status for line in lines]
    assert statuses[0] == "pulling manifest" and statuses[-4:] == ["verifying sha256 digest", "writing manifest",
                                                                     "removing any unused layers", "success"]
    layer = [line for line in lines if line.digest == lines[1].digest]
    assert layer[0].completed is None and len(layer) > 3
    completed = [line.completed for line in layer[1:]]
    assert completed == sorted(completed) and completed[-1] == layer[0].total
    assert "qwen2.5:0.5b" in {m.model for m in client.list().models}
    assert client.chat(model="qwen2.5:0.5b", messages=[{"role": "user", "content": "hi"}]).done


def test_pull_non_stream_and_unknown(client: ollama.Client, http: httpx.Client) -> None:
    assert client.pull("bge-m3").status == "success"
    assert len(client.embed(model="bge-m3", input="x").embeddings[0]) == 1024
    streamed = ndjson(http.post("/api/pull", json={"model": "no-such-model"}))
    assert streamed[0] == {"status": "pulling manifest"} and "error" in streamed[-1]
    with pytest.raises(ollama.ResponseError) as err:
        client.pull("no-such-model")
    assert err.value.status_code == 500


def test_copy_then_delete(client: ollama.Client, http: httpx.Client) -> None:
    copied = http.post("/api/copy", json={"source": EMBED, "destination": "my-embedder"})
    assert copied.status_code == 200 and copied.content == b""
    assert client.embed(model="my-embedder", input="x").embeddings == client.embed(model=EMBED, input="x").embeddings
    deleted = http.request("DELETE", "/api/delete", json={"model": "my-embedder"})
    assert deleted.status_code == 200 and deleted.content == b""
    assert "my-embedder:latest" not in {m.model for m in client.list().models}
    with pytest.raises(ollama.ResponseError) as err:
        client.delete("my-embedder")
    assert (err.value.status_code, err.value.error) == (404, "model 'my-embedder' not found")


# -- recording and faults --------------------------------------------------------------------------


def test_requests_are_recorded(client: ollama.Client, ollama_server: OllamaServer) -> None:
    client.embed(model=EMBED, input=["a", "b"])
    with pytest.raises(ollama.ResponseError):
        client.show("nope")
    first, second = ollama_server.requests
    assert (first.method, first.path, first.status) == ("POST", "/api/embed", 200)
    assert first.json == {"model": EMBED, "input": ["a", "b"]} and "user-agent" in first.headers
    assert (second.path, second.status) == ("/api/show", 404)
    ollama_server.clear_requests()
    assert ollama_server.requests == []


def test_fail_every_and_busy_every(ollama_server_factory) -> None:
    failing = ollama_server_factory(fail_every=2)
    busy = ollama_server_factory(busy_every=3)
    with httpx.Client() as raw:
        assert [raw.get(failing.url + "/api/tags").status_code for _ in range(4)] == [200, 500, 200, 500]
        statuses = [raw.get(busy.url + "/api/tags") for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 503]
    assert statuses[2].json() == {"error": "server busy, please try again.  maximum pending requests exceeded"}


def test_latency(ollama_server: OllamaServer, http: httpx.Client) -> None:
    ollama_server.latency = 0.2
    start = time.perf_counter()
    http.get("/")
    assert time.perf_counter() - start >= 0.2


def test_exit_after(ollama_server_factory) -> None:
    server = ollama_server_factory(exit_after=2)
    sdk = ollama.Client(host=server.url, timeout=5)
    try:
        sdk.list()
        sdk.list()
        deadline = time.monotonic() + 5
        with pytest.raises(ConnectionError):
            while time.monotonic() < deadline:
                sdk.list()
                time.sleep(0.05)
    finally:
        sdk.close()


def test_old_server_has_no_api_embed(ollama_server_factory) -> None:
    server = ollama_server_factory(old_server=True)
    with httpx.Client(base_url=server.url) as raw:
        missing = raw.post("/api/embed", json={"model": EMBED, "input": "x"})
        assert (missing.status_code, missing.text) == (404, "404 page not found")
        assert len(raw.post("/api/embeddings", json={"model": EMBED, "prompt": "x"}).json()["embedding"]) == 768


def test_stream_error_after(ollama_server_factory) -> None:
    server = ollama_server_factory(stream_error_after=2)
    sdk = ollama.Client(host=server.url, timeout=5)
    try:
        seen = []
        with pytest.raises(ollama.ResponseError) as err:
            for part in sdk.chat(model=CHAT, messages=[{"role": "user", "content": PROMPT}], stream=True):
                seen.append(part.message.content)
        assert len(seen) == 2 and err.value.status_code == -1
    finally:
        sdk.close()
    assert server.requests[-1].status == 200


# -- engines, Python and shell entry points --------------------------------------------------------


def test_custom_catalog_and_serve() -> None:
    spec = ModelSpec("tiny-embed:v1", "bert", ("embedding",), 64, 16)
    with serve(engine=HashEngine(catalog=[spec], library=[]), port=0) as srv:
        assert srv.url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=srv.url) as raw:
            assert [m["name"] for m in raw.get("/api/tags").json()["models"]] == ["tiny-embed:v1"]
            vectors = raw.post("/api/embed", json={"model": "TINY-EMBED:v1", "input": "x"}).json()["embeddings"]
    assert len(vectors[0]) == 16


def test_local_engine_unavailable_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rag.server.local_engine", None)  # import now fails
    with pytest.raises(EngineUnavailable, match=r"pip install 'folder-rag\[local\]'"):
        make_engine("local")


def test_python_m_rag_server_prints_a_url_that_answers() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "rag.server", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/", timeout=5).text == "Ollama is running"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert proc.returncode == 0


# -- protocol fidelity (issue 12) ------------------------------------------------------------------

BLOCK_HEAVY = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numpy", "chromadb", "tiktoken"):
            raise ImportError(f"blocked: {name}")
sys.meta_path.insert(0, Block())
import httpx
from rag.server import serve
with serve() as srv:
    reply = httpx.post(srv.url + "/api/embed", json={"model": "all-minilm", "input": ["a b", "天空"]}).json()
    chat = httpx.post(srv.url + "/api/chat", json={"model": "qwen3:0.6b", "stream": False,
                                                   "messages": [{"role": "user", "content": "hi"}]}).json()
print(len(reply["embeddings"]), bool(chat["message"]["thinking"]), sorted({"numpy", "chromadb", "tiktoken"} & set(sys.modules)))
"""


def test_server_runs_without_numpy_chromadb_or_tiktoken() -> None:
    done = subprocess.run([sys.executable, "-c", BLOCK_HEAVY], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "True", "[]"]


def test_go_decoder_errors_name_the_struct_field(http: httpx.Client) -> None:
    def error(path: str, body: dict) -> tuple[int, str]:
        reply = http.post(path, json=body)
        return reply.status_code, reply.json()["error"]

    assert error("/api/chat", {"model": CHAT, "messages": [{"role": "user", "content": ["a"]}]}) == (
        400, "json: cannot unmarshal array into Go struct field Message.messages.content of type string")
    assert error("/api/chat", {"model": CHAT, "messages": ["hi"]}) == (
        400, "json: cannot unmarshal string into Go struct field ChatRequest.messages of type api.Message")
    assert error("/api/generate", {"model": CHAT, "prompt": "x", "top_logprobs": 1.5}) == (
        400, "json: cannot unmarshal number 1.5 into Go struct field GenerateRequest.top_logprobs of type int")
    assert error("/api/embed", {"model": EMBED, "input": "x", "options": "big"}) == (
        400, "json: cannot unmarshal string into Go struct field EmbedRequest.options of type map[string]interface {}")
    # The decoder runs before any handler check: a bad field wins over a missing model.
    assert error("/api/chat", {"stream": 1}) == (
        400, "json: cannot unmarshal number into Go struct field ChatRequest.stream of type bool")


def test_option_types_follow_go_options_from_map(client: ollama.Client, http: httpx.Client) -> None:
    messages = [{"role": "user", "content": "old " * 200}, {"role": "user", "content": PROMPT}]
    whole_number = client.chat(model=CHAT, messages=messages, options={"num_ctx": 60.0})  # JSON numbers are floats
    assert whole_number.prompt_eval_count is not None and whole_number.prompt_eval_count <= 60
    for options, message in [({"temperature": "hot"}, 'option "temperature" must be of type float32'),
                             ({"stop": "x"}, 'option "stop" must be of type array'),
                             ({"stop": [1]}, 'option "stop" must be of type array of strings')]:
        reply = http.post("/api/chat", json={"model": CHAT, "messages": messages, "options": options})
        assert (reply.status_code, reply.json()["error"]) == (500, message)


def test_embed_num_ctx_truncates_chinese_too(http: httpx.Client) -> None:
    text = "天空是蓝色的。" * 40  # 240 Han characters, one token each
    reply = http.post("/api/embed", json={"model": EMBED, "input": [text, "short"], "options": {"num_ctx": 50}})
    assert reply.json()["prompt_eval_count"] == 50 + 1
    whole = http.post("/api/embed", json={"model": EMBED, "input": text}).json()
    assert whole["prompt_eval_count"] == 240


def test_generate_overflow_keeps_num_keep_and_the_tail(client: ollama.Client) -> None:
    prompt = "alpha beta gamma " + " ".join(f"filler{i}" for i in range(300)) + " omega"
    kept = client.generate(model="llama3.2:1b", prompt=prompt, options={"num_ctx": 50, "num_keep": 4 + 3})
    assert kept.prompt_eval_count == 50
    assert kept.response.startswith("You said: alpha beta gamma filler")  # head kept, middle dropped
    assert "filler5 " not in kept.response
    default = client.generate(model="llama3.2:1b", prompt=prompt, options={"num_ctx": 50})
    assert default.prompt_eval_count == 50 and "alpha" not in default.response  # num_keep 4 is the template


def test_thinking_model_thinks_by_default_in_the_question_language(client: ollama.Client) -> None:
    english = client.chat(model="qwen3:0.6b", messages=[{"role": "user", "content": PROMPT}])
    assert english.message.thinking and "How do I install rag?" in english.message.thinking
    assert english.message.content == "Install rag with pip install rag. [1]"
    chinese = client.chat(model="qwen3:0.6b", messages=[{"role": "user", "content": "天空是什么颜色？"}])
    assert chinese.message.thinking and "天空是什么颜色" in chinese.message.thinking
    assert client.chat(model="qwen3:0.6b", messages=[{"role": "user", "content": "hi"}],
                       think=False).message.thinking is None
    assert client.generate(model="qwen3:0.6b", prompt="hi", think="low").thinking
    thought = client.generate(model="qwen3:0.6b", prompt="hi", think=True)
    plain = client.generate(model="qwen3:0.6b", prompt="hi", think=False)
    assert thought.eval_count > plain.eval_count  # thinking tokens are generated tokens


def test_v1_reports_thinking_as_reasoning(http: httpx.Client) -> None:
    body = {"model": "qwen3:0.6b", "messages": [{"role": "user", "content": "hi"}]}
    message = http.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]
    assert message["reasoning"] and message["content"] == "You said: hi"
    quiet = http.post("/v1/chat/completions", json={**body, "reasoning_effort": "none"}).json()
    assert "reasoning" not in quiet["choices"][0]["message"]
    refused = http.post("/v1/chat/completions", json={**body, "model": CHAT, "reasoning_effort": "high"})
    assert refused.status_code == 400 and refused.json()["error"]["message"] == f'"{CHAT}" does not support thinking'


def test_format_schema_with_refs_and_optional_fields(client: ollama.Client) -> None:
    schema = {
        "$defs": {"Source": {"type": "object", "properties": {"path": {"type": "string"},
                                                               "page": {"type": "integer", "minimum": 1}},
                             "required": ["path", "page"]}},
        "type": "object",
        "properties": {"answer": {"type": "string"}, "sources": {"type": "array", "items": {"$ref": "#/$defs/Source"}},
                       "confident": {"type": "boolean"}, "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
        "required": ["answer", "sources", "confident"],
    }
    data = json.loads(client.chat(model=CHAT, messages=[{"role": "user", "content": PROMPT}], format=schema)
                      .message.content)
    assert data["answer"] == "Install rag with pip install rag. [1]"
    assert data["sources"][0]["page"] >= 1 and isinstance(data["sources"][0]["path"], str)
    assert isinstance(data["confident"], bool) and isinstance(data["note"], str)
    as_json = json.loads(client.generate(model=CHAT, prompt=PROMPT, format="json").response)
    assert as_json == {"answer": "Install rag with pip install rag. [1]"}


def test_stop_cuts_inside_a_piece_and_num_predict_counts_pieces(client: ollama.Client, http: httpx.Client) -> None:
    stopped = client.chat(model=CHAT, messages=[{"role": "user", "content": PROMPT}], options={"stop": ["pip in"]})
    assert (stopped.message.content, stopped.done_reason) == ("Install rag with ", "stop")
    pieces = ndjson(http.post("/api/chat", json={"model": CHAT, "messages": [{"role": "user", "content": PROMPT}],
                                                 "options": {"stop": ["h pi"]}}))
    assert "".join(p["message"]["content"] for p in pieces) == "Install rag wit"
    limited = client.chat(model="qwen3:0.6b", messages=[{"role": "user", "content": PROMPT}],
                          options={"num_predict": 3})
    assert (limited.done_reason, limited.eval_count, limited.message.content) == ("length", 3, "")
    assert limited.message.thinking == "The user asks: "


def test_create_applies_parameters_and_system(client: ollama.Client, http: httpx.Client) -> None:
    lines = ndjson(http.post("/api/create", json={"model": "Brief", "from": CHAT, "system": "be brief",
                                                  "parameters": {"num_ctx": 60, "stop": ["pip"]}}))
    statuses = [line["status"] for line in lines]
    assert statuses[0].startswith("using existing layer sha256:") and statuses[-2:] == ["writing manifest", "success"]
    assert sum(s.startswith("creating new layer sha256:") for s in statuses) == 2
    shown = http.post("/api/show", json={"model": "brief"}).json()
    assert shown["system"] == "be brief" and 'stop                           "pip"' in shown["parameters"]
    assert "num_ctx                        60" in shown["parameters"] and "<|im_start|>" not in shown["parameters"]
    history = [{"role": "user", "content": "old " * 100}, {"role": "user", "content": PROMPT}]
    reply = client.chat(model="brief", messages=history)
    assert reply.prompt_eval_count is not None and reply.prompt_eval_count <= 60
    assert reply.message.content == "Install rag with "  # the model's stop applies
    bigger = client.chat(model="brief", messages=history, options={"num_ctx": 4096})  # requests still win
    assert bigger.prompt_eval_count is not None and bigger.prompt_eval_count > 100
    assert "Brief:latest" in {m.model for m in client.list().models}  # listed as created, matched in any case


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"from": CHAT}, 400, "model is required"),
        ({"model": "x"}, 400, "neither 'from' or 'files' was specified"),
        ({"model": "x", "from": "ghost"}, 404, "model 'ghost' not found"),
        ({"model": "bad name!", "from": CHAT}, 400, "invalid model name"),
        ({"model": "x", "from": CHAT, "parameters": {"num_ctx": "big"}}, 400,
         'option "num_ctx" must be of type integer'),
    ],
)
def test_create_errors(http: httpx.Client, body: dict, status: int, error: str) -> None:
    reply = http.post("/api/create", json={**body, "stream": False})
    assert (reply.status_code, reply.json()) == (status, {"error": error})


def test_bge_m3_is_known_multilingual_and_pullable(client: ollama.Client) -> None:
    assert "bge-m3:latest" not in {m.model for m in client.list().models}
    client.pull("bge-m3")
    shown = client.show("bge-m3")
    assert shown.capabilities == ["embedding"]
    assert (shown.modelinfo["bert.embedding_length"], shown.modelinfo["bert.context_length"]) == (1024, 8192)
    zh = client.embed(model="bge-m3", input=["天空是蓝色的", "天空很蓝", "我喜欢吃面条"]).embeddings
    assert cosine(zh[0], zh[1]) > cosine(zh[0], zh[2])


def test_embedding_latency_faults(ollama_server_factory, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(runs, "sleep", slept.append)
    srv = ollama_server_factory(embed_ms_per_input=5, embed_ms_per_request=20)
    with httpx.Client(base_url=srv.url, timeout=10) as raw:
        raw.post("/api/embed", json={"model": EMBED, "input": ["a", "b", "c"]})
        raw.post("/api/embeddings", json={"model": EMBED, "prompt": "a"})
        raw.post("/v1/embeddings", json={"model": EMBED, "input": ["a", "b"]})
        srv.embed_ms_per_request = 0  # faults are attributes, changeable at any time
        raw.post("/api/embed", json={"model": EMBED, "input": "a"})
        raw.post("/api/chat", json={"model": CHAT, "messages": [{"role": "user", "content": "hi"}]})
    assert slept == [0.035, 0.025, 0.03, 0.005]


def test_embedding_latency_flags_on_the_command_line() -> None:
    from rag.server.__main__ import parse_args

    args = parse_args(["--embed-ms-per-input", "2.5", "--embed-ms-per-request", "40"])
    assert (args.embed_ms_per_input, args.embed_ms_per_request) == (2.5, 40.0)


def test_shift_false_turns_the_silent_cut_into_a_400(http: httpx.Client) -> None:
    history = [{"role": "user", "content": "old " * 100}, {"role": "user", "content": PROMPT}]
    body = {"model": CHAT, "messages": history, "shift": False, "stream": False, "options": {"num_ctx": 60}}
    assert http.post("/api/chat", json=body).status_code == 200  # dropping the old message is enough
    refused = http.post("/api/chat", json={**body, "truncate": False})
    assert (refused.status_code, refused.json()["error"]) == (400, runs.CONTEXT_OVERFLOW)
    generate = http.post("/api/generate", json={"model": CHAT, "prompt": "word " * 100, "shift": False,
                                                "options": {"num_ctx": 60}})
    assert (generate.status_code, generate.json()["error"]) == (400, runs.CONTEXT_OVERFLOW)


def test_loopback_server_refuses_foreign_host_headers(ollama_server: OllamaServer) -> None:
    for host, status in [("evil.example", 403), ("localhost:11434", 200), ("box.local", 200),
                         ("192.168.1.20:11434", 200), ("[::1]:11434", 200)]:
        reply = httpx.get(ollama_server.url + "/api/version", headers={"Host": host})
        assert reply.status_code == status, host
        if status == 403:
            assert reply.content == b""  # a bare 403, not JSON
    assert ollama_server.requests[0].status == 403  # recorded like any other


def test_push_progress_and_errors(client: ollama.Client, http: httpx.Client) -> None:
    lines = list(client.push(EMBED, stream=True))
    assert [line.status for line in lines if not line.digest] == ["retrieving manifest", "pushing manifest",
                                                                 "success"]
    assert all(line.status == "starting upload" and line.total for line in lines if line.digest)
    assert http.post("/api/push", json={}).json() == {"error": "model is required"}


def test_other_request_checks_of_the_error_table(http: httpx.Client) -> None:
    def error(path: str, body: dict) -> tuple[int, str]:
        reply = http.post(path, json={**body, "stream": False})
        return reply.status_code, reply.json()["error"]

    assert error("/api/chat", {"model": CHAT, "messages": [{"role": "user", "content": "hi"}],
                               "top_logprobs": 21}) == (400, "top_logprobs must be between 0 and 20")
    assert error("/api/generate", {"model": CHAT, "prompt": "def f(", "suffix": "return 1"}) == (
        400, f'"{CHAT}" does not support insert')
    assert error("/api/embed", {"model": EMBED, "input": "hello", "options": {"num_ctx": 2}}) == (
        400, "input after truncation exceeds maximum context length")


def test_blob_upload_as_the_sdk_does_it(client: ollama.Client, http: httpx.Client, tmp_path) -> None:
    path = tmp_path / "adapter.bin"
    path.write_bytes("权重 weights".encode())
    digest = client.create_blob(path)
    assert http.head(f"/api/blobs/{digest}").status_code == 200
    assert http.head("/api/blobs/sha256:" + "0" * 64).status_code == 404
    wrong = http.post("/api/blobs/sha256:" + "0" * 64, content=b"other bytes")
    assert wrong.status_code == 400 and wrong.json()["error"].startswith("digest mismatch")
    assert http.head("/api/blobs/nonsense").status_code == 400
    assert http.post("/api/blobs/nonsense", content=b"x").json() == {"error": "invalid digest format"}
