"""Bytes -> `Document`s: encodings (UTF-8/16, GB18030), Markdown, reST, HTML, code and PDF pages."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import unicodedata
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from ingest.errors import LoadError
from ingest.records import Document, Skip

MARKDOWN = frozenset({".md", ".markdown", ".mdown", ".mkd"})
RST = frozenset({".rst"})
HTML = frozenset({".html", ".htm", ".xhtml"})
CODE = frozenset(
    ".py .pyi .js .mjs .cjs .jsx .ts .tsx .go .rs .java .kt .scala .c .h .cc .cpp .cxx .hpp .cs .rb"
    " .php .swift .m .sh .bash .zsh .fish .ps1 .sql .r .lua .pl .yaml .yml .toml .json .ini .cfg"
    " .xml .css .scss .proto .graphql .tf .dockerfile .mk .cmake .gradle".split()
)
BINARY = frozenset(
    ".png .jpg .jpeg .gif .bmp .ico .tif .tiff .webp .heic .psd .zip .gz .tgz .bz2 .xz .zst .7z .rar"
    " .tar .jar .war .whl .egg .exe .dll .so .dylib .o .a .lib .class .pyc .pyo .wasm .bin .iso .dmg"
    " .img .mp3 .mp4 .m4a .wav .flac .ogg .avi .mov .mkv .webm .woff .woff2 .ttf .otf .ttc .eot"
    " .sqlite .sqlite3 .db .parquet .npy .npz .pkl .pt .onnx .gguf .safetensors .doc .docx .xls"
    " .xlsx .ppt .pptx .odt .ods .odp .epub .mobi".split()
)
_SNIFF = 8192  # like git: a NUL in the first 8 KiB means binary

# The ~400 most frequent Hanzi (Simplified): real Chinese text is mostly made of them, while bytes
# of another encoding read as GB18030 give rare characters. Used only to pick UTF-8 vs GB18030.
_COMMON_HANZI = frozenset(
    "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发后"
    "作里用道行所然家种事成方多经么去法学如都同现当没动面起看定天分还进好小部其些主样理心她本前开但因"
    "只从想实日军者意无力它与长把机十民第公此已工使情明性知全三又关点正业外将两高间由问很最重并物手应"
    "战向头文体政美相见被利什二等产或新己制身果加西斯月话合回特代内信表化老给世位次度门任常先海通教儿"
    "原东声提立及比员解水名真论处走义各入几口认条平系气题活尔更别打女变四神总何电数安少报才结反受目太"
    "量再感建务做接必场件计管期市直德资命山金指克许统区保至队形社便空决治展马科司五基眼书非则听白却界"
    "达光放强即像难且权思王象完设式色路记南品住告类求据程北边死张该交规万取拉格望觉术领共确传师观清今"
    "切院让识候带导争运笑飞风步改收根干造言联持组每济车亲极林服快办议往元英士证近失转夫令准布始怎呢存"
    "未远叫台单影具罗字爱击流备兵连调深商算质团集百需价花党华城石级整府离况亚请技际约示复病息究线似官"
    "火断精满支视消越器容照须九增研写称企八功吗包片史委乎查轻易早曾除农找装广显吧阿李标谈吃图念六引历"
    "首医局突专费号尽另周较注语仅考落青随选列武红响虽推势参希古众构房半节土投某案黑维革划敌致陈律足态"
    "护七兴派孩验责营星够章音跟志底站严巴例防族供效续施留讲型料终答紧黄绝奇察母京段依批群项故按河米围"
    "江织害斗双境客纪采举杀攻父苏密低朝友诉止细愿千值仍男钱破网热助倒育属坐帝限船脸职速刻乐否刚威毛状"
    "率甚独球般普怕弹校苦创假久错承印晚兰试股拿脑预谁益阳若哪微尼继送急血惊伤素药适波夜省初喜卫源食险"
    "待述陆习置居劳财环排福纳欢雷警获模充负云停木游龙树疑层冷洲冲射略范竟句室异激汉村哈策演简卡罪判担"
    "州静退既衣您宗积余痛检差富灵协角占配征修皮挥胜降阶审沉坚善妈刘读啊超免压银买皇养伊怀执副乱抗犯追"
    "帮宣佛岁航优怪香著田铁控税左右份穿艺背阵草脚概恶块顿敢守酒岛托央户烈洋哥索胡款靠评版宝座释景顾弟"
    "登货互付伯慢欧换闻危忙核暗姐介坏讨丽良序升监临亮露永呼味野架域沙掉括舰鱼杂误湖钟件档索引擎模型"
)
_CJK = r"\u2e80-\u2fff\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK_RE = re.compile(f"[{_CJK}]")
_GAP_RE = re.compile(r"(?<=\S)[ \t]{2,}(?=\S)")
_LIGATURES = str.maketrans({"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
                            "\ufb05": "st", "\ufb06": "st", "\u00ad": None})
# "two-\ncolumn" is a real compound; everything else hyphenated at a line end is a split word.
_COMPOUND_LEFT = frozenset("one two three four five six seven eight nine ten self non well half".split())
_HYPHEN_RE = re.compile(r"\b([A-Za-z]+)-\n[ \t]*([a-z])")


@dataclass(frozen=True)
class LoadResult:
    """The documents loaded from one file and the parts of it that were skipped (e.g. empty PDF pages)."""

    documents: list[Document]
    warnings: list[Skip]


def load(path: Path, root: Path) -> LoadResult:
    """Load one file; raise `LoadError(reason)` when the whole file must be skipped."""
    source = source_name(path, root)
    data = _read(path)
    name = path.name.lower()
    suffix = path.suffix.lower()
    if suffix == ".pdf" or data.startswith(b"%PDF-"):
        return _load_pdf(data, source)
    if suffix in BINARY:
        raise LoadError("binary file")
    text = decode(data)
    if suffix in HTML:
        title, body = html_to_text(text)
        return _single(source, body, "html", title)
    if suffix in MARKDOWN:
        return _single(source, text, "markdown", _markdown_title(text))
    if suffix in RST or name.endswith(".rst.txt"):
        return _single(source, text, "rst", _rst_title(text))
    if suffix in CODE or name in {"dockerfile", "makefile"}:
        return _single(source, text, "code", "")
    return _single(source, text, "text", "")


def source_name(path: Path, root: Path) -> str:
    """The path relative to root with forward slashes (tolerates a symlinked or relative root)."""
    try:
        rel = Path(path).absolute().relative_to(Path(root).absolute())
    except ValueError:
        rel = Path(path).resolve().relative_to(Path(root).resolve())
    return rel.as_posix()


def _read(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except PermissionError:
        raise LoadError("permission denied") from None
    except FileNotFoundError:
        raise LoadError("file not found") from None
    except IsADirectoryError:
        raise LoadError("is a folder") from None
    except OSError as e:
        raise LoadError(f"cannot read: {e.strerror or e}") from None


def _single(source: str, text: str, kind: str, title: str) -> LoadResult:
    text = normalize(text, kind=kind)
    if not text.strip():
        raise LoadError("empty file")
    return LoadResult([Document(source=source, text=text, title=title, kind=kind)], [])


# --- encodings -------------------------------------------------------------------------------------

def decode(data: bytes) -> str:
    """Bytes -> str: BOMs, UTF-8 vs GB18030 by plausibility, latin-1 only for text-like bytes."""
    if data.startswith(b"\xef\xbb\xbf"):
        return _strict(data[3:], "utf-8")
    for bom, codec in ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
                       (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if data.startswith(bom):
            return _strict(data[len(bom):], codec)
    if b"\x00" in data[:_SNIFF]:
        raise LoadError("binary file")
    utf8 = _try(data, "utf-8")
    if utf8 is not None and (utf8.isascii() or _han_share(utf8)[1]):
        return utf8
    gb = _try(data, "gb18030")
    if gb is not None:
        common, han = _han_share(gb)
        # Short GBK text can also be valid UTF-8 ("一些" reads as Cyrillic "һЩ"); UTF-8 Greek or
        # Hebrew also reads as GB18030 Hanzi, but rare ones. Real Chinese is mostly common Hanzi.
        if han and common >= (0.6 if utf8 is not None else 0.2):
            return gb
    if utf8 is not None:
        return utf8
    latin = data.decode("latin-1")
    if _looks_like_text(latin):
        return latin
    raise LoadError("binary file")


def _strict(data: bytes, codec: str) -> str:
    text = _try(data, codec)
    if text is None:
        raise LoadError("binary file")
    return text


def _try(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        return None


def _han_share(text: str) -> tuple[float, int]:
    """(share of the Han characters that are common ones, number of Han characters)."""
    han = [c for c in text if "\u4e00" <= c <= "\u9fff"]
    if not han:
        return 0.0, 0
    return sum(c in _COMMON_HANZI for c in han) / len(han), len(han)


def _looks_like_text(text: str) -> bool:
    sample = text[:_SNIFF]
    controls = sum(1 for c in sample if ord(c) < 32 and c not in "\t\n\r\f\v")
    plain = sum(1 for c in sample if c.isascii())
    return controls == 0 and plain >= 0.8 * len(sample)


# --- normalisation ---------------------------------------------------------------------------------

def normalize(text: str, *, kind: str = "text") -> str:
    """Newlines to \\n, no NULs, NFC; PDF ligatures/hyphens fixed; groff space runs in Chinese closed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = unicodedata.normalize("NFC", text)
    if kind == "pdf":
        text = text.translate(_LIGATURES)
        text = _HYPHEN_RE.sub(_join_hyphen, text)
    if kind != "code":
        text = _GAP_RE.sub(lambda m: _close_gap(text, m), text)
    return text


def _join_hyphen(m: re.Match[str]) -> str:
    left = m.group(1)
    return f"{left}-{m.group(2)}" if left.lower() in _COMPOUND_LEFT else f"{left}{m.group(2)}"


def _close_gap(text: str, m: re.Match[str]) -> str:
    before, after = text[m.start() - 1], text[m.end()]
    cjk_before, cjk_after = bool(_CJK_RE.match(before)), bool(_CJK_RE.match(after))
    if cjk_before and cjk_after:
        return ""
    return " " if cjk_before or cjk_after else m.group()


# --- titles ----------------------------------------------------------------------------------------

def _markdown_title(text: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines[:200]):
        if line.startswith("# "):
            return line[2:].strip().rstrip("#").strip()
        if line.strip() and i + 1 < len(lines) and re.fullmatch(r"=+\s*", lines[i + 1]):
            return line.strip()
    return ""


def _rst_title(text: str) -> str:
    lines = text.splitlines()
    for i in range(len(lines) - 1):
        title, under = lines[i].strip(), lines[i + 1].rstrip()
        if title and re.fullmatch(r"([=\-~^\"'`#*+:.])\1{2,}", under) and len(under) >= len(title):
            return title
    return ""


# --- HTML ------------------------------------------------------------------------------------------

_DROP_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "nav", "aside", "footer",
                        "form", "button", "select", "iframe"})
_DROP_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "complementary"})
_DROP_CLASS = re.compile(r"\b(nav|navbar|nav-panel|sidebar|sphinxsidebar|related|menu|breadcrumbs?|"
                         r"header|footer|headerlink|copiable-anchor|skip-link)\b")
_BLOCK = frozenset({"p", "div", "section", "article", "main", "ul", "ol", "dl", "table", "pre",
                    "blockquote", "figure", "figcaption", "hr", "body", "details", "summary"})
_LINE = frozenset({"li", "tr", "br", "dt", "dd", "caption"})
_VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed",
                   "param", "source", "track", "wbr"})


class _HtmlText(HTMLParser):
    """Visible text with blocks as paragraphs and h1-h6 as Markdown `#` headings."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.title: list[str] = []
        self.in_title = False
        self.drop: list[str] = []  # tag names of the dropped elements we are inside
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
            return
        if tag in _VOID:
            if not self.drop and tag in {"br", "hr"}:
                self._break(1)
            return
        a = {k: v or "" for k, v in attrs}
        if self.drop or tag in _DROP_TAGS or a.get("role") in _DROP_ROLES or (
            _DROP_CLASS.search(a.get("class", "")) and tag not in {"body", "main", "article"}
        ):
            self.drop.append(tag)
            return
        self._open(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        elif self.drop:
            if tag in self.drop:  # tolerate unclosed children: pop back to the matching element
                while self.drop and self.drop.pop() != tag:
                    pass
        elif re.fullmatch(r"h[1-6]", tag):
            self._break(2)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
            self._break(1)
            self.out.append("```")
            self._break(2)
        elif tag in _BLOCK:
            self._break(2)
        elif tag in _LINE:
            self._break(1)
        elif tag in {"td", "th"}:
            self.out.append(" ")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        elif not self.drop:
            if not self.pre:
                data = re.sub(r"\s+", " ", data)
                if not self.out or self.out[-1][-1:].isspace():
                    data = data.lstrip()
            if data:
                self.out.append(data)

    def _open(self, tag: str) -> None:
        if re.fullmatch(r"h[1-6]", tag):
            self._break(2)
            self.out.append("#" * int(tag[1]) + " ")
        elif tag == "pre":
            # Fenced, so a "# comment" line in code is not taken for a heading by the chunker.
            self.pre += 1
            self._break(2)
            self.out.append("```\n")
        elif tag in _BLOCK:
            self._break(2)
        elif tag in _LINE:
            self._break(1)

    def _break(self, lines: int) -> None:
        """End the current line or paragraph: at least `lines` newlines, never stacking them."""
        tail = "".join(self.out[-4:]).rstrip(" ")
        have = len(tail) - len(tail.rstrip("\n")) if tail else lines
        if have < lines:
            self.out.append("\n" * (lines - have))


def html_to_text(html: str) -> tuple[str, str]:
    """(title, text) of an HTML page, without scripts, styles and navigation."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    title = re.sub(r"\s+", " ", "".join(parser.title)).strip()
    text = "".join(parser.out)
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    return title, text + "\n" if text else ""


# --- PDF -------------------------------------------------------------------------------------------

def _load_pdf(data: bytes, source: str) -> LoadResult:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    # pypdf warns (and logs) about every malformed object it recovers from: noise for our users.
    with warnings.catch_warnings(), _quiet_pypdf():
        warnings.simplefilter("ignore")
        try:
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                _decrypt(reader)
            pages = list(reader.pages)
        except LoadError:
            raise
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError,
                RecursionError, OSError) as e:
            raise LoadError(f"corrupt PDF: {_brief(e)}") from None
        title = _pdf_title(reader)
        docs, skipped = [], []
        for number, page in enumerate(pages, start=1):
            try:
                raw = page.extract_text() or ""
            except Exception as e:  # noqa: BLE001 - one bad page must not lose the others
                skipped.append(Skip(f"{source}#page={number}", f"text extraction failed on page {number}: "
                                                                f"{_brief(e)}"))
                continue
            text = _join_cjk_wraps(normalize(raw, kind="pdf")).strip()
            if not text:
                skipped.append(Skip(f"{source}#page={number}",
                                    f"no extractable text on page {number} (scanned image?)"))
                continue
            docs.append(Document(source=source, text=text + "\n", page=number, title=title, kind="pdf"))
    if not pages:
        raise LoadError("corrupt PDF: no pages")
    if not docs:
        raise LoadError("no extractable text in PDF (scanned images?)")
    return LoadResult(docs, skipped)


def _join_cjk_wraps(text: str) -> str:
    """Undo a PDF's visual line wraps inside Chinese sentences ("硕士学位\n论文" -> "硕士学位论文")."""
    out: list[str] = []
    for line in text.split("\n"):
        prev = out[-1].rstrip() if out else ""
        head = line.lstrip()[:1]
        # A short line is a heading or list item, and one ending a sentence ends the paragraph.
        if len(prev) >= 15 and _CJK_RE.match(prev[-1]) and prev[-1] not in "。！？：；" and head \
                and _CJK_RE.match(head):
            out[-1] = prev + line.lstrip()
        else:
            out.append(line)
    return "\n".join(out)


@contextlib.contextmanager
def _quiet_pypdf() -> Iterator[None]:
    log = logging.getLogger("pypdf")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def _decrypt(reader: object) -> None:
    from pypdf import PasswordType
    from pypdf.errors import DependencyError

    try:
        result = reader.decrypt("")  # type: ignore[attr-defined]
    except (DependencyError, NotImplementedError) as e:
        raise LoadError(f"encrypted PDF (unsupported encryption: {_brief(e)})") from None
    if result == PasswordType.NOT_DECRYPTED:
        raise LoadError("encrypted PDF (password required)")


def _pdf_title(reader: object) -> str:
    try:
        meta = reader.metadata  # type: ignore[attr-defined]
        title = str(meta.title or "").strip() if meta else ""
    except Exception:  # noqa: BLE001 - metadata is optional and often broken
        return ""
    # Word and TeX leave placeholders ("untitled", "Microsoft Word - x.docx", "各院、系：").
    if len(title) < 3 or title.lower() in {"untitled", "title", "unknown"}:
        return ""
    if title.endswith((":", "：")) or re.search(r"\.(docx?|pdf|tex|dvi|rtf|odt)$", title, re.I):
        return ""
    return title


def _brief(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:100]
