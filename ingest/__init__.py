"""ingest: the write path of rag (load, split, embed, store). It never imports `rag`."""

import os

# The ollama SDK builds a default client from OLLAMA_HOST when it is imported, and cannot parse the
# list of hosts rag accepts ("http://a:11434,http://b:11434"). Keep the list for rag's settings
# (ingest.config.host_list) and show the SDK the first host. This runs before any module imports it.
HOST_LIST_VARIABLE = "RAG_OLLAMA_HOST_LIST"
if "," in os.environ.get("OLLAMA_HOST", ""):
    os.environ[HOST_LIST_VARIABLE] = os.environ["OLLAMA_HOST"]
    os.environ["OLLAMA_HOST"] = os.environ["OLLAMA_HOST"].split(",", 1)[0].strip()
