"""Generate and chat: streaming lines, context overflow, thinking, `format`, `num_predict`, `stop`."""

from __future__ import annotations

import json
import uuid

import httpx
import ollama
import pytest

QUESTION = "Describe the sea in two long sentences."
FILLER = " ".join(f"note{i}" for i in range(400))  # ~400+ tokens in any tokenizer


def fresh(text: str) -> str:
    """``text`` behind a unique prefix: a real server's prompt cache does not count reused tokens."""
    return f"Session {uuid.uuid4().hex}. {text}"


def lines(response: httpx.Response) -> list[dict]:
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def test_generate_streams_ndjson_then_a_final_line_with_metrics(http: httpx.Client, chat_model: str) -> None:
    reply = http.post("/api/generate", json={"model": chat_model, "prompt": QUESTION, "think": False,
                                             "options": {"num_predict": 8}})
    assert reply.headers["content-type"].startswith("application/x-ndjson")
    parts = lines(reply)
    assert not any(p["done"] for p in parts[:-1]) and all("response" in p for p in parts)
    final = parts[-1]
    assert final["done"] and final["response"] == "" and final["done_reason"] in ("stop", "length")
    assert isinstance(final["context"], list)
    for key in ("total_duration", "prompt_eval_count", "eval_count"):
        assert final[key] > 0, key


def test_chat_streams_message_pieces(sdk: ollama.Client, chat_model: str) -> None:
    parts = list(sdk.chat(model=chat_model, messages=[{"role": "user", "content": QUESTION}], stream=True,
                          options={"num_predict": 8}))
    assert parts[-1].done and parts[-1].message.content == "" and parts[-1].eval_count
    assert all(p.message.role == "assistant" for p in parts)
    assert "".join(p.message.content for p in parts).strip()


def test_empty_prompt_and_messages_load_the_model(sdk: ollama.Client, chat_model: str) -> None:
    assert sdk.generate(model=chat_model, prompt="").done_reason == "load"
    assert sdk.chat(model=chat_model, messages=[]).done_reason == "load"


def test_generate_prompt_over_num_ctx_is_cut_silently(sdk: ollama.Client, chat_model: str) -> None:
    reply = sdk.generate(model=chat_model, prompt=fresh(f"{FILLER}\n{QUESTION}"), options={"num_ctx": 128, "num_predict": 4})
    assert reply.done and reply.prompt_eval_count is not None and 0 < reply.prompt_eval_count <= 128


def test_chat_over_num_ctx_drops_old_messages(sdk: ollama.Client, chat_model: str) -> None:
    history = [{"role": "user", "content": fresh(FILLER)}, {"role": "assistant", "content": "Noted."}]
    messages = [{"role": "system", "content": "Answer briefly."}, *history, {"role": "user", "content": QUESTION}]
    full = sdk.chat(model=chat_model, messages=messages, options={"num_ctx": 2048, "num_predict": 4})
    cut = sdk.chat(model=chat_model, messages=messages, options={"num_ctx": 128, "num_predict": 4})
    assert full.prompt_eval_count and full.prompt_eval_count > 400
    assert cut.prompt_eval_count and cut.prompt_eval_count <= 128


@pytest.mark.model_output
def test_num_predict_stops_with_length(sdk: ollama.Client, chat_model: str) -> None:
    reply = sdk.generate(model=chat_model, prompt=QUESTION, options={"num_predict": 5})
    assert (reply.done_reason, reply.eval_count) == ("length", 5)


@pytest.mark.model_output
def test_stop_string_ends_the_reply_before_it(sdk: ollama.Client, chat_model: str) -> None:
    reply = sdk.chat(model=chat_model, messages=[{"role": "user", "content": QUESTION}],
                     options={"stop": ["e"], "num_predict": 200})
    assert reply.done_reason == "stop" and "e" not in reply.message.content


@pytest.mark.model_output
def test_format_json_gives_valid_json(sdk: ollama.Client, chat_model: str) -> None:
    reply = sdk.chat(model=chat_model, format="json", options={"num_predict": 200},
                     messages=[{"role": "user", "content": "Give the colour of the sky as JSON."}])
    assert isinstance(json.loads(reply.message.content), (dict, list))


@pytest.mark.model_output
def test_format_schema_gives_the_required_keys(sdk: ollama.Client, chat_model: str) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city", "population"]}
    reply = sdk.generate(model=chat_model, prompt="Name a large city and its population, as JSON.", format=schema,
                         options={"num_predict": 200})
    data = json.loads(reply.response)
    assert isinstance(data["city"], str) and isinstance(data["population"], int)


@pytest.mark.model_output
def test_thinking_model_thinks_unless_told_not_to(sdk: ollama.Client, think_model: str) -> None:
    messages = [{"role": "user", "content": "Is 7 a prime number? Answer yes or no."}]
    default = sdk.chat(model=think_model, messages=messages)
    assert default.message.thinking and default.message.content.strip()
    off = sdk.chat(model=think_model, messages=messages, think=False)
    assert not off.message.thinking and off.message.content.strip()
    generated = sdk.generate(model=think_model, prompt="Is 7 a prime number?", think=True)
    assert generated.thinking and generated.response.strip()


@pytest.mark.model_output
def test_thinking_streams_as_its_own_pieces(http: httpx.Client, think_model: str) -> None:
    parts = lines(http.post("/api/chat", json={"model": think_model, "think": True,
                                               "messages": [{"role": "user", "content": "Is 9 a prime number?"}]}))
    thinking = [p for p in parts if p["message"].get("thinking")]
    assert thinking and all(p["message"]["content"] == "" for p in thinking)
    assert "".join(p["message"]["content"] for p in parts).strip()


def test_shift_false_refuses_a_prompt_over_num_ctx(http: httpx.Client, chat_model: str) -> None:
    body = {"model": chat_model, "prompt": fresh(FILLER), "shift": False, "stream": False,
            "options": {"num_ctx": 128, "num_predict": 4}}
    reply = http.post("/api/generate", json=body)
    assert reply.status_code == 400
    assert reply.json()["error"].startswith("the prompt is longer than the context length currently available")
    chat = http.post("/api/chat", json={"model": chat_model, "shift": False, "stream": False,
                                        "options": {"num_ctx": 128, "num_predict": 4},
                                        "messages": [{"role": "user", "content": fresh(FILLER)}]})
    assert chat.status_code == 400
