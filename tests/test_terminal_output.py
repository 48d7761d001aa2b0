"""Plain CLI output never carries a document's or a file name's control sequences to the terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rag.cli import cli
from rag.cli.output import safe_text
from rag.server import OllamaServer

EVIL_TITLE = "\x1b]0;x\x07"  # OSC 0: sets the window title
CLEAR = "\x1b[2J"  # CSI: clears the screen
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4=\x07"  # OSC 52: writes the clipboard
DOC = (
    f"# Dishwasher{CLEAR} warranty\n\n"
    f"The dishwasher warranty lasts two years.{EVIL_TITLE} Keep the receipt{CLEAR} safe.\n"
    f"Copy this{CLIPBOARD} now.\x07 Over\rwritten line. 洗碗机保修两年。{CLEAR}\n"
)
EVIL_NAME = "evil\nname\x1b[2J.md"
BROKEN_PDF = f"broken{EVIL_TITLE}\n.pdf"
FORBIDDEN = ("\x1b", "\x07", "\r", "\x9b", "\x9d", "\n.pdf")


def rag(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, prog_name="rag")


def name_on_one_line(line: str) -> bool:
    """The file name (however the index spells its newline and ESC) sits whole on this line."""
    return "evil" in line and line.index("evil") < line.index("name") < line.index(".md")


def assert_clean(result: Result) -> None:
    for text in (result.stdout, result.stderr):
        for bad in FORBIDDEN:
            assert bad not in text, (bad, text)


@pytest.fixture
def indexed(ollama_server: OllamaServer, tmp_path: Path) -> tuple[list[str], Result]:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / EVIL_NAME).write_text(DOC, encoding="utf-8")
    (docs / BROKEN_PDF).write_bytes(b"%PDF-1.7\nthis is not a PDF at all")
    where = ["--db", str(tmp_path / "db"), "--host", ollama_server.url]
    report = rag("index", str(docs), *where)
    assert report.exit_code == 0, report.output
    return where, report


def test_index_report_names_a_bad_file_on_one_line(indexed: tuple[list[str], Result]) -> None:
    _, report = indexed
    assert_clean(report)
    skipped = [line for line in report.stdout.splitlines() if "broken" in line]
    # the index may spell the name's ESC and newline as \\x1b / \\x0a; either way it is one inert line
    assert len(skipped) == 1 and skipped[0].startswith("  broken") and ".pdf: " in skipped[0], report.stdout


def test_search_prints_text_and_names_without_control_sequences(indexed: tuple[list[str], Result]) -> None:
    where, _ = indexed
    result = rag("search", "dishwasher warranty", *where)
    assert result.exit_code == 0, result.output
    assert_clean(result)
    assert "two years. Keep the receipt safe." in result.stdout
    assert "]0;x" not in result.stdout and "]52;" not in result.stdout  # whole sequences gone, not just ESC
    first = result.stdout.splitlines()[0]
    assert name_on_one_line(first) and "Dishwasher warranty" in first


def test_ask_prints_answer_sources_and_context_clean(indexed: tuple[list[str], Result]) -> None:
    where, _ = indexed
    for extra in ([], ["--no-stream"]):
        result = rag("ask", "How long is the dishwasher warranty?", *where, "--show-context", *extra)
        assert result.exit_code == 0, result.output
        assert_clean(result)
        sources = result.stdout.split("Sources:\n", 1)[1].splitlines()
        assert sources[0].startswith("  [1] ") and name_on_one_line(sources[0])
        assert sources[0].endswith(" — Dishwasher warranty")
    zh = rag("ask", "洗碗机保修多久？", *where)
    assert zh.exit_code == 0, zh.output
    assert_clean(zh)


def test_json_output_keeps_the_text_exactly(indexed: tuple[list[str], Result]) -> None:
    where, _ = indexed
    result = rag("search", "dishwasher warranty", *where, "--json")
    hit = json.loads(result.stdout)["hits"][0]
    assert CLEAR in hit["text"]  # JSON escapes it: nothing to strip
    assert "\x1b" not in result.stdout


def test_chat_and_status_clean(indexed: tuple[list[str], Result]) -> None:
    where, _ = indexed
    chat = rag("chat", *where, input="How long is the dishwasher warranty?\n/sources\n")
    assert chat.exit_code == 0, chat.output
    assert_clean(chat)
    sources = [line for line in chat.stdout.splitlines() if line.startswith("  [1] ")]
    assert len(sources) == 2 and all(name_on_one_line(line) for line in sources)  # answer, /sources
    status = rag("status", "--db", where[1])
    assert status.exit_code == 0, status.output
    assert_clean(status)


def test_doctor_and_errors_clean(ollama_server: OllamaServer, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    doctor = rag("doctor", "--host", ollama_server.url, "--embed-model", f"nomic{CLEAR}\n")
    assert doctor.exit_code == 1
    assert_clean(doctor)
    error = rag("models", "show", f"nope{EVIL_TITLE}", "--host", ollama_server.url)
    assert error.exit_code != 0
    assert_clean(error)
    assert len(error.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain 中文 text", "plain 中文 text"),
        ("a\x1b[31mred\x1b[0m b", "ared b"),
        ("title\x1b]0;pwned\x1b\\ end", "title end"),
        ("clip\x1b]52;c;ZXZpbA==\x07board", "clipboard"),
        ("hyper\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "hyperlink"),
        ("reset\x1bc!", "reset!"),
        ("c1\x9b2Jcsi", "c1csi"),
        ("bell\x07 cr\r del\x7f nul\x00", "bell cr del nul"),
        ("rtl\u202eevil", "rtlevil"),
        ("dangling\x1b", "dangling"),
        ("name\udce9\udcff.txt", "name\\xe9\\xff.txt"),
    ],
)
def test_safe_text(raw: str, shown: str) -> None:
    assert safe_text(raw) == shown


def test_safe_text_keeps_lines_unless_one_line() -> None:
    assert safe_text("line one\nline\ttwo") == "line one\nline\ttwo"
    assert safe_text("line one\nline\ttwo", one_line=True) == "line one\\nline\\ttwo"
