"""Generate the two multi-page PDFs of `sample_docs/` (both are committed; rerun after editing).

    .venv/bin/python scripts/make_sample_pdfs.py

sample_docs/ is a small, invented knowledge base of a platform team (Harbor Labs) that runs an
internal question-answering tool called Lookout on a GPU server `gpu-02`, and sells a note-search
app called Tidepool. Every fact in it is specific (numbers, names, commands) and stated once, so
evaluation questions have one right answer and one right source:

* `ollama-api-notes.md` — Ollama endpoints, /api/embed batching, num_ctx memory, keep_alive, errors.
* `chroma-basics.md` — Chroma clients, collections, cosine space, metadata rules, deleting.
* `embedding-models.html` — comparison table of embedding models, prefixes, bge-m3 recommendation
  (HTML with a nav bar, sidebar, scripts and footer that the loader must drop).
* `rag-vs-finetuning.zh.md` — 检索增强生成 vs 微调: table of differences, the 81% vs 64% test.
* `tidepool-install-guide.md` — install per OS, port 7420, requirements.
* `tidepool-faq.zh.md` — Tidepool FAQ in Chinese: devices, sync interval, pricing, formats.
* `team-handbook.txt` — plain text: hours, on-call, reviews, releases, expenses.
* `onboarding.zh.txt` — Chinese onboarding guide, saved as **GBK with CRLF** on purpose (an old
  Windows share); read it with `iconv -f gbk -t utf-8 sample_docs/onboarding.zh.txt`.
* `tidepool-admin-manual.pdf` (made here) — 5 pages, English, one topic per page:
  p1 overview/architecture, p2 users and roles, p3 backup and restore, p4 security, p5 error codes.
* `ollama-deployment.zh.pdf` (made here) — 4 pages, Chinese: p1 hardware, p2 install and systemd
  settings, p3 model management, p4 troubleshooting.

The Chinese PDF needs a CJK TrueType font; the script looks for one with fontconfig and in the
usual folders (Debian: `apt-get install fonts-wqy-microhei`). fpdf2 embeds only the glyphs used.
Output is deterministic (fixed creation date), so rerunning without edits changes no bytes.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

from fpdf import FPDF

OUT = Path(__file__).resolve().parents[1] / "sample_docs"
CREATED = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.timezone.utc)
CJK_FONT_CANDIDATES = [
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
]

ADMIN_TITLE = "Tidepool Server 3.2 Administrator Manual"
ADMIN_PAGES = [
    ("1. Overview", [
        "This manual is for administrators who run Tidepool Server 3.2, the self-hosted back end of "
        "the Tidepool note-search app made by Harbor Labs. Desktop users do not need it.",
        "Tidepool Server has three parts: the web service tidepool-server, the background indexer "
        "tidepool-indexer, and a PostgreSQL database. PostgreSQL 14 or later is required; version 16 "
        "is recommended. The admin console listens on port 7443 over HTTPS.",
        "A single server with 4 CPU cores and 16 GB of RAM serves up to 500 users. Larger "
        "organisations run two or more tidepool-server instances behind a load balancer; the indexer "
        "must run as exactly one instance.",
        "The server license is a file named license.key in /etc/tidepool. The license states the number "
        "of seats and the expiry date; a server with an expired license keeps working in read-only mode "
        "for 30 days.",
    ]),
    ("2. Users and roles", [
        "Every user has one of four roles in a workspace: viewer (search and read), editor (also "
        "create and change notes), admin (also manage users and settings) and owner (also billing and "
        "deleting the workspace). Each workspace has exactly one owner.",
        "A workspace holds at most 250 seats. Invite users from the admin console or with "
        "tidepool admin users invite <email> --role editor. Invitation links expire after 72 hours.",
        "To remove someone, deactivate the account with tidepool admin users deactivate <email>. "
        "A deactivated user's notes stay in the workspace, and the seat becomes free at once.",
        "User provisioning with SCIM 2.0 is supported for Okta and Microsoft Entra ID. With SCIM "
        "enabled, users removed from the identity provider are deactivated within 40 minutes.",
    ]),
    ("3. Backup and restore", [
        "Tidepool Server makes a full backup every night at 02:30 server time and keeps the last 14 "
        "backups. Backups are encrypted with AES-256; the key is stored in /etc/tidepool/backup.key. "
        "Keep a copy of this key somewhere else: without it a backup cannot be restored.",
        "To make a backup by hand, run tidepool admin backup --out /var/backups/tidepool. To restore, "
        "stop tidepool-server and tidepool-indexer, then run tidepool admin restore <backup-file>.",
        "Restoring a 10 GB workspace takes about 6 minutes. The search index is not part of the "
        "backup: after a restore, the indexer rebuilds it, which takes about 1 hour per 100,000 notes.",
        "We recommend testing a restore on a spare machine once every quarter.",
    ]),
    ("4. Security", [
        "All connections use TLS 1.2 or later; TLS 1.0 and 1.1 are refused. Single sign-on works with "
        "SAML 2.0 and OpenID Connect. When single sign-on is enabled, password logins can be turned "
        "off for everyone except the owner.",
        "Sessions expire after 12 hours of inactivity. After 5 failed password attempts an account is "
        "locked for 15 minutes.",
        "The audit log records every sign-in, export, permission change and deletion. Audit entries "
        "are kept for 365 days and can be exported as CSV from the admin console under Security.",
        "Notes are encrypted at rest with AES-256. Security issues can be reported to "
        "security@harborlabs.example; Harbor Labs answers within 2 working days.",
    ]),
    ("5. Error codes", [
        "E1042 index locked: another indexer is running, or a crashed indexer left its lock behind. "
        "Check that only one tidepool-indexer runs, then clear the lock with tidepool admin unlock-index.",
        "E2001 quota exceeded: the workspace is over its storage quota, 50 GB by default. Delete old "
        "attachments or raise the quota in the admin console under Workspace.",
        "E3007 sync token expired: a desktop app has not synced for more than 90 days. The user must "
        "sign in again.",
        "E4100 database unreachable: tidepool-server cannot connect to PostgreSQL. Check the "
        "database_url setting in /etc/tidepool/server.toml.",
        "The server log is /var/log/tidepool/server.log. Attach it when you contact Harbor Labs "
        "support.",
    ]),
]

DEPLOY_TITLE = "Ollama 部署手册（平台组）"
DEPLOY_PAGES = [
    ("第一章 概述与硬件", [
        "本手册记录平台组在服务器 gpu-02 上部署 Ollama 的方法。Lookout 问答工具的所有模型调用都经过这台服务器。",
        "gpu-02 的配置：一张 NVIDIA L4 显卡（24 GB 显存），64 GB 内存，2 TB 固态硬盘，操作系统是 Debian 12。",
        "显存估算：7B 参数的模型用 q4_K_M 量化后大约需要 5 GB 显存，14B 模型大约需要 9 GB。上下文窗口越大，占用的显存越多。",
        "默认问答模型是 qwen2.5:7b，嵌入模型是 bge-m3。选择 qwen2.5 是因为它的中文回答质量在我们的测试中最好。",
    ]),
    ("第二章 安装与服务配置", [
        "用官方安装脚本安装 Ollama，版本固定为 0.5.7。升级前必须先在测试服务器 gpu-01 上验证一周。",
        "服务由 systemd 管理，服务名是 ollama。修改配置时不要直接编辑服务文件，而是执行 systemctl edit ollama，在覆盖文件中写入环境变量。",
        "gpu-02 使用以下四个环境变量：",
        "  OLLAMA_HOST=0.0.0.0:11434 —— 允许内网访问；",
        "  OLLAMA_KEEP_ALIVE=2h —— 模型在最后一次请求后保留 2 小时；",
        "  OLLAMA_NUM_PARALLEL=4 —— 每个模型同时处理 4 个请求；",
        "  OLLAMA_MODELS=/data/ollama/models —— 模型文件放在数据盘上。",
        "修改后执行 systemctl daemon-reload 和 systemctl restart ollama 使配置生效。防火墙只允许 10.20.0.0/16 网段访问 11434 端口。",
    ]),
    ("第三章 模型管理", [
        "下载模型：ollama pull qwen2.5:7b。查看已安装的模型：ollama list。查看当前加载在显存中的模型：ollama ps。删除模型：ollama rm 模型名。",
        "每周一凌晨 03:00，定时任务会自动执行 ollama pull，更新 qwen2.5:7b 和 bge-m3 两个模型。更新日志写入 /var/log/ollama-update.log。",
        "更换嵌入模型之后，必须重建 Lookout 的全部索引，因为不同模型生成的向量不能混用。重建大约需要 25 分钟。",
        "新模型上线前，要用 120 个测试问题评估，答对率不能低于当前模型。",
    ]),
    ("第四章 常见故障", [
        "端口被占用：启动时报错 address already in use，说明 11434 端口已被其他进程使用。用 ss -ltnp | grep 11434 找到该进程。",
        "显存不足：日志中出现 CUDA out of memory 时，先把请求中的 num_ctx 从 8192 调小到 4096；如果仍然不够，换用更小的量化版本。",
        "看不到显卡：执行 nvidia-smi 检查驱动。驱动版本至少要 535，否则 Ollama 会退回到 CPU 运行，速度慢大约 20 倍。",
        "查看服务日志：journalctl -u ollama -f。遇到无法解决的问题，请联系 Tomás Ortega。",
    ]),
]


class _Manual(FPDF):
    """A PDF with a running footer, so every page names the manual and its page number."""

    def __init__(self, footer: str, font: str) -> None:
        super().__init__()
        self.footer_text = footer
        self.font_name = font

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font(self.font_name, size=8)
        self.cell(0, 10, f"{self.footer_text} - {self.page_no()}", align="C")


def find_cjk_font() -> Path | None:
    """A TrueType font with Chinese glyphs: fontconfig's choice, else a known Debian path."""
    try:
        listed = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=10)
        paths = [line.split(":")[0].strip() for line in listed.stdout.splitlines()]
    except (OSError, subprocess.SubprocessError):
        paths = []
    for path in CJK_FONT_CANDIDATES + sorted(p for p in paths if p.endswith((".ttf", ".ttc"))):
        if Path(path).is_file():
            return Path(path)
    return None


def build(pages: list[tuple[str, list[str]]], title: str, font: str, font_file: Path | None) -> bytes:
    """Render one heading and its paragraphs per page."""
    pdf = _Manual(title, font)
    if font_file is not None:
        pdf.add_font(font, fname=str(font_file))
    pdf.set_title(title)
    pdf.set_author("Harbor Labs platform team")
    pdf.set_creation_date(CREATED)
    pdf.set_auto_page_break(auto=True, margin=20)
    for heading, paragraphs in pages:
        pdf.add_page()
        pdf.set_font(font, size=16)
        pdf.multi_cell(0, 10, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
        pdf.set_font(font, size=11)
        for para in paragraphs:
            # WORD: wrap at spaces, so commands and numbers stay whole; fpdf2 still breaks a
            # Chinese run longer than a line between characters.
            pdf.multi_cell(0, 6.5, para, align="L", new_x="LMARGIN", new_y="NEXT", wrapmode="WORD")
            pdf.ln(3)
    return bytes(pdf.output())


def main() -> int:
    """Write both PDFs into sample_docs/."""
    admin = OUT / "tidepool-admin-manual.pdf"
    admin.write_bytes(build(ADMIN_PAGES, ADMIN_TITLE, "helvetica", None))
    print(f"wrote {admin} ({len(ADMIN_PAGES)} pages)")
    font = find_cjk_font()
    if font is None:
        print("no CJK font found: install one (Debian: apt-get install fonts-wqy-microhei)", file=sys.stderr)
        return 1
    deploy = OUT / "ollama-deployment.zh.pdf"
    deploy.write_bytes(build(DEPLOY_PAGES, DEPLOY_TITLE, "cjk", font))
    print(f"wrote {deploy} ({len(DEPLOY_PAGES)} pages, font {font.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
