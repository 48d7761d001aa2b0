"""LlamaIndex, as its documentation shows it: SimpleDirectoryReader, a SentenceSplitter, OllamaEmbedding
and ChromaVectorStore, run through an IngestionPipeline with a docstore, which is LlamaIndex's documented
way to skip unchanged documents on the next run ("Document Management"): the pipeline is persisted to
`DB/pipeline_storage` and loaded again before a re-run. Chunks are 400 tokens with 60 overlap, as rag's.
`IngestionPipeline.run` hands all its nodes to Chroma in one `add`, which Chroma refuses above its maximum
batch size (5,461 here), so the documents go through the pipeline 1,000 at a time, as a user would after
meeting that error.

    python llamaindex_anchor.py index DIR --db D --collection C --host URL
    python llamaindex_anchor.py query --db D --collection C --host URL --queries FILE
"""

from __future__ import annotations

from pathlib import Path

import chromadb
from common import CHUNK_OVERLAP, CHUNK_TOKENS, MODEL, K, main, timed_queries
from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.embeddings.ollama import OllamaEmbedding
from llama_index.vector_stores.chroma import ChromaVectorStore

DOCUMENTS_PER_RUN = 1000
PACKAGES = ("llama-index-core", "llama-index-vector-stores-chroma", "llama-index-embeddings-ollama",
            "llama-index-readers-file", "chromadb")


def vector_store(db: str, name: str) -> ChromaVectorStore:
    collection = chromadb.PersistentClient(path=db).get_or_create_collection(name)
    return ChromaVectorStore(chroma_collection=collection)


def index(folder: Path, db: str, name: str, host: str) -> dict:
    documents = SimpleDirectoryReader(str(folder), recursive=True, filename_as_id=True).load_data()
    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=CHUNK_TOKENS, chunk_overlap=CHUNK_OVERLAP),
                         OllamaEmbedding(model_name=MODEL, base_url=host)],
        vector_store=vector_store(db, name),
        docstore=SimpleDocumentStore(),
    )
    storage = Path(db) / "pipeline_storage"
    if storage.exists():
        pipeline.load(str(storage))
    chunks = 0
    for start in range(0, len(documents), DOCUMENTS_PER_RUN):
        chunks += len(pipeline.run(documents=documents[start:start + DOCUMENTS_PER_RUN]))
    pipeline.persist(str(storage))
    return {"documents": len(documents), "chunks": chunks}


def query(db: str, name: str, host: str, questions: list[str]) -> dict:
    index = VectorStoreIndex.from_vector_store(vector_store(db, name),
                                               embed_model=OllamaEmbedding(model_name=MODEL, base_url=host))
    retriever = index.as_retriever(similarity_top_k=K)
    return timed_queries(retriever.retrieve, questions)


if __name__ == "__main__":
    main(__doc__, index, query, PACKAGES)
