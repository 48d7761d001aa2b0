"""rag: ask questions over a folder of private documents with a local Ollama server and Chroma."""
