"""pytest fixtures for the bundled Ollama-protocol server (filled in by the server work)."""
