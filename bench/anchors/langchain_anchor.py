"""LangChain, as its documentation shows it: DirectoryLoader with TextLoader (text files) and PyPDFLoader
(PDFs), RecursiveCharacterTextSplitter over tiktoken (400 tokens, 60 overlap, as rag's), OllamaEmbeddings
and the Chroma vector store, written through the indexing API with an SQL record manager, which is
LangChain's documented way to skip unchanged documents on the next run (`cleanup="incremental"`).

    python langchain_anchor.py index DIR --db D --collection C --host URL
    python langchain_anchor.py query --db D --collection C --host URL --queries FILE
"""

from __future__ import annotations

from pathlib import Path

from common import CHUNK_OVERLAP, CHUNK_TOKENS, MODEL, K, main, timed_queries
from langchain_chroma import Chroma
from langchain_community.document_loaders import DirectoryLoader, PyPDFLoader, TextLoader
from langchain_core.indexing import index as index_documents
from langchain_ollama import OllamaEmbeddings
from langchain_text_splitters import RecursiveCharacterTextSplitter

try:  # LangChain 1.x moved the SQL record manager to langchain-classic
    from langchain_classic.indexes import SQLRecordManager
except ImportError:
    from langchain.indexes import SQLRecordManager  # type: ignore[no-redef]

PACKAGES = ("langchain-core", "langchain-community", "langchain-classic", "langchain-chroma", "langchain-ollama",
            "langchain-text-splitters", "chromadb", "pypdf")
TEXT_GLOBS = ("**/*.txt", "**/*.md")


def store(db: str, name: str, host: str) -> Chroma:
    return Chroma(collection_name=name, embedding_function=OllamaEmbeddings(model=MODEL, base_url=host),
                  persist_directory=db)


def index(folder: Path, db: str, name: str, host: str) -> dict:
    documents = []
    for pattern in TEXT_GLOBS:
        documents += DirectoryLoader(str(folder), glob=pattern, loader_cls=TextLoader,
                                     loader_kwargs={"encoding": "utf-8"}).load()
    documents += DirectoryLoader(str(folder), glob="**/*.pdf", loader_cls=PyPDFLoader, silent_errors=True).load()
    splitter = RecursiveCharacterTextSplitter.from_tiktoken_encoder(
        encoding_name="cl100k_base", chunk_size=CHUNK_TOKENS, chunk_overlap=CHUNK_OVERLAP)
    chunks = splitter.split_documents(documents)
    Path(db).mkdir(parents=True, exist_ok=True)
    records = SQLRecordManager(f"chroma/{name}", db_url=f"sqlite:///{Path(db) / 'record_manager.sqlite'}")
    records.create_schema()
    result = index_documents(chunks, records, store(db, name, host), cleanup="incremental", source_id_key="source")
    return {"documents": len(documents), "chunks": len(chunks), **result}


def query(db: str, name: str, host: str, questions: list[str]) -> dict:
    retriever = store(db, name, host).as_retriever(search_kwargs={"k": K})
    return timed_queries(retriever.invoke, questions)


if __name__ == "__main__":
    main(__doc__, index, query, PACKAGES)
