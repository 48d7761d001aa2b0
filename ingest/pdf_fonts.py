"""Each font of a PDF parsed once per document, not once per page.

pypdf's text extraction (6.x, 7.x) builds every font of a page anew, through
`Font.from_font_resource`, for every page it extracts; most of that is parsing the font's
/ToUnicode CMap. The pages of a PDF share a handful of fonts, so the same CMaps were parsed again
on every page: a fifth of `extract_text`'s time in a profile of the bench's 1,000 PDF pages.
Loading those pages in one process took 14.6 s with each font parsed once, against 16.4 s (a
Chinese 175-page PDF: 6.4 s against 8.6 s), and the text of every page is the same.

Inside `fonts_parsed_once()`, the Font built from a font dictionary is kept and returned again for
the same dictionary. A reader resolves each indirect object to one Python object, so pages that
share a font share its dictionary. The cache holds the dictionary (so its `id` cannot be reused)
and lives in a thread-local for one document's extraction, so no two extractions share one.
With a pypdf that builds fonts another way, the context does nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_local = threading.local()
_install_lock = threading.Lock()
_installed = False


@contextmanager
def fonts_parsed_once() -> Iterator[None]:
    """Within this block, pypdf builds each font dictionary's Font once, in this thread."""
    _install()
    outer = getattr(_local, "fonts", None)
    _local.fonts = {} if outer is None else outer
    try:
        yield
    finally:
        _local.fonts = outer


def _install() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        _installed = True
        try:
            from pypdf.generic._font import Font
            build = Font.from_font_resource.__func__  # type: ignore[attr-defined]
        except (ImportError, AttributeError):
            return

        def from_font_resource(cls: type[Any], pdf_font_dict: Any) -> Any:
            fonts: dict[int, tuple[Any, Any]] | None = getattr(_local, "fonts", None)
            if fonts is None or cls is not Font:
                return build(cls, pdf_font_dict)
            kept = fonts.get(id(pdf_font_dict))
            if kept is None:
                kept = fonts[id(pdf_font_dict)] = (pdf_font_dict, build(cls, pdf_font_dict))
            return kept[1]

        Font.from_font_resource = classmethod(from_font_resource)  # type: ignore[assignment,method-assign]
