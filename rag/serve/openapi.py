"""The OpenAPI 3.1 schema of `rag serve`, written by hand, served at `/openapi.json` and listed at `/docs`."""

from __future__ import annotations

import html
from typing import Any

_OBJ: dict[str, Any] = {"type": "object"}
_ERROR = {"type": "object", "properties": {"error": {"type": "string"}, "type": {"type": "string"}}}
_CITATION = {"type": "object", "properties": {
    "n": {"type": "integer"}, "source": {"type": "string"}, "page": {"type": ["integer", "null"]},
    "heading": {"type": "string"}, "snippet": {"type": "string"}}}
_CONTEXT = {"type": "object", "properties": {
    "source": {"type": "string"}, "page": {"type": ["integer", "null"]}, "heading": {"type": "string"},
    "score": {"type": "number"}, "text": {"type": "string"}}}
_ANSWER = {"type": "object", "properties": {
    "answer": {"type": "string"}, "citations": {"type": "array", "items": _CITATION},
    "contexts": {"type": "array", "items": _CONTEXT}, "model": {"type": "string"},
    "timings": {"type": "object", "properties": {k: {"type": "number"} for k in ("retrieval", "first_token", "total")}},
    "warnings": {"type": "array", "items": {"type": "string"}}}}
_ASK = {"type": "object", "required": ["question"], "properties": {
    "question": {"type": "string"}, "k": {"type": "integer", "minimum": 1, "maximum": 100},
    "path": {"type": "string", "description": "glob or folder, e.g. docs/*.md"},
    "type": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
             "description": "file type(s): pdf, md, html, txt, rst, code"},
    "history": {"type": "array", "items": {"type": "object", "properties": {
        "role": {"enum": ["user", "assistant"]}, "content": {"type": "string"}}}},
    "collection": {"type": "string"}}}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _json(_ERROR, "error") for c in codes}


def _query(name: str, schema: dict[str, Any], description: str = "", required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


SCHEMA: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "rag serve", "version": "1", "description": (
        "Ask a folder of documents. With --token, every /api and /v1 call needs "
        "`Authorization: Bearer <token>`. POST bodies must be application/json. SSE event shapes: "
        "rag/serve/API.md.")},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "security": [{"bearer": []}],
    "paths": {
        "/api/ask": {"post": {
            "summary": "Answer a question with citations (JSON, or SSE with Accept: text/event-stream)",
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ASK}}},
            "responses": {"200": {"description": "the answer (same keys as `rag ask --json`), or SSE events "
                                  "contexts, piece..., answer | error",
                                  "content": {"application/json": {"schema": _ANSWER},
                                              "text/event-stream": {"schema": {"type": "string"}}}},
                          **_errors(400, 401, 403, 409, 415, 502, 504)}}},
        "/api/search": {"get": {
            "summary": "The best passages (same object as `rag search --json`)",
            "parameters": [_query("q", {"type": "string"}, "the query", True),
                           _query("k", {"type": "integer"}), _query("path", {"type": "string"}),
                           _query("type", {"type": "string"}, "repeatable"),
                           _query("mode", {"enum": ["hybrid", "dense", "bm25"]})],
            "responses": {"200": _json({"type": "object", "properties": {
                "query": {"type": "string"}, "hits": {"type": "array", "items": _CONTEXT}}}),
                **_errors(400, 401, 409, 502)}}},
        "/api/status": {"get": {
            "summary": "Files, chunks, chat model, fingerprint, skipped files, collections, sync running",
            "responses": {"200": _json(_OBJ)}}},
        "/api/index": {"post": {
            "summary": "Sync the indexed folder (SSE progress events with Accept: text/event-stream)",
            "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
                "rebuild": {"type": "boolean"}}}}}},
            "responses": {"200": {"description": "the report (as `rag index --json`), or SSE events "
                                  "progress..., done | error"}, **_errors(400, 401, 403, 409, 415)}}},
        "/api/files/{path}": {"get": {
            "summary": "A source file of the index, by its path as cited",
            "parameters": [{"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the file"}, "404": {"description": "not an indexed source"}}}},
        "/api/tags": {"get": {"summary": "Ollama API: each collection as model rag/<collection>",
                              "responses": {"200": _json(_OBJ)}}},
        "/api/chat": {"post": {"summary": "Ollama API chat with model rag/<collection> (NDJSON stream)",
                               "responses": {"200": {"description": "NDJSON; the final line has `citations`"}}}},
        "/api/generate": {"post": {"summary": "Ollama API generate with model rag/<collection>",
                                   "responses": {"200": {"description": "NDJSON; the final line has `citations`"}}}},
        "/v1/models": {"get": {"summary": "OpenAI API: the collections as models",
                               "responses": {"200": _json(_OBJ)}}},
        "/v1/chat/completions": {"post": {"summary": "OpenAI API chat with model rag/<collection>",
                                          "responses": {"200": {"description": "JSON or SSE; `citations` field"}}}},
    },
}


def docs_html() -> str:
    """`/docs`: the endpoints as a plain page (no Swagger UI: nothing is loaded from the internet)."""
    rows = []
    for path, methods in SCHEMA["paths"].items():
        for method, op in methods.items():
            rows.append(f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                        f"<td>{html.escape(op.get('summary', ''))}</td></tr>")
    return ("<!doctype html><html lang=en><meta charset=utf-8><title>rag serve API</title>"
            "<h1>rag serve API</h1><p>The full schema: <a href=/openapi.json>/openapi.json</a>.</p>"
            "<table>" + "".join(rows) + "</table></html>")
