"""Chat turn 2 with a bad rewrite: is the right file retrieved? Old rule (search the rewrite, or the
fallback when the call fails) vs `rag.chat` now (drop off-topic / echo rewrites, fuse the user's own
words with the rewrite). Hash engine, the tests' read-path corpus (tests/readpath.py), k=5.

    .venv/bin/python bench/rewrite_fusion.py   # prints the table of bench/results/rewrite_fusion.md
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from readpath import indexed_settings  # noqa: E402

from rag.answer import search_fused  # noqa: E402
from rag.chat import REWRITE_SYSTEM, choose_query, clean_rewrite, fallback_query, rewrite_prompt  # noqa: E402
from rag.retrieve import Retriever  # noqa: E402
from rag.server import HashEngine, OllamaServer, hash_text  # noqa: E402

logging.getLogger("rag.chat").setLevel(logging.ERROR)  # the "rewrite ignored" warnings

TURNS = [  # (first question, second question, right file)
    ("检索增强生成是什么？", "How long is the dishwasher warranty?", "manual.pdf"),
    ("检索增强生成是什么？", "它和微调有什么区别？", "zh/微调.md"),
    ("How long is the dishwasher warranty?", "and how often should its filter be cleaned?", "manual.pdf"),
    ("How long is the dishwasher warranty?", "When should I prune roses?", "guide.md"),
    ("When should I prune roses?", "and how should tomatoes be watered?", "guide.md"),
    ("When should I prune roses?", "微调需要什么计算资源？", "zh/微调.md"),
    ("How often should I oil the bicycle chain?", "what about tyre pressure?", "notes.txt"),
    ("How often should I oil the bicycle chain?", "检索增强生成需要重新训练模型吗？", "zh/rag.md"),
]
BEHAVIOURS = {
    "good (hash rewrite)": None,
    "unrelated text": "Bananas are an excellent source of potassium.",
    "echo of instructions": REWRITE_SYSTEM.split(":")[0],
    "stuck on turn 1": "FIRST",
}
print("| rewrite reply | old: right file first | old: in top 5 | now: right file first | now: in top 5 |")
print("|---|---|---|---|---|")
with OllamaServer(HashEngine()) as srv, tempfile.TemporaryDirectory() as tmp:
    with Retriever.open(indexed_settings(srv, Path(tmp))) as r:
        for name, reply in BEHAVIOURS.items():
            old_top = old_any = new_top = new_any = 0
            for first, second, right in TURNS:
                history = [{"role": "user", "content": first}, {"role": "assistant", "content": "..."}]
                if reply is None:
                    text = hash_text.reply([{"role": "system", "content": REWRITE_SYSTEM},
                                            {"role": "user", "content": rewrite_prompt(history, second)}])
                else:
                    text = first if reply == "FIRST" else reply
                old = r.search(clean_rewrite(text) or fallback_query(history, second))
                new = search_fused(r, [second, choose_query(text, history, second)])
                old_top += bool(old) and old[0].source == right
                old_any += any(h.source == right for h in old)
                new_top += bool(new) and new[0].source == right
                new_any += any(h.source == right for h in new)
            n = len(TURNS)
            print(f"| {name} | {old_top}/{n} | {old_any}/{n} | {new_top}/{n} | {new_any}/{n} |")
