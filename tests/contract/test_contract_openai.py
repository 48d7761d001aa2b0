"""The OpenAI-compatible routes: response shapes, SSE streaming, errors in OpenAI's shape."""

from __future__ import annotations

import json

import httpx
import pytest


def test_chat_completion_shape(http: httpx.Client, chat_model: str) -> None:
    reply = http.post("/v1/chat/completions", json={"model": chat_model, "max_tokens": 8,
                                                    "messages": [{"role": "user", "content": "Say hello."}]}).json()
    assert reply["object"] == "chat.completion" and reply["id"].startswith("chatcmpl-")
    choice = reply["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] in ("stop", "length")
    usage = reply["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_chat_completion_streams_sse_ending_in_done(http: httpx.Client, chat_model: str) -> None:
    body = {"model": chat_model, "stream": True, "max_tokens": 8, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Say hello."}]}
    reply = http.post("/v1/chat/completions", json=body)
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = [e for e in reply.text.split("\n\n") if e.strip()]
    assert events[-1] == "data: [DONE]" and all(e.startswith("data: ") for e in events)
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_text_completion_shape(http: httpx.Client, chat_model: str) -> None:
    reply = http.post("/v1/completions", json={"model": chat_model, "prompt": "Say hello.", "max_tokens": 8}).json()
    assert reply["object"] == "text_completion" and isinstance(reply["choices"][0]["text"], str)


def test_unknown_chat_model_is_an_openai_error(http: httpx.Client) -> None:
    reply = http.post("/v1/chat/completions", json={"model": "nope-model", "messages": [
        {"role": "user", "content": "hi"}]})
    assert reply.status_code == 404
    error = reply.json()["error"]
    assert error["type"] == "not_found_error" and "nope-model" in error["message"]
    assert error["param"] is None and error["code"] is None


@pytest.mark.model_output
def test_json_object_response_format(http: httpx.Client, chat_model: str) -> None:
    reply = http.post("/v1/chat/completions", json={
        "model": chat_model, "response_format": {"type": "json_object"}, "max_tokens": 200,
        "messages": [{"role": "user", "content": "Give the colour of the sky as JSON."}]}).json()
    assert isinstance(json.loads(reply["choices"][0]["message"]["content"]), (dict, list))
