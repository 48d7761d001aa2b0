"""The page of `rag serve` in a real browser: Debian's headless chromium driven by Playwright.

sample_docs is indexed against the bundled Ollama-protocol server (the hash engine, whose answers cite
the passages they quote) and served by `rag serve` on a background thread. Nothing is downloaded:
Playwright drives /usr/bin/chromium (`apt-get install chromium`; `.ci/run` does it), and these tests
fail, not skip, when it is missing.

    .venv/bin/python -m pytest tests/test_serve_browser.py -q
    .venv/bin/python tests/test_serve_browser.py docs/   # re-take the README screenshots
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, expect, sync_playwright

from ingest.language import has_han
from rag.api import RAG
from rag.serve import RunningServer, ServeConfig, running
from rag.server.engine import Generation
from rag.server.hash_engine import HashEngine
from rag.server.http import OllamaServer

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SAMPLE_DOCS = Path(__file__).resolve().parent.parent / "sample_docs"
PIECE_SECONDS = 0.03  # the model's pace, so the page visibly receives the answer piece by piece
WAIT_MS = 30_000  # upper bound for anything the page waits on (2 shared cores, a cold browser)
expect.set_options(timeout=WAIT_MS)

EN_QUESTION = "What port does the Tidepool admin console use?"  # cites tidepool-admin-manual.pdf pages
EN_TEXT_QUESTION = "What is Chroma?"  # cites chroma-basics.md
ZH_QUESTION = "如何部署 Ollama？"  # cites ollama-deployment.zh.pdf pages
ZH_TEXT_QUESTION = "Tidepool 支持哪些文件格式？"  # cites tidepool-faq.zh.md

# Records the answer text each time it changes while the answer is still streaming, and each
# percentage the sync progress shows.
RECORDER = """
window.__streamed = [];
window.__percents = [];
const remember = (list, value) => { if (value && list[list.length - 1] !== value) list.push(value); };
new MutationObserver(() => {
  for (const answer of document.querySelectorAll('.answer[aria-busy="true"] .answer-text')) {
    remember(window.__streamed, answer.textContent);
  }
  const percent = document.getElementById('sync-percent');
  if (percent && percent.textContent) remember(window.__percents, parseInt(percent.textContent, 10));
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


class SlowHashEngine(HashEngine):
    """The hash engine, replying at a model's pace rather than all at once."""

    def chat(self, model: str, messages: list[dict[str, Any]], options: dict[str, Any]) -> Generation:
        generation = super().chat(model, messages, options)
        generation.pieces = paced(generation.pieces)
        return generation


def paced(pieces: Iterator[str]) -> Iterator[str]:
    for piece in pieces:
        time.sleep(PIECE_SECONDS)
        yield piece


def launch(playwright: Playwright) -> Browser:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's browser with `apt-get install -y chromium` "
                    "(.ci/run does); the browser tests never download one", pytrace=False)
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def index_copy(tmp: Path, server: OllamaServer) -> tuple[Path, Path]:
    """sample_docs copied to ``tmp/docs`` and indexed into ``tmp/db``."""
    docs = tmp / "docs"
    shutil.copytree(SAMPLE_DOCS, docs)
    with RAG(db=tmp / "db", host=server.url) as kb:
        report = kb.index(docs)
    assert not report.skipped, report.skipped
    return docs, tmp / "db"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, OllamaServer]]:
    """sample_docs indexed once for the read-only tests, with the (paced) bundled server."""
    with OllamaServer(SlowHashEngine()) as server:
        docs, db = index_copy(tmp_path_factory.mktemp("library"), server)
        yield docs, db, server


@pytest.fixture(scope="module")
def site(library: tuple[Path, Path, OllamaServer]) -> Iterator[RunningServer]:
    _, db, server = library
    with running(ServeConfig(db=str(db), ollama_host=server.url)) as serving:
        yield serving


@contextmanager
def opened(browser: Browser, url: str, locale: str = "en-US", width: int = 1000,
           height: int = 800) -> Iterator[Page]:
    """A fresh browser context on ``url``; fails the test on any script error or console error."""
    context = browser.new_context(locale=locale, viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def console(message: ConsoleMessage) -> None:
        # A refused request logs "Failed to load resource" — expected where a test asks for a 401/404/409.
        if message.type == "error" and "Failed to load resource" not in message.text:
            problems.append(f"console error: {message.text}")

    page.on("console", console)
    page.add_init_script(RECORDER)
    page.goto(url)
    page.wait_for_selector("body[data-ready]")
    try:
        yield page
    finally:
        context.close()
    assert problems == []


@pytest.fixture
def page(browser: Browser, site: RunningServer) -> Iterator[Page]:
    with opened(browser, site.url) as english:
        yield english


def ask(page: Page, question: str) -> Any:
    """Type ``question``, press Enter, wait for the answer to finish; the last answer's element."""
    turns = page.locator(".turn").count()
    page.fill("#question", question)
    page.press("#question", "Enter")
    answer = page.locator(".turn .answer").nth(turns if page.locator("#chat-mode").is_checked() else 0)
    expect(answer).to_have_attribute("aria-busy", "false")
    return answer


def citations(answer: Any) -> list[dict[str, str]]:
    """The sources panel of an answer, as shown: number, file, link URL, page, score, heading, snippet."""
    return answer.locator(".source").evaluate_all(
        """items => items.map(item => ({
             n: item.querySelector('.source-n').textContent,
             file: item.querySelector('a.cite').textContent,
             href: item.querySelector('a.cite').href,
             page: item.querySelector('.source-page')?.textContent || '',
             score: item.querySelector('.source-score')?.textContent || '',
             heading: item.querySelector('.source-heading')?.textContent || '',
             snippet: item.querySelector('.source-snippet').textContent}))"""
    )


def api_answer(page: Page, question: str) -> dict[str, Any]:
    """The same question asked of `POST /api/ask` as JSON (what `rag ask --json` prints)."""
    return page.evaluate("""q => fetch('api/ask', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                  body: JSON.stringify({question: q})}).then(r => r.json())""",
                         question)


# -- asking ----------------------------------------------------------------------------------------


def test_english_question_streams_an_answer_with_citations(page: Page) -> None:
    expect(page.locator("h1")).to_have_text("Ask your documents")
    answer = ask(page, EN_QUESTION)
    text = answer.locator(".answer-text").text_content() or ""
    streamed = page.evaluate("window.__streamed")
    assert len(streamed) >= 3, streamed  # seen growing, piece by piece, before it was done
    assert all(later.startswith(earlier) for earlier, later in zip(streamed, streamed[1:], strict=False))
    assert text.startswith(streamed[-1]) and "tidepool admin" in text

    sources = citations(answer)
    assert sources and {s["file"] for s in sources} == {"tidepool-admin-manual.pdf"}
    assert all(re.fullmatch(r"page \d+", s["page"]) and re.fullmatch(r"score \d\.\d{3}", s["score"])
               for s in sources)
    assert [s["n"] for s in sources] == sorted((s["n"] for s in sources), key=lambda n: int(n[1:-1]))
    # Each [n] in the answer is a link to the n-th source, at its page.
    markers = answer.locator(".answer-text a.cite").evaluate_all("links => links.map(a => [a.textContent, a.href])")
    assert markers and {f"[{n}]" for n, _ in markers} <= {s["n"] for s in sources}
    names = answer.locator(".answer-text a.cite").evaluate_all("links => links.map(a => a.getAttribute('aria-label'))")
    assert all(re.fullmatch(rf"Open source {n}: tidepool-admin-manual\.pdf #\d+", name)
               for (n, _), name in zip(markers, names, strict=True))
    by_number = {s["n"]: s["href"] for s in sources}
    assert all(href == by_number[f"[{n}]"] and re.search(r"#page=\d+$", href) for n, href in markers)

    # The page shows what the API answers: the text, and each citation's file, page, heading, snippet, score.
    expected = api_answer(page, EN_QUESTION)
    assert text == expected["answer"]
    assert sources == [{"n": f"[{c['n']}]", "file": c["source"], "href": by_number[f"[{c['n']}]"],
                        "page": f"page {c['page']}" if c["page"] else "",
                        "score": f"score {expected['contexts'][c['n'] - 1]['score']:.3f}",
                        "heading": c["heading"], "snippet": c["snippet"]} for c in expected["citations"]]


def test_chinese_question_on_a_chinese_page(browser: Browser, site: RunningServer) -> None:
    with opened(browser, site.url, locale="zh-CN") as page:
        expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
        expect(page.locator("h1")).to_have_text("向文档提问")
        expect(page.locator("#ask-button")).to_have_text("提问")
        answer = ask(page, ZH_QUESTION)
        text = answer.locator(".answer-text").text_content() or ""
        assert "Ollama 部署手册" in text and len(page.evaluate("window.__streamed")) >= 3
        sources = citations(answer)
        assert {s["file"] for s in sources} == {"ollama-deployment.zh.pdf"}
        assert all(re.fullmatch(r"第 \d+ 页", s["page"]) and s["score"].startswith("得分 ") for s in sources)
        expect(answer.locator(".sources h3")).to_have_text("来源")
        expect(page.locator(".turn .question-text")).to_have_text(ZH_QUESTION)


def test_chat_mode_sends_the_history_and_new_conversation_clears_it(page: Page) -> None:
    bodies: list[dict[str, Any]] = []
    page.on("request", lambda r: bodies.append(json.loads(r.post_data or "{}")) if r.url.endswith("/api/ask") else None)
    page.check("#chat-mode")
    first = ask(page, EN_TEXT_QUESTION)
    first_answer = first.locator(".answer-text").text_content()
    ask(page, "Where does it store its data?")
    expect(page.locator(".turn")).to_have_count(2)
    assert "history" not in bodies[0]
    assert bodies[1]["history"] == [{"role": "user", "content": EN_TEXT_QUESTION},
                                    {"role": "assistant", "content": first_answer}]
    page.click("#new-conversation")
    expect(page.locator(".turn")).to_have_count(0)
    expect(page.locator("#ask-status")).to_have_text("New conversation started.")
    ask(page, EN_TEXT_QUESTION)
    assert "history" not in bodies[2]


def test_filters_restrict_the_sources(page: Page) -> None:
    bodies: list[dict[str, Any]] = []
    page.on("request", lambda r: bodies.append(json.loads(r.post_data or "{}")) if r.url.endswith("/api/ask") else None)
    answer = ask(page, EN_QUESTION)
    assert {s["file"] for s in citations(answer)} == {"tidepool-admin-manual.pdf"}
    page.select_option("#type-filter", "md")
    answer = ask(page, EN_QUESTION)
    files = {s["file"] for s in citations(answer)}
    assert files and all(f.endswith(".md") for f in files)
    page.select_option("#type-filter", "")
    page.fill("#path-filter", "*.zh.*")
    answer = ask(page, "Tidepool")
    files = {s["file"] for s in citations(answer)}
    assert files and all(".zh." in f for f in files)
    assert [(b.get("type"), b.get("path")) for b in bodies] == [(None, None), ("md", None), (None, "*.zh.*")]


def test_an_unanswerable_question_shows_no_sources(page: Page) -> None:
    answer = ask(page, "What is the capital of France?")
    expect(answer.locator(".answer-text")).to_have_text("The documents do not contain the answer.")
    expect(answer.locator(".sources")).to_contain_text("The answer cites no passages.")


def test_warnings_are_shown(browser: Browser, library: tuple[Path, Path, OllamaServer],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    _, db, server = library
    monkeypatch.setenv("RAG_ANSWER_TOKENS", "4")  # the answer is cut at its budget, and says so
    with running(ServeConfig(db=str(db), ollama_host=server.url)) as serving, opened(browser, serving.url) as page:
        answer = ask(page, EN_TEXT_QUESTION)
        warnings = answer.locator(".warnings")
        expect(warnings.locator("h3")).to_have_text("Warnings")
        expect(warnings.locator("li")).to_contain_text("4-token budget")


# -- opening a source ------------------------------------------------------------------------------


def test_pdf_citation_opens_the_cited_page(page: Page) -> None:
    answer = ask(page, EN_QUESTION)
    link = answer.locator(".source a.cite").first
    cited_page = int((answer.locator(".source .source-page").first.text_content() or "").split()[-1])
    with page.context.expect_page() as opened_tab:
        link.click()
    pdf = opened_tab.value
    pdf.wait_for_load_state()
    assert pdf.url.endswith(f"/api/files/tidepool-admin-manual.pdf#page={cited_page}")
    response = page.request.get(pdf.url.split("#")[0])
    assert response.status == 200 and response.headers["content-type"] == "application/pdf"
    pdf.close()


def test_markdown_citation_opens_with_the_passage_highlighted(page: Page) -> None:
    answer = ask(page, EN_TEXT_QUESTION)
    source = citations(answer)[0]
    assert source["file"] == "chroma-basics.md"
    answer.locator(".source a.cite").first.click()
    viewer = page.locator("#viewer")
    expect(viewer).to_be_visible()
    expect(page.locator("#viewer-title")).to_have_text("chroma-basics.md")
    mark = viewer.locator("mark")
    expect(mark).to_have_count(1)
    expect(mark).to_be_in_viewport()
    # The marked passage is the cited one (its snippet starts it), inside the whole file's text.
    marked = " ".join((mark.text_content() or "").split())
    assert marked.startswith(source["snippet"].rstrip("…").rstrip())
    whole = (SAMPLE_DOCS / "chroma-basics.md").read_text(encoding="utf-8")
    assert viewer.locator("#viewer-text").text_content() == whole
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()


def test_chinese_text_citation_is_highlighted(browser: Browser, site: RunningServer) -> None:
    with opened(browser, site.url, locale="zh-CN") as page:
        answer = ask(page, ZH_TEXT_QUESTION)
        link = answer.locator(".source a.cite", has_text="tidepool-faq.zh.md").first
        link.click()
        mark = page.locator("#viewer mark")
        expect(mark).to_be_in_viewport()
        assert has_han(mark.text_content() or "")
        expect(page.locator("#viewer-close")).to_have_text("关闭")


def test_html_source_is_shown_as_text_never_as_markup(browser: Browser, tmp_path: Path,
                                                      ollama_server: OllamaServer) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "trap.html").write_text(
        "<html><head><title>Kettle notes</title><script>window.__pwned = 1</script></head><body>"
        "<h1>Kettle</h1><p>The kettle descaling uses white vinegar every month.</p>"
        "<img src=x onerror=\"window.__pwned = 2\"></body></html>", encoding="utf-8")
    with RAG(db=tmp_path / "db", host=ollama_server.url) as kb:
        kb.index(docs)
    with running(ServeConfig(db=str(tmp_path / "db"), ollama_host=ollama_server.url)) as serving, \
            opened(browser, serving.url) as page:
        answer = ask(page, "How is the kettle descaling done?")
        answer.locator(".source a.cite").first.click()
        expect(page.locator("#viewer mark")).to_contain_text("white vinegar")
        assert page.locator("#viewer-text *").count() == 1  # the <mark>; no element of the document
        assert page.evaluate("window.__pwned") is None


def test_a_source_deleted_since_indexing_says_so(browser: Browser, tmp_path: Path,
                                                 ollama_server: OllamaServer) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "kettle.md").write_text("# Kettle\n\nDescale the kettle with white vinegar every month.\n",
                                    encoding="utf-8")
    with RAG(db=tmp_path / "db", host=ollama_server.url) as kb:
        kb.index(docs)
    with running(ServeConfig(db=str(tmp_path / "db"), ollama_host=ollama_server.url)) as serving, \
            opened(browser, serving.url) as page:
        answer = ask(page, "How do I descale the kettle?")
        (docs / "kettle.md").unlink()
        answer.locator(".source a.cite").first.click()
        expect(page.locator("#viewer-message")).to_have_text(re.compile(r"^Could not open kettle\.md: \S.+"))


# -- the index -------------------------------------------------------------------------------------


def test_status_view_lists_the_index(page: Page, library: tuple[Path, Path, OllamaServer]) -> None:
    docs, _, _ = library
    page.click("#nav-index")
    rows = page.locator("#status-list")
    expect(rows).to_contain_text("Files")
    values = dict(zip(rows.locator("dt").all_text_contents(), rows.locator("dd").all_text_contents(), strict=True))
    assert values["Files"] == str(len(list(SAMPLE_DOCS.iterdir())))
    assert int(values["Chunks"]) > int(values["Files"])
    assert values["Embedding model"] == "nomic-embed-text"
    assert values["Folder"] == str(docs.resolve())
    assert "embed_model: nomic-embed-text" in values["Fingerprint"]
    expect(page.locator("#skipped-list")).to_have_text("No files were skipped.")


def test_sync_shows_progress_to_100_and_refuses_a_second_run(browser: Browser, tmp_path: Path,
                                                             ollama_server: OllamaServer) -> None:
    docs, db = index_copy(tmp_path, ollama_server)
    for i in range(6):
        (docs / f"new-{i}.md").write_text(f"# New note {i}\n\nThe new note {i} is about sync progress.\n",
                                          encoding="utf-8")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a PDF")
    ollama_server.embed_ms_per_request = 3000  # hold the sync open while the second clicks happen
    with running(ServeConfig(db=str(db), ollama_host=ollama_server.url)) as serving, \
            opened(browser, serving.url + "#index") as page, \
            opened(browser, serving.url + "#index") as other_tab:
        page.click("#sync-button")
        expect(page.locator("#sync-bar")).to_be_visible()
        page.click("#sync-button")  # this page's sync is still running
        expect(page.locator("#sync-busy")).to_have_text("A sync is already running. Wait for it to finish, "
                                                        "then try again.")
        other_tab.click("#sync-button")  # another page: the server refuses (409)
        expect(other_tab.locator("#sync-busy")).to_be_visible()
        ollama_server.embed_ms_per_request = 0

        expect(page.locator("#sync-percent")).to_have_text("100%")
        expect(page.locator("#sync-message")).to_have_text(
            "Sync finished: 6 added, 0 updated, 10 unchanged, 0 removed, 1 skipped.")
        assert page.locator("#sync-bar").evaluate("bar => bar.value === bar.max")
        percents = page.evaluate("window.__percents")
        assert percents == sorted(percents) and percents[-1] == 100
        expect(page.locator("#sync-busy")).to_be_hidden()
        rows = page.locator("#status-list")
        expect(rows.locator("dd").first).to_have_text("16")
        expect(page.locator("#skipped-list")).to_contain_text("broken.pdf")


# -- security --------------------------------------------------------------------------------------


def test_a_path_traversal_file_url_is_refused(page: Page, site: RunningServer,
                                              library: tuple[Path, Path, OllamaServer]) -> None:
    docs, _, _ = library
    (docs.parent / "secret.txt").write_text("the secret outside the folder", encoding="utf-8")
    (docs / "shortcut.txt").symlink_to(docs.parent / "secret.txt")  # a symlink that leaves the folder
    assert page.evaluate("path => fetch(path).then(r => r.status)", "api/files/chroma-basics.md") == 200
    outside = docs.parent / "secret.txt"
    for path in ["api/files/shortcut.txt", "api/files/..%2Fsecret.txt", "api/files/%2e%2e/secret.txt",
                 "api/files/..%5Csecret.txt", f"api/files/{outside}", f"api/files/%2F{outside}"]:
        status, body = page.evaluate("path => fetch(path).then(async r => [r.status, await r.text()])", path)
        assert status == 404 and "the secret" not in body, path
    tab = page.context.new_page()
    response = tab.goto(site.url + "api/files/../../secret.txt")  # the browser resolves ../ itself
    assert response is not None and response.status == 404
    assert "the secret" not in tab.content()


def test_with_a_token_the_page_asks_once_and_keeps_it(browser: Browser,
                                                      library: tuple[Path, Path, OllamaServer]) -> None:
    _, db, server = library
    with running(ServeConfig(db=str(db), ollama_host=server.url, token="s3cret-token")) as serving, \
            opened(browser, serving.url) as page:
        page.fill("#question", EN_QUESTION)
        page.press("#question", "Enter")
        dialog = page.locator("#token-dialog")
        expect(dialog).to_be_visible()
        page.fill("#token-input", "wrong")
        page.press("#token-input", "Enter")
        expect(page.locator("#token-wrong")).to_be_visible()  # refused: asked again, saying so
        page.fill("#token-input", "s3cret-token")
        page.press("#token-input", "Enter")
        answer = page.locator(".answer")
        expect(answer).to_have_attribute("aria-busy", "false")
        assert citations(answer)
        assert page.evaluate("sessionStorage.getItem('rag-serve-token')") == "s3cret-token"

        # The token goes with file requests too: the PDF opens as a blob at the cited page.
        with page.context.expect_page() as opened_tab:
            answer.locator(".source a.cite").first.click()
        tab = opened_tab.value
        tab.wait_for_url(re.compile(r"^blob:.*#page=\d+$"))

        page.reload()
        page.wait_for_selector("body[data-ready]")
        ask(page, EN_TEXT_QUESTION)
        expect(dialog).to_be_hidden()  # kept for the session: not asked again


# -- language, keyboard, phone ---------------------------------------------------------------------


def test_every_string_is_translated_and_the_switch_works(page: Page) -> None:
    tables = page.evaluate("import('./strings.js').then(m => m.STRINGS)")
    assert set(tables) == {"en", "zh-CN"}
    assert set(tables["en"]) == set(tables["zh-CN"])
    placeholders = re.compile(r"\{\w+\}")
    for key, english in tables["en"].items():
        assert set(placeholders.findall(english)) == set(placeholders.findall(tables["zh-CN"][key])), key
    untranslated = [k for k, v in tables["en"].items() if tables["zh-CN"][k] == v and v not in ("—",)]
    assert untranslated == []

    ask(page, EN_TEXT_QUESTION)
    page.select_option("#language", "zh-CN")
    expect(page.locator("h1")).to_have_text("向文档提问")
    expect(page.locator(".answer .sources h3")).to_have_text("来源")  # answers already shown switch too
    assert page.title() == "rag — 向文档提问"
    visible = page.locator("body").inner_text()
    english_words = {w for v in tables["en"].values() for w in re.findall(r"[A-Za-z]{4,}", v)} - {
        "Enter", "Shift", "Markdown", "HTML", "Ollama", "serve"}
    shown_english = {w for w in re.findall(r"[A-Za-z]{4,}", visible) if w in english_words}
    answer_words = set(re.findall(r"[A-Za-z]{4,}", page.locator(".answer-text, .source, .meta, .question-text")
                                  .evaluate_all("els => els.map(e => e.textContent).join(' ')")))
    assert shown_english - answer_words == set()
    page.reload()
    page.wait_for_selector("body[data-ready]")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")  # the choice is remembered


def focused(page: Page) -> str:
    return page.evaluate("document.activeElement.id || document.activeElement.className")


def tab_to(page: Page, selector: str, limit: int = 60) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_keyboard_only(page: Page) -> None:
    page.keyboard.press("Tab")
    assert focused(page) == "skip-link"
    page.keyboard.press("Enter")
    assert focused(page) == "question"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # the focus is visible
    page.keyboard.type(EN_TEXT_QUESTION)
    page.keyboard.press("Enter")
    answer = page.locator(".answer")
    expect(answer).to_have_attribute("aria-busy", "false")
    assert focused(page) == "question"  # ready for the next question

    tab_to(page, ".source a.cite")
    page.keyboard.press("Enter")
    expect(page.locator("#viewer mark")).to_be_in_viewport()
    page.keyboard.press("Escape")
    expect(page.locator("#viewer")).to_be_hidden()
    assert page.evaluate("document.activeElement.matches('.source a.cite')")  # back where it was

    page.keyboard.press("Shift+Tab")
    tab_to(page, "#nav-index")
    page.keyboard.press("Enter")
    expect(page.locator("#index-view")).to_be_visible()
    expect(page.locator("#status-list")).to_contain_text("Files")
    tab_to(page, "#language")
    page.keyboard.press("ArrowDown")
    expect(page.locator("h1")).to_have_text("向文档提问")


def test_usable_at_phone_width(browser: Browser, site: RunningServer) -> None:
    with opened(browser, site.url, locale="zh-CN", width=375, height=740) as page:
        answer = ask(page, ZH_TEXT_QUESTION)
        assert citations(answer)
        assert page.evaluate("document.scrollingElement.scrollWidth") <= 375  # nothing sideways
        for selector in ["#question", "#ask-button", "#chat-mode", "#path-filter", "#type-filter", ".source a.cite"]:
            box = page.locator(selector).first.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375, selector
        answer.locator(".source a.cite").first.click()
        expect(page.locator("#viewer mark")).to_be_in_viewport()


# -- screenshots for the README ------------------------------------------------------------------


def save_screenshots(out: Path) -> None:
    """docs/serve-en.png and docs/serve-zh.png: an answered question with its sources (run by hand)."""
    import tempfile

    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp, OllamaServer("hash") as server, sync_playwright() as playwright:
        _, db = index_copy(Path(tmp), server)
        chromium = launch(playwright)
        with running(ServeConfig(db=str(db), ollama_host=server.url)) as serving:
            for locale, name, question in [("en-US", "serve-en.png", "Which port does the Tidepool server listen on?"),
                                           ("zh-CN", "serve-zh.png", "gpu-02 的配置是什么？")]:
                with opened(chromium, serving.url, locale=locale, width=760, height=600) as page:
                    ask(page, question)
                    page.locator("#question").blur()
                    page.screenshot(path=str(out / name), full_page=True)
        chromium.close()
    for name in ("serve-en.png", "serve-zh.png"):  # 64 colours: a third of the size, no visible change
        image = Image.open(out / name).convert("RGB")
        image.quantize(colors=64, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
            out / name, optimize=True)


if __name__ == "__main__":
    save_screenshots(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
