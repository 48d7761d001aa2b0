"""`rag serve` as a user starts it: a process that prints its URL, serves, warns, and stops on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from readpath import indexed_settings


def test_rag_serve_prints_its_url_serves_warns_and_stops_on_ctrl_c(ollama_server, tmp_path: Path) -> None:
    settings = indexed_settings(ollama_server, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OLLAMA_"))}
    with subprocess.Popen(
        [sys.executable, "-m", "rag", "serve", "--db", str(settings.db), "--ollama-host", ollama_server.url,
         "--port", "0", "--model", "no-such-model"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stderr is not None
            url = proc.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:") and url.endswith("/")
            status = httpx.get(url + "api/status", timeout=60).json()
            for _ in range(40):  # the server opens the index beside its start-up checks: give it a moment
                if status["files"] == 6:
                    break
                time.sleep(0.25)
                status = httpx.get(url + "api/status", timeout=60).json()
            assert status["files"] == 6 and status["model"] == "no-such-model"
            page = httpx.get(url, timeout=60)
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            warning = ""
            while "no-such-model" not in warning:  # the model check runs beside the server
                warning = proc.stderr.readline()
                assert warning, "rag serve ended without warning about the missing model"
            assert warning.startswith("warning: model no-such-model is not available")
            reply = httpx.post(url + "api/ask", json={"question": "How long is the dishwasher warranty?"}, timeout=60)
            assert reply.status_code == 502 and reply.json()["type"] == "ModelNotFound"
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=30)
    assert code == 0
