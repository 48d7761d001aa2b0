"""Only the embedding-bound phases of `make bench` (bench/run.py), re-run on their own: rag's ingest with a
simulated slow embedder against the pure embedding time, and two Ollama hosts against one. Writes
bench/results/scaleout.md and .json (make bench writes the same rows into bench.md with everything else).

    python bench/scaleout.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402

OUT = run.BENCH / "results"


def main() -> None:
    caps = run.capabilities()
    run.WORK.mkdir(parents=True, exist_ok=True)
    log = lambda label, row: print(label, json.dumps(row, default=str)[:300], flush=True)  # noqa: E731
    started = time.strftime("%Y-%m-%d %H:%M")
    latency = run.latency_phase(caps, run.FULL, log)
    multihost = run.multihost_phase(caps, run.FULL, log)
    (OUT / "scaleout.json").write_text(json.dumps({"started": started, "latency": latency, "multihost": multihost},
                                                  indent=2, default=str) + "\n", encoding="utf-8")
    lines = [f"# Embedding-bound phases (`python bench/scaleout.py`, {started})", ""]
    if latency.get("status") == "measured":
        ratio = latency["ingest_seconds"] / latency["pure_embed_seconds"]
        lines.append(f"- Simulated embedding latency ({latency['ms_per_input']} ms per input + "
                     f"{latency['ms_per_request']} ms per request, {latency['parallel']} in flight, {latency['corpus']}): "
                     f"rag ingest {latency['ingest_seconds']:.2f} s vs pure embedding {latency['pure_embed_seconds']:.2f} s "
                     f"(**{ratio:.2f}×**, target ≤ 1.1×).")
    else:
        lines.append(f"- Simulated embedding latency: {latency}")
    if multihost.get("status") == "measured":
        lines.append(f"- Two Ollama hosts against one ({multihost['ms_per_input']} ms per input per host, "
                     f"{multihost['corpus']}): {multihost['two_hosts']['inputs_per_second']} vs "
                     f"{multihost['one_host']['inputs_per_second']} inputs/s (**{multihost['throughput_ratio']}×**, "
                     f"target ≥ 1.8×); inputs per host {multihost['two_hosts']['inputs_per_host']}.")
    else:
        lines.append(f"- Two Ollama hosts: {multihost}")
    (OUT / "scaleout.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
