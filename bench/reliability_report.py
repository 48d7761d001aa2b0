"""bench/results/reliability.md: the reliability figures, measured by running the tests that inject each
kind of trouble (and counting what passed), plus the dense reachability of bench/reachability.py.

    python bench/reliability_report.py            # runs the selected tests (a few minutes)
    python bench/reliability_report.py --counts-from-last   # keeps the last run's test counts, redraws the rest

Each row is a set of tests; "handled" counts the test cases that passed. A random test (hypothesis)
counts as one case here; its example count is given beside it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

GROUPS = {
    "bad inputs (files and folder entries)": ["tests/test_bad_inputs.py", "tests/test_walk.py", "tests/test_loaders.py",
                                              "tests/test_properties.py"],
    "faults from the Ollama and Chroma servers": [
        "tests/test_faults.py", "tests/test_multi_host.py",
        "tests/test_indexer.py::test_transient_server_errors_are_retried",
        "tests/test_indexer.py::test_server_down_is_a_clear_error_and_loses_nothing",
        "tests/test_indexer.py::test_a_run_cut_short_resumes_without_redoing_stored_files",
        "tests/test_indexer.py::test_old_server_falls_back_to_legacy_endpoint_with_unit_vectors",
        "tests/test_server_mode.py::test_the_server_going_away_mid_index_is_a_clear_error_and_resumes",
    ],
    "kill -9 at random moments and between commit steps": ["tests/test_reliability.py -k kill_9_or_crash_between"],
    "concurrent writers and readers": ["tests/test_reliability.py -k second_writer_or_two_runs_or_lock_or_searches_during",
                                       "tests/test_server_mode.py::test_the_writer_lock_holds_across_clients_of_one_server"],
    "damaged store, state and manifest": ["tests/test_reliability.py -k damaged_or_truncated_or_rebuild_succeeds_or_legacy_or_verify"],
}


def run_group(specs: list[str]) -> tuple[int, int]:
    passed = total = 0
    for spec in specs:
        parts = spec.split(" -k ")
        with tempfile.NamedTemporaryFile(suffix=".xml") as xml:
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", parts[0], f"--junitxml={xml.name}"]
            if len(parts) == 2:
                cmd += ["-k", parts[1].replace("_or_", " or ")]
            subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            suite = ET.parse(xml.name).getroot()
            for case in suite.iter("testcase"):
                total += 1
                if not any(child.tag in ("failure", "error", "skipped") for child in case):
                    passed += 1
    return passed, total


def last_counts() -> list[tuple[str, int, int]]:
    """The (label, cases, passed) rows of the last reliability.md, for redrawing the reachability part alone."""
    rows = []
    for line in (RESULTS / "reliability.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0] in GROUPS:
            rows.append((cells[0], int(cells[1]), int(cells[2])))
    return rows


def reach_cell(run: dict[str, float]) -> str:
    """One reachability measurement as a table cell."""
    return f"{run['reachable_pct']}% ({run['unreachable']} lost)"


def main() -> None:
    rows = []
    if "--counts-from-last" in sys.argv[1:]:
        rows = last_counts()
    else:
        for label, specs in GROUPS.items():
            passed, total = run_group(specs)
            rows.append((label, total, passed))
            print(f"{label}: {passed}/{total}", flush=True)
    reach_path = RESULTS / "reachability.json"
    reach = json.loads(reach_path.read_text()) if reach_path.exists() else {}
    lines = [
        "# Reliability",
        "",
        "Measured by `python bench/reliability_report.py`, which runs the tests that build each kind of trouble",
        "themselves and counts the cases that passed (every case asserts that nothing indexed was lost: the",
        "store, the file records and the lexical index agree, and every file's text is found).",
        "",
        "| trouble | cases tried | handled cleanly |",
        "|---|---:|---:|",
        *[f"| {label} | {total} | {passed} |" for label, total, passed in rows],
        "",
        "The property tests (hypothesis) count as one case each above; each run draws about 580 random",
        "examples across them (random bytes under every extension, random UTF-8/GB18030 text, random trees",
        "with links).",
        "",
        "## Dense reachability (a chunk's own vector finds it among the 10 nearest)",
        "",
        "Hash-engine embeddings from the bundled server (`python bench/reachability.py`"
        + (" --quick" if reach.get("quick") else "") + "). "
        "Chroma's default HNSW (max_neighbors 16, ef_construction 100, ef_search 100) against rag's "
        f"({json.dumps(reach.get('settings', {}).get('rag', {}))}).",
        "",
        "| index state | chunks | Chroma default | rag | query p50, default / rag |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, label in (("nfcorpus_fresh", "NFCorpus, fresh build"), ("synthetic_fresh", "synthetic, fresh build"),
                       ("synthetic_after_30pct_edits", "synthetic, after editing 30% of files"),
                       ("synthetic_after_kill_and_rerun", "synthetic, after kill -9 mid-update and a re-run")):
        d, r = reach.get("chroma_default", {}).get(key), reach.get("rag", {}).get(key)
        if d and r:
            lines.append(f"| {label} | {r['chunks']} | {reach_cell(d)} | {reach_cell(r)} | "
                         f"{d['query_p50_ms']} / {r['query_p50_ms']} ms |")
    before_path = RESULTS / "reachability-no-relink.json"
    if before_path.exists():
        before = json.loads(before_path.read_text())
        lines += ["", "The same runs before the indexer re-linked chunks after churn (HNSW parameters only):", "",
                  "| index state | Chroma default | 64 / 400 / 200 (rag's setting then), no re-link |", "|---|---:|---:|"]
        for key in ("synthetic_fresh", "synthetic_after_30pct_edits", "synthetic_after_kill_and_rerun"):
            d, r = before.get("chroma_default", {}).get(key), before.get("rag", {}).get(key)
            if d and r:
                lines.append(f"| {key.replace('_', ' ')} | {reach_cell(d)} | {reach_cell(r)} |")
    tried_path = RESULTS / "hnsw_settings.json"
    if tried_path.exists():
        tried = json.loads(tried_path.read_text())
        lines += ["", "Settings tried before choosing rag's (`bench/results/hnsw_settings.json`), max_neighbors /",
                  "ef_construction / ef_search: reachability on the synthetic folder above, and Chroma's own insert",
                  "cost per vector on 40,960 random vectors (first and last block of 10,240; `bench/hnsw_cost.py`):", "",
                  "| setting | synthetic fresh | after 30% edits | after kill -9 |", "|---|---:|---:|---:|"]
        for setting, row in tried.get("reachability", {}).items():
            cells = [reach_cell(row[k]) for k in
                     ("synthetic_fresh", "synthetic_after_30pct_edits", "synthetic_after_kill_and_rerun")]
            lines.append(f"| {setting.replace(',', ' / ')} | " + " | ".join(cells) + " |")
        lines += ["", "| setting | insert ms per vector, 0-10k / 30-40k | query p50 |", "|---|---:|---:|"]
        for row in tried.get("insert_cost", []):
            blocks = row["ms_per_vector_by_10k_block"]
            lines.append(f"| {row['settings'].replace(',', ' / ')} | {blocks[0]} / {blocks[-1]} ms | {row['query_p50_ms']} ms |")
    lines += ["", "Both columns of the first table include the indexer's re-link: after 5% of the index was replaced",
              "since the last check, `rag index` checks every chunk and re-inserts the lost ones (delete and",
              "re-add with the same id, text, metadata and vector), which links them into the graph afresh.",
              "`rag status --verify --repair` does the same on demand.", ""]
    (RESULTS / "reliability.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {RESULTS / 'reliability.md'}")


if __name__ == "__main__":
    main()
