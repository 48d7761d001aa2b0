"""Pure embedding time: the same number of inputs, in the same batches, with the same requests in flight
as an indexing run, and nothing else (no reading, chunking or storing). The yardstick of the
simulated-latency phase.

    python pure_embed.py --host URL --inputs N --batch B --parallel P --texts FILE

Prints {"seconds": ..., "requests": ...}; start-up is not counted.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ollama

MODEL = "nomic-embed-text"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", required=True)
    parser.add_argument("--inputs", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--parallel", type=int, required=True)
    parser.add_argument("--texts", required=True, help="one chunk-sized text per line, reused in turn")
    args = parser.parse_args()
    pool = Path(args.texts).read_text(encoding="utf-8").splitlines()
    texts = [pool[i % len(pool)] for i in range(args.inputs)]
    batches = [texts[i:i + args.batch] for i in range(0, len(texts), args.batch)]
    clients = [ollama.Client(host=args.host) for _ in range(args.parallel)]
    clients[0].embed(model=MODEL, input="warm up")
    start = time.perf_counter()
    with ThreadPoolExecutor(args.parallel) as workers:
        list(workers.map(lambda job: clients[job[0] % args.parallel].embed(model=MODEL, input=job[1]),
                         enumerate(batches)))
    print(json.dumps({"seconds": round(time.perf_counter() - start, 3), "requests": len(batches)}))


if __name__ == "__main__":
    main()
