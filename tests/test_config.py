"""One configuration: one settings object, flags > RAG_* environment > defaults, typos named."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import ingest.config as config
from ingest.config import IndexSettings, Settings, environment_variables
from ingest.errors import ConfigError, ConfigWarning
from ingest.ollama_calls import Timeouts
from rag import RAG
from rag.cli import cli

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    config._warned.clear()
    yield
    config._warned.clear()


def rag(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="rag")


def test_argument_beats_environment_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    default = Settings.resolve()
    assert (default.k, default.index.chunk_tokens, default.hybrid) == (5, 400, True)
    assert default.index.db == Path(".rag") and default.index.timeouts == Timeouts()
    monkeypatch.setenv("RAG_K", "7")
    monkeypatch.setenv("RAG_CHUNK_TOKENS", "300")
    monkeypatch.setenv("RAG_HYBRID", "off")
    monkeypatch.setenv("RAG_DB", "from-env")
    monkeypatch.setenv("RAG_MAX_PAGES", "12")
    monkeypatch.setenv("RAG_READ_TIMEOUT", "42")
    monkeypatch.setenv("RAG_CHAT_MODEL", "qwen3:4b")
    env = Settings.resolve()
    assert (env.k, env.index.chunk_tokens, env.hybrid, env.index.max_pages) == (7, 300, False, 12)
    assert env.index.db == Path("from-env") and env.index.timeouts.read == 42.0
    assert env.chat_model == "qwen3:4b"
    given = Settings.resolve(k=2, chunk_tokens=200, hybrid=True, db="flag", chat_model="gemma3:270m")
    assert (given.k, given.index.chunk_tokens, given.hybrid) == (2, 200, True)
    assert given.index.db == Path("flag") and given.chat_model == "gemma3:270m"
    kb = RAG(db="api", k=3, chunk_overlap=10)  # the API resolves through the same object
    assert kb.settings.k == 3 and kb.index_settings.chunk_overlap == 10 and kb.index_settings.chunk_tokens == 300


def test_index_settings_keeps_its_fields_and_resolve() -> None:
    names = {f.name for f in fields(IndexSettings)}
    assert {"host", "db", "collection", "embed_model", "chunk_tokens", "chunk_overlap", "batch_size",
            "max_file_bytes", "include_hidden", "timeouts", "max_text_ratio", "max_text_chars", "max_pages",
            "max_parse_seconds", "chroma_url", "chroma_token", "lock_wait", "parallel"} <= names
    index = IndexSettings.resolve(host=":5000", db="x", collection="notes", embed_model="bge-m3",
                                  max_pages=3, include_hidden=True)
    assert (index.host, index.db, index.collection, index.embed_model) == (
        "http://127.0.0.1:5000", Path("x"), "notes", "bge-m3")
    assert index.max_pages == 3 and index.include_hidden is True
    assert Settings.resolve(index=index, k=4, chunk_tokens=128).index == IndexSettings.resolve(
        host=":5000", db="x", collection="notes", embed_model="bge-m3", max_pages=3, include_hidden=True,
        chunk_tokens=128)


def test_a_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_K", "five")
    with pytest.raises(ConfigError, match=r"RAG_K='five' is not a valid k .* — fix or unset it"):
        Settings.resolve()
    result = rag("search", "水", "--db", "nowhere")
    assert result.exit_code == 2 and "RAG_K='five'" in result.stderr
    monkeypatch.delenv("RAG_K")
    monkeypatch.setenv("RAG_READ_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="RAG_READ_TIMEOUT='soon'"):
        IndexSettings.resolve()


def test_a_collection_name_chroma_rejects_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"'a\.\.b' is not a collection name Chroma accepts: .*\(\.\.\)"):
        RAG(collection="a..b")
    monkeypatch.setenv("RAG_COLLECTION", "中文")
    result = rag("status")
    assert result.exit_code == 2, result.output
    assert "'中文' is not a collection name Chroma accepts" in result.stderr


@pytest.mark.parametrize(
    ("call", "typo", "closest"),
    [
        (Settings.resolve, "chunk_token", "chunk_tokens"),
        (Settings.resolve, "per_file_caps", "per_file_cap"),
        (IndexSettings.resolve, "max_page", "max_pages"),
        (RAG, "hybird", "hybrid"),
    ],
)
def test_an_unknown_option_names_the_closest(call, typo: str, closest: str) -> None:
    with pytest.raises(TypeError, match=f"unexpected option '{typo}' — did you mean '{closest}'"):
        call(**{typo: 1})


def test_an_unknown_rag_variable_warns_once_naming_the_closest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_CHUNK_TOKEN", "500")
    with pytest.warns(ConfigWarning) as caught:
        settings = Settings.resolve()
        Settings.resolve()  # once per process, not per resolution
    assert [str(w.message) for w in caught] == [
        "RAG_CHUNK_TOKEN is not a rag setting and is ignored — did you mean RAG_CHUNK_TOKENS?"
    ]
    assert settings.index.chunk_tokens == 400  # ignored, not an error


def test_the_cli_prints_the_warning_as_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_CHAT_MODLE", "x")
    monkeypatch.setenv("RAG_SERVE_TOKEN", "t")  # the project's own non-setting variables are not typos
    monkeypatch.setenv("RAG_ZZZ_UNRELATED", "1")
    result = rag("status", "--db", "nowhere")
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert lines == [
        "warning: RAG_CHAT_MODLE is not a rag setting and is ignored — did you mean RAG_CHAT_MODEL?",
        "warning: RAG_ZZZ_UNRELATED is not a rag setting and is ignored — see the configuration table in "
        "the README",
    ]
    assert result.exit_code == 5  # the command still ran (no index there)


def test_no_warning_without_unknown_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_K", "3")
    monkeypatch.setenv("RAG_TEST_CRASH_AT", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Settings.resolve()


def test_the_readme_table_lists_every_variable() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| setting | flag / argument | environment | default |"):]
    table = table[: table.index("\n\n")]
    listed = set(re.findall(r"`((?:RAG|OLLAMA)_[A-Z_]+)", table))
    assert set(environment_variables()) <= listed, sorted(set(environment_variables()) - listed)
    assert listed <= set(environment_variables()) | config.OTHER_VARIABLES


def test_only_the_settings_read_rag_variables() -> None:
    """No module reads a RAG_* setting from the environment behind the settings object's back."""
    readers = re.compile(r"""(?:environ\.get\(|getenv\(|environ\[)\s*["'](RAG_[A-Z_]+)["']\s*(?!\]\s*=[^=])""")
    allowed = {"ingest/config.py", "ingest/ollama_calls.py"}
    offenders = []
    for path in sorted([*(REPO / "rag").rglob("*.py"), *(REPO / "ingest").rglob("*.py")]):
        rel = path.relative_to(REPO).as_posix()
        for var in readers.findall(path.read_text(encoding="utf-8")):
            if rel not in allowed and var in environment_variables():
                offenders.append(f"{rel}: {var}")
    assert offenders == []
