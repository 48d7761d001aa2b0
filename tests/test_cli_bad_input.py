"""Bad CLI and API input: blank questions, collection names Chroma rejects, misspelt options."""

from __future__ import annotations

from pathlib import Path

import chromadb
import pytest
from click.testing import CliRunner, Result

from rag import RAG
from rag.cli import cli
from rag.cli.options import collection_name_problem


def rag(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="rag")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("command", ["ask", "search"])
@pytest.mark.parametrize("question", ["", "   ", "\t\n", "\u3000"])  # \u3000: the ideographic space
def test_an_empty_or_blank_question_exits_2(command: str, question: str) -> None:
    result = rag(command, question, "--host", "http://127.0.0.1:9")
    assert result.exit_code == 2, result.output
    assert "the question is empty" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["ask", "what?"],
        ["search", "what?"],
        ["index", "."],
        ["status"],
        ["chat"],
        ["doctor", "--host", "http://127.0.0.1:9"],
    ],
)
def test_a_collection_name_chroma_rejects_exits_2_with_its_rule(args: list[str]) -> None:
    result = rag(*args, "--collection", "a..b")
    assert result.exit_code == 2, result.output
    assert "'a..b' is not a collection name Chroma accepts" in result.stderr
    assert "no two consecutive periods (..)" in result.stderr
    assert not Path(".rag").exists()  # nothing was created


NAMES = [
    "docs", "a..b", "ab", "abc", "a" * 512, "a" * 513, "192.168.1.1", "1.2.3", "-ab", "ab-", "a_b", "a-b.c",
    "a b", "中文资料", "notes_2024", "_ab", "ab_", "a.b", "Docs.V2", "x/y", "",
]


@pytest.mark.parametrize("name", NAMES, ids=[n[:20] or "empty" for n in NAMES])
def test_the_rule_is_chromas_own(name: str) -> None:
    """Our check accepts exactly the names the installed Chroma accepts."""
    client = chromadb.EphemeralClient()
    try:
        client.get_or_create_collection(name)
        chroma_accepts = True
    except Exception:  # Chroma raises InvalidArgumentError / ValueError depending on the version
        chroma_accepts = False
    assert (collection_name_problem(name) == "") is chroma_accepts


@pytest.mark.parametrize(
    ("typo", "closest"),
    [("chunk_token", "chunk_tokens"), ("temprature", "temperature"), ("embed_modle", "embed_model"),
     ("chat_modle", "chat_model"), ("mmr_lamda", "mmr_lambda")],
)
def test_a_misspelt_option_is_a_type_error_naming_the_closest(typo: str, closest: str) -> None:
    with pytest.raises(TypeError, match=f"unexpected option '{typo}' — did you mean '{closest}'"):
        RAG(**{typo: 200})


def test_valid_options_are_accepted() -> None:
    kb = RAG(db="idx", chunk_tokens=200, k=3, temperature=0.2, hybrid=False)
    assert kb.index_settings.chunk_tokens == 200
    assert kb.read_settings().k == 3 and kb.read_settings().hybrid is False
