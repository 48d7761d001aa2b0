"""The layering rule: `ingest` (the write path) never imports `rag`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

INGEST = Path(__file__).resolve().parents[1] / "ingest"


def test_no_ingest_module_imports_rag() -> None:
    offenders = []
    for path in sorted(INGEST.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n == "rag" or n.startswith("rag.")]
    assert offenders == []


def test_importing_the_whole_write_path_loads_no_rag_module() -> None:
    code = (
        "import sys, ingest.indexer, ingest.embedder, ingest.store, ingest.lexical, ingest.loaders;"
        "print(sorted(m for m in sys.modules if m == 'rag' or m.startswith('rag.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
