"""Every exception the SDK, httpx or pydantic can raise becomes a `RagError` at the one seam."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import socket
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import httpx
import ollama
import pydantic
import pytest
from ollama._client import CONNECTION_ERROR_MESSAGE

import ingest
import ingest.errors as errors
import rag
from ingest import ollama_calls
from ingest.errors import (
    ModelCapabilityError,
    ModelNotFound,
    OllamaError,
    OllamaResponseError,
    OllamaTimeout,
    OllamaUnreachable,
    RagError,
    ServerBusy,
    StreamError,
)
from ingest.ollama_calls import call, map_error, stream

HOST = "http://127.0.0.1:11434"
REQUEST = httpx.Request("POST", HOST + "/api/chat")


def _validation_error() -> pydantic.ValidationError:
    try:
        ollama.Client(host="http://127.0.0.1:9").chat(model="", messages=[])
    except pydantic.ValidationError as exc:
        return exc
    raise AssertionError("the SDK accepted an empty model name")


SDK_EXCEPTIONS: list[tuple[str, Callable[[], BaseException], type[RagError], str]] = [
    (
        "404 chat",
        lambda: ollama.ResponseError('{"error":"model \'nope\' not found"}', 404),
        ModelNotFound,
        "model nope is not available on http://127.0.0.1:11434 — run `rag models pull nope`",
    ),
    (
        "404 embed",
        lambda: ollama.ResponseError('model "nope" not found, try pulling it first', 404),
        ModelNotFound,
        "rag models pull nope",
    ),
    (
        "404 /v1 body",
        lambda: ollama.ResponseError(
            '{"error":{"message":"model \'nope\' not found","type":"not_found_error"}}', 404
        ),
        ModelNotFound,
        "rag models pull nope",
    ),
    ("404 route", lambda: ollama.ResponseError("404 page not found", 404), OllamaResponseError, "upgrade"),
    (
        "400 capability",
        lambda: ollama.ResponseError('{"error":"\\"nomic\\" does not support chat"}', 400),
        ModelCapabilityError,
        "does not support chat",
    ),
    (
        "400 other",
        lambda: ollama.ResponseError('{"error":"invalid model name"}', 400),
        OllamaResponseError,
        "400: invalid model name",
    ),
    (
        "500",
        lambda: ollama.ResponseError('{"error":"out of memory"}', 500),
        OllamaResponseError,
        "out of memory",
    ),
    (
        "503",
        lambda: ollama.ResponseError('{"error":"server busy, please try again."}', 503),
        ServerBusy,
        "OLLAMA_MAX_QUEUE",
    ),
    ("-1 mid-stream", lambda: ollama.ResponseError("injected stream failure"), StreamError, "mid-stream"),
    (
        "not json body",
        lambda: ollama.ResponseError("<html>bad gateway</html>", 502),
        OllamaResponseError,
        "502",
    ),
    (
        "ConnectionError",
        lambda: ConnectionError(CONNECTION_ERROR_MESSAGE),
        OllamaUnreachable,
        "Ollama is not reachable at http://127.0.0.1:11434 — start it (`ollama serve`) or set OLLAMA_HOST",
    ),
    (
        "ConnectError",
        lambda: httpx.ConnectError("refused", request=REQUEST),
        OllamaUnreachable,
        "ollama serve",
    ),
    ("ReadError", lambda: httpx.ReadError("reset", request=REQUEST), OllamaUnreachable, "ollama serve"),
    ("ReadTimeout", lambda: httpx.ReadTimeout("slow", request=REQUEST), OllamaTimeout, "RAG_READ_TIMEOUT"),
    ("ConnectTimeout", lambda: httpx.ConnectTimeout("slow", request=REQUEST), OllamaTimeout, "in time"),
    ("PoolTimeout", lambda: httpx.PoolTimeout("slow", request=REQUEST), OllamaTimeout, "in time"),
    ("WriteTimeout", lambda: httpx.WriteTimeout("slow", request=REQUEST), OllamaTimeout, "in time"),
    (  # the server closed the connection without answering: it went away mid-request
        "RemoteProtocolError",
        lambda: httpx.RemoteProtocolError("closed", request=REQUEST),
        OllamaUnreachable,
        "OLLAMA_HOST",
    ),
    ("ValidationError", _validation_error, OllamaError, "at least 1 character"),
]


@pytest.mark.parametrize(
    ("make", "kind", "text"), [case[1:] for case in SDK_EXCEPTIONS], ids=[case[0] for case in SDK_EXCEPTIONS]
)
def test_map_error_maps_every_sdk_exception(make: Callable[[], BaseException], kind: type, text: str) -> None:
    err = map_error(make(), HOST)
    assert type(err) is kind
    assert text in str(err)
    assert "\n" not in str(err)
    assert err.host == HOST


def _all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def _instance(cls: type[httpx.HTTPError]) -> httpx.HTTPError:
    if issubclass(cls, httpx.HTTPStatusError):
        return cls("bad", request=REQUEST, response=httpx.Response(500, request=REQUEST))
    if issubclass(cls, httpx.RequestError):
        return cls("boom", request=REQUEST)
    return cls("boom")


@pytest.mark.parametrize(
    "cls", sorted(_all_subclasses(httpx.HTTPError) | {httpx.HTTPError}, key=lambda c: c.__name__)
)
def test_no_httpx_exception_slips_through(cls: type[httpx.HTTPError]) -> None:
    """A new httpx exception class would still come out as a RagError."""
    if cls.__module__.split(".")[0] != "httpx":
        pytest.skip(f"{cls.__module__}.{cls.__name__} is not httpx's own")
    assert isinstance(map_error(_instance(cls), HOST), RagError)


def test_map_error_refuses_to_swallow_foreign_exceptions() -> None:
    with pytest.raises(KeyError):
        map_error(KeyError("x"), HOST)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_plain_refused_connection_is_mapped() -> None:
    host = f"http://127.0.0.1:{_free_port()}"
    client = ollama_calls.make_client(host)
    with pytest.raises(OllamaUnreachable, match="not reachable"):
        call(client.list, host=host)


def test_streamed_refused_connection_is_mapped_lazily() -> None:
    host = f"http://127.0.0.1:{_free_port()}"
    client = ollama_calls.make_client(host)
    parts = stream(lambda: client.pull("x", stream=True), host=host)  # nothing sent yet
    with pytest.raises(OllamaUnreachable, match="not reachable"):
        next(parts)


def test_empty_model_is_mapped_not_a_pydantic_error() -> None:
    client = ollama_calls.make_client(HOST)
    with pytest.raises(OllamaError, match="at least 1 character"):
        call(client.chat, "", [], host=HOST)


def _rag_package() -> ModuleType:
    if getattr(rag, "__file__", None):
        return rag
    # A stale editable install can make `rag` a namespace package under pytest: read the real file.
    spec = importlib.util.spec_from_file_location(
        "rag_public_api", Path(ingest.__file__).parent.parent / "rag/__init__.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rag_reexports_the_whole_error_tree() -> None:
    package = _rag_package()
    tree = {name for name, obj in vars(errors).items() if inspect.isclass(obj) and issubclass(obj, RagError)}
    assert tree <= set(package.__all__)
    for name in package.__all__:
        assert getattr(package, name) is not None


@pytest.mark.parametrize(
    "module", ["rag.client", "rag.client_v1", "rag.models_types", "rag.cli.doctor", "rag.cli.models"]
)
def test_all_is_honest(module: str) -> None:
    """`__all__` names exist, and every public class/function defined in the module is listed."""
    mod = importlib.import_module(module)
    exported = set(getattr(mod, "__all__", ()))
    for name in exported:
        assert hasattr(mod, name), f"{module}.__all__ lists missing {name}"
    public = {
        name
        for name, obj in vars(mod).items()
        if not name.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", "") == module
    }
    if exported:
        assert public <= exported, f"{module} does not export {sorted(public - exported)}"


# -- errors carry fields, not text to parse --------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "kind", "text"), [case[1:] for case in SDK_EXCEPTIONS], ids=[case[0] for case in SDK_EXCEPTIONS]
)
def test_every_mapped_error_carries_what_and_fix(make: Callable[[], BaseException], kind: type, text: str) -> None:
    err = map_error(make(), HOST)
    assert err.what and err.host == HOST
    assert str(err) == (f"{err.what} — {err.fix}" if err.fix else err.what)
    assert " — " not in err.what  # the fix is a field, never glued into the first part


def test_rag_error_fields_survive_pickling() -> None:
    import pickle

    err = ModelNotFound("model 水 is not available on h", fix="run `rag models pull 水`", host="h", model="水")
    again = pickle.loads(pickle.dumps(err))
    assert (again.what, again.fix, again.model, str(again)) == (err.what, err.fix, "水", str(err))
    assert str(RagError("plain")) == "plain" and RagError("plain").fix == ""


def test_one_context_manager_translates_at_the_seam() -> None:
    with pytest.raises(OllamaTimeout) as caught, ollama_calls.ollama_errors(HOST, "m"):
        raise httpx.ReadTimeout("slow", request=REQUEST)
    assert caught.value.phase == "read" and "RAG_READ_TIMEOUT" in caught.value.fix
    with pytest.raises(ModelNotFound) as missing, ollama_calls.ollama_errors(HOST, "qwen3"):
        raise ollama.ResponseError("model 'qwen3' not found", 404)
    assert missing.value.model == "qwen3" and missing.value.fix == "run `rag models pull qwen3`"
    with pytest.raises(KeyError), ollama_calls.ollama_errors(HOST):
        raise KeyError("not the SDK's: passes through")


def test_doctor_reads_what_and_fix_from_the_error() -> None:
    from rag.cli.doctor import check_server
    from rag.client import OllamaClient

    host = f"http://127.0.0.1:{_free_port()}"
    with OllamaClient(host, retries=0) as client:
        check, health = check_server(client)
    assert health is None
    assert (check.status, check.detail, check.fix) == (
        "fail", f"Ollama is not reachable at {host}", "start it (`ollama serve`) or set OLLAMA_HOST"
    )


def test_doctor_tells_a_missing_collection_by_its_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest import store as store_module
    from ingest.errors import CollectionNotFound, StoreError
    from rag.cli.doctor import read_fingerprint

    tmp_path.joinpath("db").mkdir()

    def missing(*args: object, **kwargs: object) -> None:
        raise CollectionNotFound("the message does not matter", fix="run `rag index PATH`")

    monkeypatch.setattr(store_module.Store, "open", classmethod(missing))
    assert read_fingerprint(tmp_path / "db", "docs") is None

    def broken(*args: object, **kwargs: object) -> None:
        raise StoreError("no such luck: the store is corrupt")  # starts with "no ", yet not a missing index

    monkeypatch.setattr(store_module.Store, "open", classmethod(broken))
    with pytest.raises(StoreError, match="corrupt"):
        read_fingerprint(tmp_path / "db", "docs")


PRIVATE_SDK = ("_parse_host", "_request_raw", "._client._client", "ollama._client", "from ollama._", "_sdk._client")


def test_no_sdk_private_parts_in_the_code() -> None:
    """Only public `ollama` names are used, so any 0.x SDK from 0.6 on fits (pyproject: ollama>=0.6,<1)."""
    root = Path(ingest.__file__).parent.parent
    offenders = [
        f"{path.relative_to(root)}: {name}"
        for path in sorted([*(root / "rag").rglob("*.py"), *(root / "ingest").rglob("*.py")])
        for name in PRIVATE_SDK
        if name in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
