"""Embeddings: normalisation, `num_ctx` truncation and its `prompt_eval_count`, `truncate: false`."""

from __future__ import annotations

import math

import httpx
import ollama

LONG = "word " * 600  # one token per word in any tokenizer, far over any num_ctx used here


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


def test_embed_returns_unit_vectors_in_input_order(sdk: ollama.Client, embed_model: str) -> None:
    reply = sdk.embed(model=embed_model, input=["the sky is blue", "天空是蓝色的"])
    assert len(reply.embeddings) == 2 and len(reply.embeddings[0]) == len(reply.embeddings[1]) > 0
    assert all(abs(norm(list(v)) - 1) < 1e-3 for v in reply.embeddings)
    assert reply.prompt_eval_count and reply.prompt_eval_count > 0
    alone = sdk.embed(model=embed_model, input="天空是蓝色的").embeddings[0]
    assert sum(a * b for a, b in zip(alone, reply.embeddings[1], strict=True)) > 0.99


def test_empty_input_only_loads(sdk: ollama.Client, embed_model: str) -> None:
    assert list(sdk.embed(model=embed_model, input=[]).embeddings) == []


def test_num_ctx_truncates_and_prompt_eval_count_shows_it(http: httpx.Client, embed_model: str) -> None:
    reply = http.post("/api/embed", json={"model": embed_model, "input": LONG, "options": {"num_ctx": 100}})
    assert reply.status_code == 200 and reply.json()["prompt_eval_count"] == 100


def test_truncate_false_refuses_an_over_long_input(http: httpx.Client, embed_model: str) -> None:
    body = {"model": embed_model, "input": LONG, "truncate": False, "options": {"num_ctx": 100}}
    reply = http.post("/api/embed", json=body)
    assert (reply.status_code, reply.json()) == (400, {"error": "the input length exceeds the context length"})


def test_dimensions_cut_and_renormalise(sdk: ollama.Client, embed_model: str) -> None:
    cut = sdk.embed(model=embed_model, input="hello world", dimensions=64).embeddings[0]
    assert len(cut) == 64 and abs(norm(list(cut)) - 1) < 1e-3


def test_legacy_embeddings_point_the_same_way(sdk: ollama.Client, embed_model: str) -> None:
    legacy = list(sdk.embeddings(model=embed_model, prompt="hello world").embedding)
    unit = list(sdk.embed(model=embed_model, input="hello world").embeddings[0])
    assert len(legacy) == len(unit)
    cosine = sum(a * b for a, b in zip(legacy, unit, strict=True)) / norm(legacy)
    assert cosine > 0.99


def test_v1_embeddings_shape(http: httpx.Client, embed_model: str) -> None:
    reply = http.post("/v1/embeddings", json={"model": embed_model, "input": ["a b", "c"]}).json()
    assert reply["object"] == "list" and [d["index"] for d in reply["data"]] == [0, 1]
    assert reply["data"][0]["object"] == "embedding" and reply["usage"]["prompt_tokens"] > 0
