"""Chinese-heavy folder detection (`ingest.language.HanShare`) and the one Han character range."""

from __future__ import annotations

import pytest

from ingest.language import HAN_HEAVY_SHARE, HanShare, has_han, is_multilingual


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
