"""Model management and metadata: tags, show, pull's status sequence, create with parameters, /v1/models."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import ollama
import pytest

PULL_PHASES = ["pulling manifest", "verifying sha256 digest", "writing manifest", "removing any unused layers",
               "success"]


def test_tags_and_show_describe_the_models(sdk: ollama.Client, embed_model: str, chat_model: str) -> None:
    names = {m.model for m in sdk.list().models}
    assert any(n in names for n in (embed_model, f"{embed_model}:latest"))
    shown = sdk.show(embed_model)
    assert "embedding" in (shown.capabilities or [])
    arch = shown.modelinfo["general.architecture"]
    assert shown.modelinfo[f"{arch}.embedding_length"] > 0 and shown.modelinfo[f"{arch}.context_length"] > 0
    assert "completion" in (sdk.show(chat_model).capabilities or [])


def test_version_and_root(http: httpx.Client) -> None:
    assert http.get("/").text == "Ollama is running"
    assert http.get("/api/version").json()["version"]


def test_pull_streams_the_status_sequence(sdk: ollama.Client, embed_model: str) -> None:
    progress = list(sdk.pull(embed_model, stream=True))
    phases = [p.status for p in progress if not p.digest]
    # The real server says "removing any unused layers" only when there are some; the rest is fixed.
    assert [p for p in phases if p != "removing any unused layers"] == [p for p in PULL_PHASES if p != PULL_PHASES[3]]
    assert set(phases) <= set(PULL_PHASES)
    layers = [p for p in progress if p.digest]
    assert layers and all(p.status == f"pulling {p.digest[7:19]}" and p.total for p in layers)
    assert sdk.pull(embed_model).status == "success"


def test_pull_of_an_unknown_name(http: httpx.Client, sdk: ollama.Client) -> None:
    ghost = f"no-such-model-{uuid.uuid4().hex[:8]}"
    streamed = [json.loads(line) for line in http.post("/api/pull", json={"model": ghost}).text.splitlines()]
    assert streamed[0] == {"status": "pulling manifest"}
    assert streamed[-1] == {"error": "pull model manifest: file does not exist"}
    with pytest.raises(ollama.ResponseError) as err:
        sdk.pull(ghost)
    assert err.value.error == "pull model manifest: file does not exist"


@pytest.fixture
def derived(sdk: ollama.Client, chat_model: str) -> Iterator[str]:
    """A model created from the chat model with a small num_ctx and a system prompt; deleted afterwards."""
    name = f"contract-small-ctx-{uuid.uuid4().hex[:8]}"
    statuses = [p.status for p in sdk.create(name, from_=chat_model, parameters={"num_ctx": 128},
                                             system="Answer in one short sentence.", stream=True)]
    assert statuses[-2:] == ["writing manifest", "success"]
    yield name
    sdk.delete(name)


def test_created_model_is_listed_and_shown_with_its_parameters(sdk: ollama.Client, http: httpx.Client,
                                                               derived: str) -> None:
    assert f"{derived}:latest" in {m.model for m in sdk.list().models}
    shown = sdk.show(derived)
    params = {line.split()[0]: line.split()[1] for line in (shown.parameters or "").splitlines() if line.strip()}
    assert params["num_ctx"] == "128"
    raw = http.post("/api/show", json={"model": derived}).json()  # the SDK drops `system`
    assert raw["system"] == "Answer in one short sentence." and raw["details"]["family"]


def test_created_num_ctx_applies_to_v1_chat(http: httpx.Client, derived: str, chat_model: str) -> None:
    # A fresh prefix each run: a real server's prompt cache would otherwise not count what it reuses.
    filler = f"Session {uuid.uuid4().hex}. " + " ".join(f"note{i}" for i in range(400))
    messages = [{"role": "user", "content": filler}, {"role": "assistant", "content": "Noted."},
                {"role": "user", "content": "What is the capital of France?"}]
    small = http.post("/v1/chat/completions", json={"model": derived, "messages": messages, "max_tokens": 4})
    base = http.post("/v1/chat/completions", json={"model": chat_model, "messages": messages, "max_tokens": 4})
    assert small.status_code == base.status_code == 200
    assert small.json()["usage"]["prompt_tokens"] <= 128 < base.json()["usage"]["prompt_tokens"]


def test_v1_models_lists_installed_models(http: httpx.Client, chat_model: str) -> None:
    listed = http.get("/v1/models").json()
    assert listed["object"] == "list" and all(m["object"] == "model" for m in listed["data"])
    one = http.get(f"/v1/models/{chat_model}").json()
    assert one["object"] == "model" and one["owned_by"] == "library"
