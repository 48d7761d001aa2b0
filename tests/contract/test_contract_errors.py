"""Error statuses and strings, exactly as the real server's error table gives them (raw HTTP and SDK)."""

from __future__ import annotations

import httpx
import ollama
import pytest

GHOST = "nope-model"


def error_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


def test_unknown_model_on_show_is_named_with_its_tag(http: httpx.Client, sdk: ollama.Client) -> None:
    assert error_of(http.post("/api/show", json={"model": GHOST})) == (404, f"model '{GHOST}:latest' not found")
    with pytest.raises(ollama.ResponseError) as err:
        sdk.show(GHOST)
    assert (err.value.status_code, err.value.error) == (404, f"model '{GHOST}:latest' not found")


def test_unknown_model_on_v1_models_is_an_openai_not_found(http: httpx.Client) -> None:
    reply = http.get("/v1/models/ghost")
    assert reply.status_code == 404
    assert reply.json() == {"error": {"message": "model 'ghost:latest' not found", "type": "not_found_error",
                                      "param": None, "code": None}}


def test_generate_and_chat_name_the_model_as_given(http: httpx.Client, sdk: ollama.Client) -> None:
    generate = http.post("/api/generate", json={"model": GHOST, "prompt": "hi", "stream": False})
    assert error_of(generate) == (404, f"model '{GHOST}' not found")
    with pytest.raises(ollama.ResponseError) as err:
        sdk.chat(model=GHOST, messages=[{"role": "user", "content": "hi"}])
    assert (err.value.status_code, err.value.error) == (404, f"model '{GHOST}' not found")


def test_embed_uses_its_own_wording(http: httpx.Client, sdk: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        sdk.embed(model=GHOST, input="hello")
    assert (err.value.status_code, err.value.error) == (404, f'model "{GHOST}" not found, try pulling it first')
    legacy = http.post("/api/embeddings", json={"model": GHOST, "prompt": "hello"})
    assert error_of(legacy) == (404, f'model "{GHOST}" not found, try pulling it first')


def test_missing_model(http: httpx.Client) -> None:
    assert error_of(http.post("/api/chat", json={"messages": []})) == (400, "model is required")
    assert error_of(http.post("/api/show", json={})) == (400, "model is required")
    assert error_of(http.post("/api/generate", json={"prompt": "hi"})) == (404, "model '' not found")
    assert error_of(http.post("/api/embed", json={"input": "hi"})) == (404, "model '' not found")


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", "missing request body"),
        (b"xyz", "invalid character 'x' looking for beginning of value"),
        (b'{"model": "m"', "unexpected EOF"),
    ],
)
def test_unreadable_bodies(http: httpx.Client, raw: bytes, error: str) -> None:
    reply = http.post("/api/chat", content=raw, headers={"Content-Type": "application/json"})
    assert error_of(reply) == (400, error)


def test_wrong_field_types_get_gos_decoder_message(http: httpx.Client, chat_model: str) -> None:
    content = http.post("/api/chat", json={"model": chat_model, "messages": [{"role": "user", "content": 5}]})
    assert error_of(content) == (
        400, "json: cannot unmarshal number into Go struct field Message.messages.content of type string")
    stream = http.post("/api/generate", json={"model": chat_model, "prompt": "hi", "stream": "no"})
    assert error_of(stream) == (
        400, "json: cannot unmarshal string into Go struct field GenerateRequest.stream of type bool")
    messages = http.post("/api/chat", json={"model": chat_model, "messages": "hello"})
    assert error_of(messages) == (
        400, "json: cannot unmarshal string into Go struct field ChatRequest.messages of type []api.Message")


def test_bad_option_type_fails_at_scheduling(http: httpx.Client, chat_model: str) -> None:
    body = {"model": chat_model, "messages": [{"role": "user", "content": "hi"}], "stream": False,
            "options": {"num_ctx": "big"}}
    assert error_of(http.post("/api/chat", json=body)) == (500, 'option "num_ctx" must be of type integer')


def test_embed_input_of_the_wrong_type(http: httpx.Client, embed_model: str) -> None:
    assert error_of(http.post("/api/embed", json={"model": embed_model, "input": 5})) == (400, "invalid input type")


def test_embedder_cannot_chat_and_chat_model_cannot_think(http: httpx.Client, sdk: ollama.Client,
                                                         embed_model: str, chat_model: str) -> None:
    generate = http.post("/api/generate", json={"model": embed_model, "prompt": "hi", "stream": False})
    assert error_of(generate) == (400, f'"{embed_model}" does not support generate')
    with pytest.raises(ollama.ResponseError) as err:
        sdk.chat(model=chat_model, messages=[{"role": "user", "content": "hi"}], think=True)
    assert (err.value.status_code, err.value.error) == (400, f'"{chat_model}" does not support thinking')


def test_unknown_route_and_wrong_method_are_plain_text(http: httpx.Client) -> None:
    missing = http.get("/api/nope")
    assert (missing.status_code, missing.text) == (404, "404 page not found")
    assert http.get("/api/chat").status_code == 405


def test_request_checks_before_any_model_work(http: httpx.Client, chat_model: str) -> None:
    logprobs = http.post("/api/chat", json={"model": chat_model, "stream": False, "top_logprobs": 21,
                                            "messages": [{"role": "user", "content": "hi"}]})
    assert error_of(logprobs) == (400, "top_logprobs must be between 0 and 20")
    assert error_of(http.post("/api/push", json={})) == (400, "model is required")
    raw = http.post("/api/generate", json={"model": chat_model, "prompt": "hi", "raw": True, "system": "x"})
    assert error_of(raw) == (400, "raw mode does not support template, system, or context")
