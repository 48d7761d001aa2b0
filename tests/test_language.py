"""Chinese-heavy folder detection (`ingest.language.HanShare`) and the one Han character range."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.language import HAN_HEAVY_SHARE, HanShare, has_han, is_multilingual
from rag.server import OllamaServer


def share_of(*texts: str) -> HanShare:
    counter = HanShare()
    for text in texts:
        counter.add(text)
    return counter


def test_a_chinese_folder_with_an_english_model_gets_one_line_naming_bge_m3_and_the_rebuild() -> None:
    counter = share_of("数据库每天凌晨两点自动备份。", "公司食堂中午十二点开饭。", "Backups run nightly.")
    assert counter.share > HAN_HEAVY_SHARE
    warning = counter.warning("nomic-embed-text", "docs")
    assert warning is not None and "\n" not in warning
    assert "bge-m3" in warning and "rag index docs --rebuild --embed-model bge-m3" in warning
    assert "nomic-embed-text" in warning


@pytest.mark.parametrize("model", ["bge-m3", "bge-m3:latest", "BGE-M3:567m", "library/bge-m3",
                                   "paraphrase-multilingual:278m", "granite-embedding:278m"])
def test_a_multilingual_model_gets_no_warning(model: str) -> None:
    assert is_multilingual(model)
    assert share_of("检索增强生成先检索相关文档。").warning(model) is None


def test_english_or_lightly_chinese_text_gets_no_warning() -> None:
    assert share_of("The embedding model turns text into vectors.").warning("nomic-embed-text") is None
    mostly_english = share_of("Install the client with pip, then run the indexer over the folder. 安装")
    assert 0 < mostly_english.share < HAN_HEAVY_SHARE
    assert mostly_english.warning("nomic-embed-text") is None
    assert not is_multilingual("granite-embedding:30m")  # the English-only size


def test_share_counts_letters_not_digits_punctuation_or_space() -> None:
    counter = share_of("第 2024 章：水！！ ab  12345 ...")
    assert (counter.han, counter.letters) == (3, 5)  # 第 章 水 + a b
    assert HanShare().share == 0.0 and HanShare().warning("nomic-embed-text") is None


def test_han_range_covers_extension_a_and_compatibility_but_not_kana_or_hangul() -> None:
    assert has_han("㐀") and has_han("中") and has_han("豈")  # Ext. A, unified, compatibility
    assert not has_han("ひらがな カタカナ 한국어 ,。")


# -- rag doctor: the language check on a real index (bundled hash server) -------------------------

ZH_DOCS = {
    "备份.md": "# 备份\n\n数据库每天凌晨两点自动备份，备份文件保存三十天。\n",
    "食堂.md": "# 食堂\n\n公司食堂中午十二点开饭，晚上六点关门。\n",
    "vpn.md": "# VPN\n\nInstall WireGuard.\n",
}


def run_rag(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "OLLAMA_"))}
    return subprocess.run([sys.executable, "-m", "rag", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def doctor_language(server: OllamaServer, db: Path, *extra: str) -> dict[str, str] | None:
    done = run_rag("doctor", "--json", "--host", server.url, "--db", str(db), *extra)
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    return checks.get("language")


def test_doctor_warns_about_a_chinese_index_built_with_an_english_model(
    ollama_server: OllamaServer, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in ZH_DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    db = tmp_path / "db"
    done = run_rag("index", str(docs), "--db", str(db), "--host", ollama_server.url)
    assert done.returncode == 0, done.stderr
    language = doctor_language(ollama_server, db)
    assert language is not None and language["status"] == "warn", language
    assert "nomic-embed-text" in language["detail"] and "Chinese" in language["detail"]
    assert f"rag index {docs} --rebuild --embed-model bge-m3" in language["fix"]

    # the fix, as a user follows it (`--pull` = `rag models pull bge-m3` first)
    rebuilt = run_rag("index", str(docs), "--db", str(db), "--host", ollama_server.url, "--rebuild",
                      "--embed-model", "bge-m3", "--pull")
    assert rebuilt.returncode == 0, rebuilt.stderr
    language = doctor_language(ollama_server, db, "--embed-model", "bge-m3")
    assert language is not None and language["status"] == "pass" and "bge-m3" in language["detail"]


def test_doctor_has_no_language_line_without_indexed_text(ollama_server: OllamaServer, tmp_path: Path) -> None:
    assert doctor_language(ollama_server, tmp_path / "nothing") is None
