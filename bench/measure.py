"""How the harness measures: each tool as its own process (wall time, peak RSS), and the bundled server
counting the embedding requests and inputs it answers.

Peak RSS is taken two ways: `wait4`'s `ru_maxrss` (the largest single process of the tool, its waited-for
children included) and the sum over the tool's whole process tree, sampled from /proc every 250 ms
(what a process pool really costs). The targets use the tree's peak. The tree's PSS is sampled with it:
the sum of RSS counts a page that forked workers share once per process, PSS splits it between them.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.server import HashEngine, OllamaServer
from rag.server.protocol import RecordedRequest

PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_SECONDS = 0.25


class CountingServer(OllamaServer):
    """The bundled server, keeping counts instead of every request body (250k chunks would not fit)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counts = {"embed_requests": 0, "embed_inputs": 0, "requests": 0}

    def _record(self, request: RecordedRequest) -> None:
        body = request.json if isinstance(request.json, dict) else {}
        texts = body.get("input") if request.path == "/api/embed" else body.get("prompt")
        with self._lock:
            self.counts["requests"] += 1
            if request.path in ("/api/embed", "/api/embeddings", "/v1/embeddings") and request.status == 200:
                self.counts["embed_requests"] += 1
                self.counts["embed_inputs"] += len(texts) if isinstance(texts, list) else 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


class InstantEngine(HashEngine):
    """The hash engine's models and chat, with embeddings that cost next to nothing.

    The hash engine hashes every word in pure Python: about 2 ms per 400-token chunk on a quiet core
    (10 ms on a busy one), which at 250k chunks would be most of every tool's time, shared by all
    tools, and would squeeze every ratio towards 1. These vectors come from a digest of the text:
    deterministic, unit-length after the server's normalisation, without meaning (search latency does
    not depend on what the vectors mean).
    """

    def embed(self, model: str, texts: list[str], *, truncate: bool = True) -> tuple[list[list[float]], int]:
        dims = self.spec(model).embedding_length or 768
        vectors = [[b - 127.5 for b in hashlib.shake_128(text.encode()).digest(dims)] for text in texts]
        return vectors, sum(len(text) // 4 + 1 for text in texts)


ENGINES = ("instant", "hash")


def start_server(engine: str = "instant", **faults: Any) -> CountingServer:
    """A server on a free loopback port with the given engine and fault attributes."""
    server = CountingServer(InstantEngine() if engine == "instant" else engine, port=0)
    for name, value in faults.items():
        setattr(server, name, value)
    return server.start()


def supports_fault(name: str) -> bool:
    """Whether the bundled server knows a fault (engineer A1 adds the embedding-latency ones)."""
    probe = OllamaServer("hash")
    return hasattr(probe, name)


@dataclass
class Run:
    """One process: what it printed (its last JSON line), how long it took, and its memory."""

    argv: list[str]
    seconds: float
    returncode: int
    output: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    peak_rss_mb: float = 0.0  # largest single process (wait4 ru_maxrss)
    peak_tree_rss_mb: float = 0.0  # sum over the process tree, sampled
    peak_tree_pss_mb: float = 0.0  # the same tree's proportional set size, sampled
    embed_requests: int = 0
    embed_inputs: int = 0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.error

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.output.items() if not isinstance(v, list)}
        out.update({k: len(v) for k, v in self.output.items() if isinstance(v, list) and k != "latencies_ms"})
        return {"seconds": round(self.seconds, 3), "ok": self.ok, "error": self.error,
                "peak_rss_mb": round(self.peak_rss_mb, 1), "peak_tree_rss_mb": round(self.peak_tree_rss_mb, 1),
                "peak_tree_pss_mb": round(self.peak_tree_pss_mb, 1),
                "embed_requests": self.embed_requests, "embed_inputs": self.embed_inputs, "output": out}


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def tree_memory(root: int) -> tuple[int, int]:
    """Resident bytes (RSS, PSS) of `root` and all its descendants; PSS falls back to RSS where
    /proc/PID/smaps_rollup cannot be read."""
    children, rss, pss, stack = _children_map(), 0, 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, ()))
        try:
            resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        rss += resident
        pss += _pss(pid, resident)
    return rss, pss


def _pss(pid: int, fallback: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return fallback


def run(argv: list[str], env: dict[str, str], timeout: float, server: CountingServer | None = None,
        cwd: Path | None = None) -> Run:
    """Run `argv` to completion (killed after `timeout` seconds) and measure it."""
    before = server.snapshot() if server else {}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=cwd, start_new_session=True)
        peak, done = [0, 0], threading.Event()

        def sample() -> None:
            while not done.wait(SAMPLE_SECONDS):
                rss, pss = tree_memory(proc.pid)
                peak[:] = max(peak[0], rss), max(peak[1], pss)

        def kill() -> None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timer = threading.Timer(timeout, kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        timer.cancel()
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        try:  # a pool worker left behind must not outlive its tool
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
    result = Run(argv, seconds, proc.returncode, peak_rss_mb=usage.ru_maxrss / 1024, peak_tree_rss_mb=peak[0] / 2**20,
                 peak_tree_pss_mb=peak[1] / 2**20)
    if seconds >= timeout:
        result.error = f"timed out after {timeout:.0f} s"
    elif proc.returncode != 0:
        result.error = (stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:300]
    parsed = _last_json(stdout)
    if parsed is not None:
        result.output = parsed
    elif result.ok:
        result.error = "no JSON object in the output"
    if server:
        after = server.snapshot()
        result.embed_requests = after["embed_requests"] - before["embed_requests"]
        result.embed_inputs = after["embed_inputs"] - before["embed_inputs"]
    return result


def _last_json(stdout: str) -> dict[str, Any] | None:
    """The whole output as one JSON object (pretty-printed or not), else its last JSON line."""
    for text in (stdout, *reversed(stdout.splitlines())):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]
