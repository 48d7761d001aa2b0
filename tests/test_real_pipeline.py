"""The whole pipeline on real models: sample_docs indexed with MiniLM, answered by the GGUF chat model,
all through the bundled server's `local` engine and the official SDK. Assert sources, not wording."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rag import RAG
from rag.answer import AnswerStream
from rag.dev.demo import LOCAL_ENGINE_OPTIONS
from rag.server import serve
from rag.server.local_engine import DEFAULT_CHAT_MODEL, EMBED_MODEL, LocalEngine

pytestmark = pytest.mark.real_models

SAMPLE_DOCS = Path(__file__).resolve().parents[1] / "sample_docs"

# (question, the file that answers it): English and Chinese, paraphrased rather than copied.
KNOWN = [
    ("When does the nightly Tidepool backup run?", "tidepool-admin-manual.pdf"),
    ("Which port does the Tidepool web interface use?", "tidepool-install-guide.md"),
    ("What is the default distance function of a Chroma collection?", "chroma-basics.md"),
    ("一个账号最多可以同时在几台设备上登录？", "tidepool-faq.zh.md"),
    ("微调需要多少条高质量的问答样本？", "rag-vs-finetuning.zh.md"),
]


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RAG]:
    engine = LocalEngine()
    with serve(engine=engine) as server:
        db = tmp_path_factory.mktemp("real") / "db"
        # The demo's options for the tiny local model (greedy decoding among them), with a shorter answer.
        with RAG(db=db, host=server.url, embed_model=EMBED_MODEL, chat_model=DEFAULT_CHAT_MODEL,
                 **{**LOCAL_ENGINE_OPTIONS, "answer_tokens": 96}) as knowledge_base:
            report = knowledge_base.index(SAMPLE_DOCS)
            assert report.skipped == [] and len(report.added) == len(list(SAMPLE_DOCS.iterdir()))
            yield knowledge_base
    engine.close()


def test_index_records_the_real_model(kb: RAG) -> None:
    status = kb.status()
    assert status.fingerprint is not None
    assert status.fingerprint["embed_model"] == EMBED_MODEL and status.fingerprint["dimension"] == 384
    assert status.chunks > status.files


@pytest.mark.parametrize(("question", "source"), KNOWN)
def test_known_questions_find_their_file_in_the_top_3(kb: RAG, question: str, source: str) -> None:
    hits = kb.search(question, k=3)
    assert source in [h.source for h in hits]


def test_the_backup_question_lands_on_its_pdf_page(kb: RAG) -> None:
    hits = kb.search("When does the nightly Tidepool backup run?", k=3)
    assert ("tidepool-admin-manual.pdf", 3) in [(h.source, h.page) for h in hits]


def test_an_answer_streams_and_cites_the_right_file(kb: RAG) -> None:
    stream = kb.ask("When does the nightly Tidepool backup run?", stream=True)
    assert isinstance(stream, AnswerStream)
    pieces = [next(stream)]
    assert pieces[0] and not stream.done  # text arrived before the answer was complete
    pieces += list(stream)
    assert len(pieces) >= 2
    answer = stream.answer
    assert "".join(pieces).strip() in answer.answer
    assert answer.model == DEFAULT_CHAT_MODEL
    assert answer.citations, answer.answer
    assert {c.source for c in answer.citations} == {"tidepool-admin-manual.pdf"}
    assert answer.timings["first_token"] <= answer.timings["total"]


def test_a_chinese_answer_stops_by_itself_and_cites_the_faq(kb: RAG) -> None:
    # The base model used to go on writing "答案：…" lines until the token budget cut it.
    answer = kb.ask("一个账号可以在几台设备上登录？")
    assert not answer.warnings, answer.answer
    assert {c.source for c in answer.citations} == {"tidepool-faq.zh.md"}, answer.answer
