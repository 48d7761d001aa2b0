"""`rag serve`: the web page, its HTTP API, and every knowledge base as an Ollama / OpenAI model.

    from rag.serve import ServeConfig, create_app, running

    app = create_app(ServeConfig(db=".rag"))           # an ASGI app (Starlette)
    with running(ServeConfig(db=".rag")) as server:    # uvicorn on a background thread, port 0 = free port
        print(server.url)
"""

from rag.serve.app import create_app
from rag.serve.run import RunningServer, running
from rag.serve.state import ServeConfig, check_bind

__all__ = ["RunningServer", "ServeConfig", "check_bind", "create_app", "running"]
