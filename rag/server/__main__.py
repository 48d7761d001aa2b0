"""`python -m rag.server`: run the bundled Ollama-protocol server until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from types import FrameType

from rag.server.http import DEFAULT_NUM_CTX, EngineUnavailable, OllamaServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; faults are off unless asked for."""
    parser = argparse.ArgumentParser(prog="python -m rag.server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=11434, help="port, 0 for a free one (default 11434)")
    parser.add_argument("--engine", choices=("hash", "local"), default="hash", help="model engine")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to wait before each reply")
    parser.add_argument("--fail-every", type=int, default=0, metavar="N", help="every Nth request is a 500")
    parser.add_argument("--busy-every", type=int, default=0, metavar="N", help="every Nth request is a 503")
    parser.add_argument("--exit-after", type=int, default=0, metavar="N", help="shut down after N requests")
    parser.add_argument("--stream-error-after", type=int, default=None, metavar="N",
                        help="generate/chat streams fail after N pieces")
    parser.add_argument("--old-server", action="store_true", help="no /api/embed, like Ollama before 0.3")
    parser.add_argument("--gpu", action="store_true", help="report loaded models as in VRAM")
    parser.add_argument("--embed-ms-per-input", type=float, default=0.0, metavar="MS",
                        help="embedding latency: milliseconds slept per input embedded")
    parser.add_argument("--embed-ms-per-request", type=float, default=0.0, metavar="MS",
                        help="embedding latency: milliseconds slept per embedding request")
    parser.add_argument("--num-ctx", type=int, default=int(os.environ.get("OLLAMA_CONTEXT_LENGTH") or DEFAULT_NUM_CTX),
                        help="default context length (OLLAMA_CONTEXT_LENGTH, else 4096)")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the server, print its URL, serve until interrupted."""
    args = parse_args(argv)
    try:
        server = OllamaServer(
            args.engine, host=args.host, port=args.port, latency=args.latency, fail_every=args.fail_every,
            busy_every=args.busy_every, exit_after=args.exit_after, old_server=args.old_server,
            stream_error_after=args.stream_error_after, gpu=args.gpu, num_ctx=args.num_ctx, verbose=args.verbose,
            embed_ms_per_input=args.embed_ms_per_input, embed_ms_per_request=args.embed_ms_per_request,
        ).start()
    except (EngineUnavailable, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(server.url, flush=True)  # first line of stdout: scripts and tests read it

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
